"""The total training loss (paper Eq. 5; release weighting docs/release_vs_paper.md#loss-weighting).

    weighting="paper":   L = L_multi + L_kpt + L_bbox + L_emb                         (Eq. 5, unit weights)
    weighting="release": L = (w_multi·L_multi + w_single·L_kpt + w_bbox·L_bbox + w_emb·L_emb) / B

L_multi is the center + BUK focal loss with one shared normaliser (so Eq. 5's L_center + L_buk is one
term), L_kpt the instance keypoint loss, L_bbox the CIoU box loss and L_emb the Bbox Mask Loss.
Terms whose inputs are absent are left out: no ``bbox`` output (Table 4 "no bbox head"), ``bbox_mask``
off or no ``emb`` output. CID outputs (``heatmap`` [B, K+1, H, W]) get the multi heatmap loss on that map,
the instance loss and, when ``features`` are given, CID's contrastive loss (weight 1).
"""
from __future__ import annotations

from typing import Mapping, Optional

import torch

from ..config import LossConfig
from .bbox_mask import bbox_mask_terms
from .box import bbox_loss
from .contrastive import cid_contrastive_loss
from .focal import instance_heatmap_loss, multi_heatmap_loss

__all__ = ["total_loss", "REQUIRED_BATCH_KEYS"]

REQUIRED_BATCH_KEYS = ("multi_heatmap", "multi_mask", "instance_coord", "instance_imgid", "instance_heatmap",
                       "instance_mask")


def _need(mapping: Mapping, key: str, what: str) -> torch.Tensor:
    if key not in mapping:
        raise KeyError(f"total_loss: {what} has no {key!r} (has: {sorted(mapping)})")
    return mapping[key]


def total_loss(outputs: Mapping[str, torch.Tensor], batch: Mapping[str, torch.Tensor], loss_cfg: LossConfig,
               generator: Optional[torch.Generator] = None) -> dict[str, torch.Tensor]:
    """Every loss term (unweighted) and their weighted sum ``total``.

    Keys: ``multi_heatmap``, ``instance_heatmap``, and when present ``bbox``, ``bbox_mask`` (with its parts
    ``pull_in``, ``push_out``, ``push_inst``), ``contrastive``; then ``total``. ``generator`` draws the
    random instance subset when N exceeds ``loss_cfg.max_instances``.
    """
    if not isinstance(loss_cfg, LossConfig):
        raise TypeError(f"loss_cfg must be a boir_core.config.LossConfig, got {type(loss_cfg).__name__}")
    for k in REQUIRED_BATCH_KEYS:
        _need(batch, k, "batch")
    _need(outputs, "instance_heatmap", "outputs")
    imgid = batch["instance_imgid"]
    coord = batch["instance_coord"]
    terms: dict[str, torch.Tensor] = {}

    if "heatmap" in outputs:  # CID: one [K+1] map
        terms["multi_heatmap"] = multi_heatmap_loss(outputs["heatmap"], None, batch["multi_heatmap"],
                                                    batch["multi_mask"])
    else:
        terms["multi_heatmap"] = multi_heatmap_loss(_need(outputs, "center", "outputs"),
                                                    _need(outputs, "buk", "outputs"),
                                                    batch["multi_heatmap"], batch["multi_mask"])
    if "bbox" in outputs and outputs["bbox"] is not None:
        terms["bbox"] = bbox_loss(outputs["bbox"], coord, imgid, _need(batch, "instance_bbox", "batch"),
                                  decode=loss_cfg.bbox_decode)
    if loss_cfg.bbox_mask and "emb" in outputs and outputs["emb"] is not None:
        t = bbox_mask_terms(outputs["emb"], _need(batch, "instance_bbox", "batch"), imgid, batch.get("instance_center"),
                            variant=loss_cfg.bbox_mask_variant, kernel=loss_cfg.emb_loss, distance=loss_cfg.distance,
                            beta=loss_cfg.beta, temperature=loss_cfg.temperature,
                            instance_point=loss_cfg.instance_point)
        terms.update(bbox_mask=t.loss, pull_in=t.loss_pull_in, push_out=t.loss_push_out, push_inst=t.loss_push_inst)
    if "heatmap" in outputs and outputs.get("features") is not None:
        terms["contrastive"] = cid_contrastive_loss(outputs["features"], coord, imgid)
    # the instance subset is drawn after the box and embedding losses, as in the release
    terms["instance_heatmap"] = instance_heatmap_loss(outputs["instance_heatmap"], batch["instance_heatmap"],
                                                      batch["instance_mask"], loss_cfg.max_instances, generator)

    if loss_cfg.weighting == "paper":
        weights = {"multi_heatmap": 1.0, "instance_heatmap": 1.0, "bbox": 1.0, "bbox_mask": 1.0, "contrastive": 1.0}
        divisor = 1.0
    else:
        weights = {"multi_heatmap": loss_cfg.multi_heatmap_weight, "instance_heatmap": loss_cfg.single_heatmap_weight,
                   "bbox": loss_cfg.bbox_weight, "bbox_mask": loss_cfg.bbox_mask_weight, "contrastive": 1.0}
        divisor = float(batch["multi_heatmap"].shape[0])
    total = sum(weights[k] * v for k, v in terms.items() if k in weights) / divisor
    terms["total"] = total
    return terms
