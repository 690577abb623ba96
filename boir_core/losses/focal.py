"""Heatmap focal losses (docs/training.md#losses): the CornerNet/CenterNet focal loss, the multi heatmap loss
(center + bottom-up keypoints, one normaliser) and the instance keypoint loss.

The focal loss on a probability map P and a Gaussian target Y (peaks exactly 1), with mask M:

    pos = [Y == 1]·M,   neg = [Y < 1]·M
    L = −( Σ pos·log(P)·(1−P)²  +  Σ neg·log(1−P)·P²·(1−Y)⁴ ) / Σ pos

and L = −Σ neg·… (no division) when there is no positive. One normaliser per call: sums run over the
whole tensor (batch, channels, pixels).
"""
from __future__ import annotations

from typing import Optional

import torch

from ..ops import sigmoid_clamp
from ._common import as_float, check_shape, fp32_loss

__all__ = ["focal_loss", "multi_heatmap_loss", "instance_heatmap_loss", "subsample_instances"]


@fp32_loss
def focal_loss(prob: torch.Tensor, target: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """CornerNet focal loss (α = 2, β = 4) of probabilities ``prob`` against ``target``.

    ``mask`` broadcasts against ``prob`` (1 = train, 0 = ignore). Returns a scalar.
    """
    prob, target = as_float(prob), as_float(target).to(as_float(prob).dtype)
    if prob.shape != target.shape:
        raise ValueError(f"focal_loss: prediction shape {tuple(prob.shape)} != target shape {tuple(target.shape)}")
    m = torch.ones((), dtype=prob.dtype, device=prob.device) if mask is None else as_float(mask).to(prob.dtype)
    pos = target.eq(1).to(prob.dtype) * m
    neg = target.lt(1).to(prob.dtype) * m
    pos_loss = (torch.log(prob) * (1 - prob) ** 2 * pos).sum()
    neg_loss = (torch.log(1 - prob) * prob ** 2 * (1 - target) ** 4 * neg).sum()
    num_pos = pos.sum()
    # no Python branch on num_pos: both cases are computed and one is selected on the device
    return torch.where(num_pos > 0, -(pos_loss + neg_loss) / num_pos.clamp(min=1), -neg_loss)


@fp32_loss
def multi_heatmap_loss(center: torch.Tensor, buk: Optional[torch.Tensor], multi_heatmap: torch.Tensor,
                       multi_mask: torch.Tensor) -> torch.Tensor:
    """Center + bottom-up keypoint ("BUK") focal loss with one normaliser (docs/training.md#multi-heatmap-loss).

    ``center`` [B,1,H,W] and ``buk`` [B,K,H,W] are logits; they are stacked as [BUK ∥ center] to match
    ``multi_heatmap`` [B,K+1,H,W]. For CID pass its [B,K+1,H,W] ``heatmap`` as ``center`` and
    ``buk=None``. ``multi_mask`` [B,1,H,W] ignores crowds and padding.
    """
    check_shape("multi_heatmap", multi_heatmap, 4)
    check_shape("multi_mask", multi_mask, 4)
    logits = center if buk is None else torch.cat([buk, center], dim=1)
    if logits.shape != multi_heatmap.shape:
        raise ValueError(f"multi_heatmap has shape {tuple(multi_heatmap.shape)} but the predicted "
                         f"[BUK ∥ center] maps have shape {tuple(logits.shape)}")
    return focal_loss(sigmoid_clamp(logits), multi_heatmap, multi_mask)


def subsample_instances(num_instances: int, max_instances: int, generator: Optional[torch.Generator] = None,
                        device: torch.device | str = "cpu") -> Optional[torch.Tensor]:
    """Indices of a random subset of ``max_instances`` of the batch's instances for the instance keypoint loss,
    or None when all are kept (docs/training.md#instance-keypoint-loss). Not to be confused with
    :func:`boir_core.data.targets.select_instances`, which chooses the people of one image that become
    instances.

    ``num_instances`` is a shape, so this reads nothing back from the device.
    """
    if max_instances <= 0 or num_instances <= max_instances:
        return None
    perm = torch.randperm(num_instances, generator=generator, device="cpu")[:max_instances]
    return perm.sort().values.to(device)


@fp32_loss
def instance_heatmap_loss(instance_logits: torch.Tensor, instance_heatmap: torch.Tensor,
                          instance_mask: torch.Tensor, max_instances: int = 200,
                          generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Instance keypoint focal loss (docs/training.md#instance-keypoint-loss): one focal call over [N,K,H,W]
    with the per-keypoint mask.

    When N > ``max_instances`` a random subset (drawn with ``generator``) is used. N = 0 gives 0.
    """
    check_shape("instance_heatmap (prediction)", instance_logits, 4)
    check_shape("instance_heatmap", instance_heatmap, 4)
    check_shape("instance_mask", instance_mask, 2)
    n = instance_logits.shape[0]
    if instance_heatmap.shape[0] != n or instance_mask.shape[0] != n:
        raise ValueError(f"instance_heatmap / instance_mask have {instance_heatmap.shape[0]} / "
                         f"{instance_mask.shape[0]} instances, the predictions {n}")
    if n == 0:  # a shape, not data: no synchronisation
        return as_float(instance_logits).sum() * 0
    keep = subsample_instances(n, max_instances, generator, instance_logits.device)
    if keep is not None:
        instance_logits, instance_heatmap, instance_mask = (
            instance_logits[keep], instance_heatmap[keep], instance_mask[keep])
    return focal_loss(sigmoid_clamp(instance_logits), instance_heatmap, instance_mask[:, :, None, None])
