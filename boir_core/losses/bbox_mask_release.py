r"""The released Bbox Mask Loss, vectorised (docs/release_vs_paper.md#release-algorithm).

Two variants of :func:`~.bbox_mask.bbox_mask_terms`: ``"release-instance"`` (the release's
BG_SAMPLE_LEVEL 0) and ``"release-image"`` (level 1). Both read p at (floor((x + w)/2), floor((y + h)/2)),
use the dilated, half-open box masks of :func:`release_rows_cols` (boxes under 2 px take no part), and
divide the batch's sum by its total instance count (with ``dummy_instances``, the release's dummies of
images without instances count too: docs/release_vs_paper.md#dummy-instance). Their AE kernel zeroes the
diagonal of its pairwise matrix before the exponential, which adds the constant ½ per embedding: the push
over n embeddings is Σ_i [½ + ½·Σ_{j≠i} ψ_ij]/(n − 1), with ψ = exp(−β/D·‖·‖²).

Per-instance values (they add up to each image's released loss):

    release-instance   pull_in   = ‖p − p̄‖²/(2D)                     (0 when Σs < 1e-5: the group is [p])
                       push_out  = 1 + ψ((p + p̄)/2, p̄ᶜ)               (p instead of (p + p̄)/2 when Σs < 1e-5)
                       push_inst = [½ + ½·Σ_{j≠i} ψ(p_i, p_j)]/(n − 1)  (n ≥ 2)
    release-image      pull_in   = 0
                       push_inst = as above with n' = n + 1 (the background mean bg counts)
                       push_out  = [ψ(p_i, bg) + ½/n]/(n' − 1)         (bg's own constant shared by the people)

The soft mask is exp(−β·Σ_d (p − e)²), without 1/D; level 1 never uses it (the release computes and
discards it), so ``release-image`` reports p̄ = p̄ᶜ = p and a soft-mask sum of 0.
"""
from __future__ import annotations

import torch

from .bbox_mask_sums import (
    BboxMaskSettings,
    BboxMaskTerms,
    EmbeddingMap,
    Instances,
    pairwise_r,
    soft_box_sums,
    union_box_sums,
)

__all__ = ["RELEASE_TINY_MASK_SUM", "release_rows_cols", "release_instance_terms", "release_image_terms"]

#: The release falls back to the positive group [p] when the soft mask sums to less than this.
RELEASE_TINY_MASK_SUM = 1e-5


def release_rows_cols(instance_bbox: torch.Tensor, height: int, width: int):
    """Columns clamp(int(x) − 1) … clamp(int(x + w) + 1) − 1 (half-open), rows likewise; valid only if both
    extents are ≥ 2. Returns rows [N, H], columns [N, W] (bool) and ``valid`` [N]."""
    x, y, w, h = instance_bbox.unbind(-1)
    u = torch.arange(width, device=instance_bbox.device, dtype=instance_bbox.dtype)
    v = torch.arange(height, device=instance_bbox.device, dtype=instance_bbox.dtype)
    x1 = (torch.trunc(x) - 1).clamp(0, width - 1)
    x2 = (torch.trunc(x + w) + 1).clamp(0, width - 1)
    y1 = (torch.trunc(y) - 1).clamp(0, height - 1)
    y2 = (torch.trunc(y + h) + 1).clamp(0, height - 1)
    valid = ((x2 - x1) >= 2) & ((y2 - y1) >= 2)
    cols = (u[None] >= x1[:, None]) & (u[None] < x2[:, None]) & valid[:, None]
    rows = (v[None] >= y1[:, None]) & (v[None] < y2[:, None]) & valid[:, None]
    return rows, cols, valid


def _ae_push(p: torch.Tensor, others: torch.Tensor, n: torch.Tensor, beta: float) -> torch.Tensor:
    """Each embedding's share [½ + ½·Σ_{j≠i} ψ_ij]/(n − 1) of the AE push over n embeddings (n ≥ 1)."""
    psi = torch.exp(-beta / p.shape[-1] * pairwise_r(p, "l2"))
    return (0.5 + 0.5 * (psi * others.to(p.dtype)).sum(1)) / (n - 1).clamp(min=1)


