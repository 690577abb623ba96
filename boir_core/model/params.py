"""Parameter counts per part (the paper's Table 5, docs/model.md#parameter-counts).

Table 5 counts the *inference* model: backbone + neck + center head + instance head for BoIR (31.8 M for
W32, 68.9 M for W48), backbone + 1×1 heatmap conv + GFD for CID (29.4 M). The training-only heads (BUK,
emb, bbox) add 1.6 M. :func:`parameter_table` builds each network on PyTorch's ``meta`` device, so even
W48 is counted in a fraction of a second without allocating its weights.
"""
from __future__ import annotations

from typing import Iterable

import torch
import torch.nn as nn

from .boir import BoIR
from .cid import CID

__all__ = ["count_parameters", "parameter_table"]


def _n(module) -> int:
    return 0 if module is None else sum(p.numel() for p in module.parameters())


def count_parameters(model: nn.Module) -> dict[str, int]:
    """Parameters (not buffers) per part, plus ``total`` and ``inference`` (what Table 5 counts).

    BoIR: ``backbone, neck, center_head, buk_head, emb_head, bbox_head, kpt_head`` (0 for heads not built).
    CID: ``backbone, heatmap_head, kpt_head``. For both, ``inference`` excludes the training-only heads.
    """
    arch = getattr(model, "arch", None)
    if arch == "boir":
        mh = model.multihead
        counts = {
            "backbone": _n(model.backbone), "neck": _n(mh.neck), "center_head": _n(mh.center_head),
            "buk_head": _n(mh.buk_head), "emb_head": _n(mh.emb_head), "bbox_head": _n(mh.bbox_head),
            "kpt_head": _n(model.kpt_head),
        }
        counts["inference"] = counts["backbone"] + counts["neck"] + counts["center_head"] + counts["kpt_head"]
    elif arch == "cid":
        counts = {"backbone": _n(model.backbone), "heatmap_head": _n(model.iia), "kpt_head": _n(model.gfd)}
        counts["inference"] = sum(counts.values())
    else:
        raise TypeError(f"count_parameters expects a BoIR or CID model, got {type(model).__name__}")
    counts["total"] = _n(model)
    if counts["total"] != sum(v for k, v in counts.items() if k not in ("inference", "total")):
        raise AssertionError("parameter parts do not add up to the total")  # a new, uncounted module
    return counts


def parameter_table(backbones: Iterable[str] = ("hrnet_w32", "hrnet_w48"), num_keypoints: int = 17,
                    include_cid: bool = True) -> list[dict]:
    """Rows of measured counts for Table 5: one per backbone and model (inference / training / CID).

    Each row: ``model``, ``backbone_name``, the per-part counts (``backbone`` is the backbone's count),
    ``inference`` and ``total``. The instance head
    uses 64 hidden channels for W32 and 96 for W48 (32 for CID), as released.
    """
    rows = []
    for name in backbones:
        inst = 96 if name == "hrnet_w48" else 64
        with torch.device("meta"):
            models = [
                ("BoIR (inference)", BoIR(num_keypoints, name, inst_channels=inst, train_heads=False)),
                ("BoIR (training)", BoIR(num_keypoints, name, inst_channels=inst, train_heads=True)),
            ]
            if include_cid:
                models.append(("CID", CID(num_keypoints, name, inst_channels=32)))
        for label, m in models:
            rows.append({"model": label, "backbone_name": name, **count_parameters(m)})
    return rows
