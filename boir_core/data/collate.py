"""Batching: `collate_train` for training samples, `collate_test` for test samples (CONTRIBUTING.md).

Training: per-image keys are stacked to [B, ...]; the variable-length ``instance_*`` keys are concatenated
over the batch, and ``instance_imgid`` [N] (int64) says which image each instance came from. Images
without people simply contribute no rows (no dummy instances), so N may be 0.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch

__all__ = ["PER_IMAGE_KEYS", "INSTANCE_KEYS", "collate_train", "collate_test"]

PER_IMAGE_KEYS = ("image", "multi_heatmap", "multi_mask")
INSTANCE_KEYS = ("instance_coord", "instance_center", "instance_heatmap", "instance_mask",
                 "instance_bbox", "instance_keypoints")


def collate_train(samples: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Stack per-image keys, concatenate instance keys, add ``instance_imgid`` and ``image_id`` [B]."""
    if len(samples) == 0:
        raise ValueError("collate_train: empty batch")
    missing = [k for k in PER_IMAGE_KEYS + INSTANCE_KEYS + ("image_id",) if k not in samples[0]]
    if missing:
        raise KeyError(f"collate_train: sample lacks keys {missing} (is it a test sample?)")
    batch: dict[str, torch.Tensor] = {k: torch.stack([s[k] for s in samples]) for k in PER_IMAGE_KEYS}
    for k in INSTANCE_KEYS:
        batch[k] = torch.cat([s[k] for s in samples], dim=0)
    counts = torch.tensor([len(s["instance_coord"]) for s in samples], dtype=torch.int64)
    batch["instance_imgid"] = torch.repeat_interleave(torch.arange(len(samples), dtype=torch.int64), counts)
    batch["image_id"] = torch.tensor([int(s["image_id"]) for s in samples], dtype=torch.int64)
    return batch


def collate_test(samples: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Test images differ in size: keep the list of samples as it is."""
    return list(samples)