def _release_normalised(people: Instances, p, pull, out, inst, dummy_instances, **fields) -> BboxMaskTerms:
    """The result with the release's normaliser: Σ over the batch ÷ its total instance count (the release's
    dummies, ``dummy_instances``, included: they add nothing to the sums)."""
    total_instances = len(people) + dummy_instances
    total_instances = total_instances.clamp(min=1) if torch.is_tensor(total_instances) else max(total_instances, 1)
    return BboxMaskTerms(pull_in=pull, push_out=out, push_inst=inst, valid=people.valid, point_yx=people.point_yx,
                         p=p, **fields, loss_pull_in=pull.sum() / total_instances,
                         loss_push_out=out.sum() / total_instances, loss_push_inst=inst.sum() / total_instances)


def release_instance_terms(emb: EmbeddingMap, people: Instances, p: torch.Tensor, q: torch.Tensor,
                           settings: BboxMaskSettings, dummy_instances) -> BboxMaskTerms:
    """BG level 0: AE([p, p̄], [p̄ᶜ]) per instance plus the AE push over the image's instances (β and the padded
    capacity from ``settings``)."""
    dim, dtype, beta = emb.dim, emb.dtype, settings.beta
    sums = soft_box_sums(emb, people, q, kappa=beta, capacity=settings.capacity)  # exp(−β·Σ_d), no 1/D
    tiny = sums.soft_sum < RELEASE_TINY_MASK_SUM  # the positive group is [p] alone
    p_bar, p_bar_out = sums.soft_mean(p, fallback=tiny), sums.outside_mean()
    valid, n = people.valid.to(dtype), people.count(dtype)
    pull = torch.where(tiny, torch.zeros_like(valid), ((p - p_bar) ** 2).sum(-1) / (2 * dim)) * valid
    mid = torch.where(tiny[:, None], p, (p + p_bar) / 2)  # the positive group's mean
    out = (1 + torch.exp(-beta / dim * ((mid - p_bar_out) ** 2).sum(-1))) * sums.has_outside.to(dtype) * valid
    inst = _ae_push(p, people.others(), n, beta) * (n >= 2).to(dtype) * valid
    return _release_normalised(people, p, pull, out, inst, dummy_instances, has_outside=sums.has_outside, p_bar=p_bar,
                               p_bar_out=p_bar_out, soft_mask_sum=sums.soft_sum)


def release_image_terms(emb: EmbeddingMap, people: Instances, p: torch.Tensor, beta: float,
                        dummy_instances) -> BboxMaskTerms:
    """BG level 1: the AE push over {p_i} ∪ {bg}, bg the mean outside the union of the image's boxes."""
    dtype, hw, imgid = emb.dtype, emb.hw, people.imgid
    union_sum, total, union_count = union_box_sums(emb, people)
    bg_exists = (union_count < hw).to(dtype)[imgid]
    bg = ((total - union_sum) / (hw - union_count).clamp(min=1)[:, None])[imgid]
    n = people.count(dtype)
    n_prime = n + bg_exists
    active = (n_prime >= 2).to(dtype) * people.valid.to(dtype)
    inst = _ae_push(p, people.others(), n_prime, beta) * active
    psi_bg = torch.exp(-beta / emb.dim * ((p - bg) ** 2).sum(-1))
    out = (psi_bg + 0.5 / n.clamp(min=1)) / (n_prime - 1).clamp(min=1) * active * bg_exists
    pull = torch.zeros(len(people), dtype=dtype, device=p.device)
    return _release_normalised(people, p, pull, out, inst, dummy_instances, has_outside=torch.ones_like(people.valid),
                               p_bar=p,
                               p_bar_out=p, soft_mask_sum=torch.zeros_like(pull))
