"""CID's instance contrastive loss (docs/model.md#boir-vs-cid), the baseline BoIR replaced with the Bbox Mask Loss.

For the instances of one image, take the backbone vectors f_i at their (jittered) centers, L2-normalise them
and score every pair with logits cos(f_i, f_j)/τ (τ = 0.05). Each instance must pick itself out of its
image's instances (cross-entropy with the identity as targets). The per-instance losses are summed over
the batch and divided by the number of instances; an image with one person adds exactly 0.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ._common import as_float, check_same_length, check_shape, fp32_loss

__all__ = ["info_nce_per_instance", "cid_contrastive_loss"]


def info_nce_per_instance(vectors: torch.Tensor, instance_imgid: torch.Tensor,
                          temperature: float = 0.05) -> torch.Tensor:
    """−log softmax_j(cos(v_i, v_j)/τ)[i] over the instances j of i's image, for every instance [N]."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    v = F.normalize(vectors, dim=-1)
    logits = v @ v.T / temperature
    same = instance_imgid[:, None] == instance_imgid[None, :]
    masked = logits.masked_fill(~same, float("-inf"))
    return torch.logsumexp(masked, dim=1) - logits.diagonal()


@fp32_loss
def cid_contrastive_loss(features: torch.Tensor, instance_coord: torch.Tensor, instance_imgid: torch.Tensor,
                         temperature: float = 0.05) -> torch.Tensor:
    """CID's ContrastiveLoss on the backbone map ``features`` [B, C, H, W] at ``instance_coord`` (y, x)."""
    check_shape("features", features, 4)
    check_shape("instance_coord", instance_coord, 2, 2)
    check_shape("instance_imgid", instance_imgid, 1)
    check_same_length(instance_coord=instance_coord, instance_imgid=instance_imgid)
    f = as_float(features)
    coord = instance_coord.long()
    vectors = f[instance_imgid.long(), :, coord[:, 0], coord[:, 1]]  # [N, C], gathers only N vectors
    per = info_nce_per_instance(vectors, instance_imgid.long(), temperature)
    return per.sum() / max(int(per.shape[0]), 1)
