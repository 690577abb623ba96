"""The total training loss (paper Eq. 5; release weighting docs/release_vs_paper.md#loss-weighting).

    weighting="paper":   L = L_multi + L_kpt + L_bbox + L_emb                         (Eq. 5, unit weights)
    weighting="release": L = (w_multi·L_multi + w_single·L_kpt + w_bbox·L_bbox + w_emb·L_emb) / B

L_multi is the center + BUK focal loss with one shared normaliser (so Eq. 5's L_center + L_buk is one
term), L_kpt the instance keypoint loss, L_bbox the CIoU box loss and L_emb the Bbox Mask Loss.
Terms whose inputs are absent are left out: no ``bbox`` output (Table 4 "no bbox head"), ``bbox_mask``
off or no ``emb`` output. CID outputs (``heatmap`` [B, K+1, H, W]) get the multi heatmap loss on that map,
the instance loss and, when ``features`` are given, CID's contrastive loss (weight 1).

``loss.dummy_instance=release`` gives every image without instances the release's dummy instance: it adds
nothing to any sum but counts in the box loss's window pixels (4) and in the release Bbox Mask Loss's instance
count, so a batch holding such images is down-weighted by P/(P + 4·n_empty) and N/(N + n_empty)
(docs/release_vs_paper.md#dummy-instance).

:func:`loss_weights` is the one table of weights: every term that adds to the total has one there, and
:data:`TERM_PARTS` names the parts that are reported beside their term but not added again. A term with no
weight, or a weight for a term that does not exist, is an error (:func:`weighted_total`), never a term
silently left out of the total.
"""
from __future__ import annotations

from typing import Mapping, Optional

import torch

from ..config import LossConfig
from .bbox_mask import BboxMaskSettings, bbox_mask_terms
from .box import bbox_loss
from .contrastive import cid_contrastive_loss
from .focal import instance_heatmap_loss, multi_heatmap_loss

__all__ = ["total_loss", "loss_weights", "weighted_total", "empty_images", "REQUIRED_BATCH_KEYS", "TERMS",
           "TERM_PARTS"]

REQUIRED_BATCH_KEYS = ("multi_heatmap", "multi_mask", "instance_coord", "instance_imgid", "instance_heatmap",
                       "instance_mask")


#: the terms that add up to the total, each with one weight in :func:`loss_weights`
TERMS = ("multi_heatmap", "instance_heatmap", "bbox", "bbox_mask", "contrastive")
#: parts reported beside a term (the Bbox Mask Loss's three sums) → the term they make up; not added again
TERM_PARTS = {"pull_in": "bbox_mask", "push_out": "bbox_mask", "push_inst": "bbox_mask"}


def loss_weights(loss_cfg: LossConfig, num_images: int = 1) -> tuple[dict[str, float], float]:
    """``(weights, divisor)`` of ``loss_cfg.weighting`` for a batch of ``num_images`` images: one weight per term
    of :data:`TERMS` and what the weighted sum is divided by.

    paper (Eq. 5): every weight 1, divisor 1; release: ``loss.multi_heatmap_weight``, ``single_heatmap_weight``,
    ``bbox_weight``, ``bbox_mask_weight`` and CID's contrastive term 1, divided by ``num_images``."""
    if loss_cfg.weighting == "paper":
        return {k: 1.0 for k in TERMS}, 1.0
    return ({"multi_heatmap": loss_cfg.multi_heatmap_weight, "instance_heatmap": loss_cfg.single_heatmap_weight,
             "bbox": loss_cfg.bbox_weight, "bbox_mask": loss_cfg.bbox_mask_weight, "contrastive": 1.0},
            float(num_images))


def weighted_total(terms: Mapping[str, torch.Tensor], weights: Mapping[str, float], divisor: float = 1.0
                   ) -> torch.Tensor:
    """Σ weight·term over ``terms`` (in their order) ÷ ``divisor``; the parts of :data:`TERM_PARTS` are skipped.

    A term without a weight, or a weight that names no term of :data:`TERMS`, is a KeyError naming it."""
    unknown = [k for k in weights if k not in TERMS]
    if unknown:
        raise KeyError(f"total_loss: weights for unknown loss terms {unknown} (the terms: {list(TERMS)})")
    missing = [k for k in terms if k not in weights and k not in TERM_PARTS]
    if missing:
        raise KeyError(f"total_loss: the loss terms {missing} have no weight (weights: {sorted(weights)}); every "
                       f"term adds to the total, give it a weight in loss_weights")
    return sum(weights[k] * v for k, v in terms.items() if k not in TERM_PARTS) / divisor


def empty_images(instance_imgid: torch.Tensor, num_images: int) -> torch.Tensor:
    """How many of the batch's ``num_images`` images hold no instance (a 0-d tensor: no host synchronisation).
    Under ``loss.dummy_instance=release`` each gets the release's dummy instance
    (docs/release_vs_paper.md#dummy-instance)."""
    counts = torch.bincount(instance_imgid.long(), minlength=num_images)
    return (counts[:num_images] == 0).sum()


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
    dummies = empty_images(imgid, batch["multi_heatmap"].shape[0]) if loss_cfg.dummy_instance == "release" else 0

    if "heatmap" in outputs:  # CID: one [K+1] map
        terms["multi_heatmap"] = multi_heatmap_loss(outputs["heatmap"], None, batch["multi_heatmap"],
                                                    batch["multi_mask"])
    else:
        terms["multi_heatmap"] = multi_heatmap_loss(_need(outputs, "center", "outputs"),
                                                    _need(outputs, "buk", "outputs"),
                                                    batch["multi_heatmap"], batch["multi_mask"])
    if "bbox" in outputs and outputs["bbox"] is not None:
        terms["bbox"] = bbox_loss(outputs["bbox"], coord, imgid, _need(batch, "instance_bbox", "batch"),
                                  decode=loss_cfg.bbox_decode, dummy_instances=dummies)
    if loss_cfg.bbox_mask and "emb" in outputs and outputs["emb"] is not None:
        t = bbox_mask_terms(outputs["emb"], _need(batch, "instance_bbox", "batch"), imgid, batch.get("instance_center"),
                            BboxMaskSettings.of(loss_cfg), dummy_instances=dummies)
        terms.update(bbox_mask=t.loss, pull_in=t.loss_pull_in, push_out=t.loss_push_out, push_inst=t.loss_push_inst)
    if "heatmap" in outputs and outputs.get("features") is not None:
        terms["contrastive"] = cid_contrastive_loss(outputs["features"], coord, imgid)
    # the instance subset is drawn after the box and embedding losses, as in the release
    terms["instance_heatmap"] = instance_heatmap_loss(outputs["instance_heatmap"], batch["instance_heatmap"],
                                                      batch["instance_mask"], loss_cfg.max_instances, generator)

    weights, divisor = loss_weights(loss_cfg, batch["multi_heatmap"].shape[0])
    terms["total"] = weighted_total(terms, weights, divisor)
    return terms
