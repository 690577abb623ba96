"""boir_core.losses — the training losses of BoIR as functions of tensors (no model).

- :mod:`.focal`: CornerNet focal loss, multi heatmap loss (center + BUK), instance keypoint loss;
- :mod:`.box`: anchor-free l, t, r, b decoding and the 1 − CIoU box loss;
- :mod:`.bbox_mask`: the Bbox Mask Loss (``pull_in``, ``push_out``, ``push_inst``) and its paper variant;
  :mod:`.bbox_mask_release` the released variants; :mod:`.bbox_mask_sums` the box sums they share;
- :mod:`.contrastive`: CID's InfoNCE contrastive loss (the baseline);
- :mod:`.total`: Eq. 5 / the release's weighting (:func:`loss_weights`, the one table of term weights);
- :mod:`.reference`: slow loop-based oracles for tests and benchmarks.

Every function is vectorised over images and people and computes in fp32 (float64 passes through).
"""
from .bbox_mask import (
                        BboxMaskSettings,
                        BboxMaskTerms,
                        EmbeddingMap,
                        bbox_mask_loss,
                        bbox_mask_terms,
                        box_masks,
                        box_rows_cols,
                        distance_r,
                        instance_pixels,
                        normalize_embedding,
                        psi,
                        pull_in,
                        push_inst,
                        push_out,
                        term_gradients,
)
from .box import bbox_loss, bbox_loss_per_instance, center_windows, ciou, decode_ltrb
from .contrastive import cid_contrastive_loss, info_nce_per_instance
from .focal import focal_loss, instance_heatmap_loss, multi_heatmap_loss
from .total import TERM_PARTS, TERMS, loss_weights, total_loss, weighted_total

__all__ = [
    "focal_loss", "multi_heatmap_loss", "instance_heatmap_loss",
    "ciou", "decode_ltrb", "center_windows", "bbox_loss", "bbox_loss_per_instance",
    "BboxMaskSettings", "BboxMaskTerms", "EmbeddingMap", "bbox_mask_terms", "bbox_mask_loss", "pull_in", "push_out",
    "push_inst",
    "normalize_embedding", "psi", "box_rows_cols", "box_masks", "instance_pixels", "distance_r", "term_gradients",
    "cid_contrastive_loss", "info_nce_per_instance", "total_loss", "loss_weights", "weighted_total", "TERMS",
    "TERM_PARTS",
]
