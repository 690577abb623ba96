r"""The Bbox Mask Loss (paper §3.2, Eqs. 1–4, appendix Eqs. 7–9; release: spec §4.5).

Notation. e is the embedding map, L2-normalised over its D channels at every pixel. For instance i of an
image with N instances, b_i = (x, y, w, h) is its box in output pixels and p_i = e at one pixel (below).

Three variants (``variant=``):

``"paper"`` (default) — Eqs. 1–4 with the appendix forms 7–9::

    s_i(u) = ψ(d(e(u), p_i))                          u ∈ B_i   (Eq. 1; s is built from detached tensors)
    p̄_i   = Σ_{B_i} s_i·e / Σ_{B_i} s_i                         (Eq. 2, soft-masked in-box mean)
    p̄ᶜ_i  = mean of e over the pixels outside B_i               (Eq. 3)
    pull_in_i   = d(p_i, p̄_i)            = ‖p_i − p̄_i‖²/D       (Eq. 7)
    push_out_i  = ψ(d(p_i, p̄ᶜ_i))        = exp(−β/D·‖p_i − p̄ᶜ_i‖²)   (Eq. 8)
    push_inst_i = Σ_{j≠i} ψ(d(p_i, p_j)) / (N − 1)               (Eq. 9, see below)

  Definitions the paper leaves open, and our choices:

  * **Pixels and B_i.** Pixel (u, v) (column u, row v) covers [u, u+1) × [v, v+1); its center is
    (u + ½, v + ½). A column belongs to the box when its center lies in [x, x + w], and the column that
    contains x + w/2 always belongs (so a box narrower than a pixel still has one); rows likewise; B_i is the
    product of its rows and columns, clipped to the map. A box at the border simply loses its outside part.
  * **ψ inside the soft mask** is the same kernel as Eqs. 8/9, exp(−β/D·‖·‖²). (The release uses the much
    sharper exp(−β·Σ_d) there.) The weights s carry no gradient; ``similarity_emb`` lets a test supply the
    map they are computed from.
  * **p_i** is sampled at the nearest pixel (floor, clipped to the map) of the keypoint-mean instance center
    ``instance_center`` (``instance_point="center"``) or of the box center x + w/2, y + h/2 (``"box"``).
  * **N and the averages.** N counts the instances of one image. Each term is averaged over the instances
    of an image, then over the images where it is defined: pull_in and push_out over images with ≥ 1
    instance, push_inst over images with ≥ 2. Eq. 9's 1/(N(N−1)/2)·Σ_{i<j} equals the image mean of the
    per-instance values Σ_{j≠i} ψ_ij/(N − 1), which is how ``push_inst`` reports it.
  * **Degenerate cases.** N = 0: every term is 0. N = 1: push_inst has no pair and the image is left out of
    its average. A box covering the whole map has no outside pixel: its push_out is 0 (still counted in the
    image mean). If all soft weights underflow to 0, p̄_i = p_i.

``kernel="contrastive"`` (Table 4 right) replaces the Gaussian kernel by InfoNCE logits, with
ℓ(a, b) = −r(a, b)/(2τ) (r below; for unit vectors this is (cos − 1)/τ, CID's cos/τ up to a constant that
the softmax ignores). The soft mask becomes exp(ℓ(e, p_i)) ∈ (0, 1], and, per instance i of an image:

    pull_in_i   = −log softmax_j ℓ(p_i, p̄_j) at j = i     (own soft-masked box mean vs other people's)
    push_out_i  = −log softmax over {ℓ(p_i, p̄_i), ℓ(p_i, p̄ᶜ_i)} at p̄_i   (own box vs the background)
    push_inst_i = −log softmax_j ℓ(p_i, p_j) at j = i      (CID's ContrastiveLoss: identity targets)

  An image with one person therefore has pull_in = push_inst = 0.

``distance`` (Table 4 right): r(a, b) = ‖a − b‖² (``"l2"``) or 2·(1 − cos(a, b)) (``"cosine"``). The
two agree on unit vectors and differ on the means p̄ and p̄ᶜ, which are shorter than 1.

``"release-instance"`` (BG_SAMPLE_LEVEL 0) and ``"release-image"`` (level 1) reproduce the released
algorithm of spec §4.5 exactly: dilated half-open box masks, p at ((x+w)/2, (y+h)/2), soft mask
exp(−β·Σ_d (p − e)²) without 1/D, the Σs < 1e-5 rule, the AE "zeroed diagonal" constant N/(2(N−1)), the +1
in the out-box push, the single background mean per image (level 1) and the ÷ total_instances normaliser.
Their per-instance values split each image's loss exactly (they sum to it); see :func:`bbox_mask_terms`.

Everything is vectorised: one padded ``bmm`` per map for the soft masks, all-pairs matrices with a
same-image mask for the pushes, and ``index_add_`` for per-image sums. No loop over people or images.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

from ._common import (as_float, check_choice, check_same_length, check_shape, fp32_loss, mean_over_images,
                      padded_capacity, rank_in_image)

__all__ = [
    "VARIANTS", "KERNELS", "DISTANCES", "INSTANCE_POINTS", "RELEASE_TINY_MASK_SUM",
    "BboxMaskTerms", "normalize_embedding", "box_rows_cols", "box_masks", "instance_pixels", "distance_r",
    "bbox_mask_terms", "bbox_mask_loss", "pull_in", "push_out", "push_inst", "term_gradients",
]

VARIANTS = ("paper", "release-image", "release-instance")
KERNELS = ("ae", "contrastive")
DISTANCES = ("l2", "cosine")
INSTANCE_POINTS = ("center", "box")
#: The release falls back to the positive group [p] when the soft mask sums to less than this.
RELEASE_TINY_MASK_SUM = 1e-5


@dataclass
class BboxMaskTerms:
    """Everything :func:`bbox_mask_terms` computes. Per-instance tensors are [N] or [N, D]."""

    pull_in: torch.Tensor
    push_out: torch.Tensor
    push_inst: torch.Tensor
    valid: torch.Tensor  # bool: the instance takes part (the release skips boxes under 2 px)
    has_outside: torch.Tensor  # bool: the box leaves some pixel outside
    point_yx: torch.Tensor  # long (row, column) where p_i is sampled
    p: torch.Tensor
    p_bar: torch.Tensor  # release-image never uses p̄, p̄ᶜ or the soft mask: there they are p, p and 0
    p_bar_out: torch.Tensor
    soft_mask_sum: torch.Tensor
    loss_pull_in: torch.Tensor  # scalars after the variant's normalisation
    loss_push_out: torch.Tensor
    loss_push_inst: torch.Tensor

    @property
    def loss(self) -> torch.Tensor:
        return self.loss_pull_in + self.loss_push_out + self.loss_push_inst


def normalize_embedding(emb: torch.Tensor) -> torch.Tensor:
    """Unit L2 norm over the channel dimension (dim 1) of a [B, D, H, W] map."""
    return F.normalize(as_float(emb), dim=1)


def box_rows_cols(instance_bbox: torch.Tensor, height: int, width: int, variant: str = "paper"):
    """Per-axis membership of the box pixel sets: rows [N, H] and columns [N, W] (bool), and ``valid`` [N].

    paper: a column u is in when u + ½ ∈ [x, x + w], or when it contains x + w/2 (clipped to the map).
    release: columns clamp(int(x) − 1) … clamp(int(x + w) + 1) − 1 (half-open), valid only if both
    extents are ≥ 2 (spec §4.5).
    """
    check_choice("variant", variant, VARIANTS)
    bb = instance_bbox
    x, y, w, h = bb.unbind(-1)
    u = torch.arange(width, device=bb.device, dtype=bb.dtype)
    v = torch.arange(height, device=bb.device, dtype=bb.dtype)
    if variant == "paper":
        cx = torch.floor(x + w / 2).clamp(0, width - 1)
        cy = torch.floor(y + h / 2).clamp(0, height - 1)
        cols = ((u[None] + 0.5 >= x[:, None]) & (u[None] + 0.5 <= (x + w)[:, None])) | (u[None] == cx[:, None])
        rows = ((v[None] + 0.5 >= y[:, None]) & (v[None] + 0.5 <= (y + h)[:, None])) | (v[None] == cy[:, None])
        valid = torch.ones_like(x, dtype=torch.bool)
    else:
        x1 = (torch.trunc(x) - 1).clamp(0, width - 1)
        x2 = (torch.trunc(x + w) + 1).clamp(0, width - 1)
        y1 = (torch.trunc(y) - 1).clamp(0, height - 1)
        y2 = (torch.trunc(y + h) + 1).clamp(0, height - 1)
        valid = ((x2 - x1) >= 2) & ((y2 - y1) >= 2)
        cols = (u[None] >= x1[:, None]) & (u[None] < x2[:, None]) & valid[:, None]
        rows = (v[None] >= y1[:, None]) & (v[None] < y2[:, None]) & valid[:, None]
    return rows, cols, valid


def box_masks(instance_bbox: torch.Tensor, height: int, width: int, variant: str = "paper") -> torch.Tensor:
    """The box pixel sets as a [N, H, W] bool mask (for pictures and tests; the loss keeps them factored)."""
    rows, cols, _ = box_rows_cols(instance_bbox, height, width, variant)
    return rows[:, :, None] & cols[:, None, :]


def instance_pixels(instance_bbox: torch.Tensor, height: int, width: int, variant: str = "paper",
                    instance_point: str = "center", instance_center: Optional[torch.Tensor] = None) -> torch.Tensor:
    """(row, column) [N, 2] long where each instance embedding p_i is read.

    paper: floor of the keypoint-mean center (``"center"``) or of the box center (``"box"``);
    release: floor((x + w)/2), floor((y + h)/2) — the released "center" bug. Clipped to the map.
    """
    check_choice("variant", variant, VARIANTS)
    check_choice("instance_point", instance_point, INSTANCE_POINTS)
    x, y, w, h = instance_bbox.unbind(-1)
    if variant != "paper":
        px, py = (x + w) / 2, (y + h) / 2
    elif instance_point == "box":
        px, py = x + w / 2, y + h / 2
    else:
        if instance_center is None:
            raise ValueError("instance_point='center' needs instance_center [N, 2] (x, y)")
        check_shape("instance_center", instance_center, 2, 2)
        px, py = instance_center[:, 0].to(x.dtype), instance_center[:, 1].to(x.dtype)
    col = torch.floor(px).clamp(0, width - 1).long()
    row = torch.floor(py).clamp(0, height - 1).long()
    return torch.stack([row, col], dim=-1)


def distance_r(a: torch.Tensor, b: torch.Tensor, distance: str = "l2") -> torch.Tensor:
    """r(a, b) over the last dimension: ‖a − b‖² (``"l2"``) or 2·(1 − cos(a, b)) (``"cosine"``)."""
    check_choice("distance", distance, DISTANCES)
    if distance == "l2":
        return ((a - b) ** 2).sum(-1)
    return 2 * (1 - (F.normalize(a, dim=-1) * F.normalize(b, dim=-1)).sum(-1))


def _pairwise_r(p: torch.Tensor, distance: str) -> torch.Tensor:
    """r(p_i, p_j) for all pairs [N, N] (matrix form, clamped at 0)."""
    if distance == "cosine":
        q = F.normalize(p, dim=-1)
        return (2 * (1 - q @ q.T)).clamp(min=0)
    sq = (p * p).sum(-1)
    return (sq[:, None] + sq[None, :] - 2 * p @ p.T).clamp(min=0)


def _check_inputs(emb, instance_bbox, instance_imgid, instance_center, variant, kernel, distance, instance_point):
    check_shape("emb", emb, 4)
    check_shape("instance_bbox", instance_bbox, 2, 4)
    check_shape("instance_imgid", instance_imgid, 1)
    check_same_length(instance_bbox=instance_bbox, instance_imgid=instance_imgid, instance_center=instance_center)
    check_choice("variant", variant, VARIANTS)
    check_choice("kernel", kernel, KERNELS)
    check_choice("distance", distance, DISTANCES)
    check_choice("instance_point", instance_point, INSTANCE_POINTS)
    if variant != "paper" and (kernel != "ae" or distance != "l2"):
        raise ValueError(f"variant={variant!r} is the released AE/L2 loss; kernel={kernel!r} and "
                         f"distance={distance!r} exist only for variant='paper'")


@fp32_loss
def bbox_mask_terms(emb: torch.Tensor, instance_bbox: torch.Tensor, instance_imgid: torch.Tensor,
                    instance_center: Optional[torch.Tensor] = None, *, variant: str = "paper",
                    kernel: str = "ae", distance: str = "l2", beta: float = 10.0, temperature: float = 0.05,
                    instance_point: str = "center", similarity_emb: Optional[torch.Tensor] = None,
                    capacity: Optional[int] = None) -> BboxMaskTerms:
    """Compute every part of the Bbox Mask Loss at once (see the module docstring for the equations).

    Args:
        emb: [B, D, H, W] raw embedding map (normalised here).
        instance_bbox: [N, 4] xywh boxes in output pixels.
        instance_imgid: [N] image of each instance.
        instance_center: [N, 2] (x, y) keypoint-mean centers (paper variant with ``instance_point="center"``).
        similarity_emb: the map the soft-mask weights come from (default: ``emb``); always detached.
        capacity: instance slots per image for the padded layout (default: see ``padded_capacity``).

    Per-instance values. paper: as in the module docstring. release-instance: pull_in = ‖p − p̄‖²/(2D),
    push_out = 1 + exp(−β‖(p + p̄)/2 − p̄ᶜ‖²/D), push_inst = [½ + ½Σ_{j≠i} ψ_ij]/(n − 1) (n ≥ 2).
    release-image: pull_in = 0, push_inst as before but with N' = n + 1 (the background mean bg counts),
    push_out = [ψ(p_i, bg) + ½/n]/(N' − 1) (the background's own constant shared by the image's people).
    Skipped (tiny) boxes give 0 everywhere. The release losses are Σ_i values / N.
    """
    _check_inputs(emb, instance_bbox, instance_imgid, instance_center, variant, kernel, distance, instance_point)
    # The normalised map e = x/‖x‖ is never materialised: every sum over pixels is a bmm of the raw map x
    # with weights that already include 1/‖x‖ (one pass over x instead of three).
    x = as_float(emb)
    if x.ndim == 4 and x.shape[1] == 1:
        # D = 1: the unit "vector" of a pixel is its sign, ±1 (the value F.normalize gives for |x| ≥ 1e-12).
        # sign() makes explicit that its derivative is 0: with D = 1 no term sends any gradient to the map.
        x = torch.sign(x)
    dtype = x.dtype
    num_images, dim, height, width = x.shape
    hw = height * width
    n = instance_bbox.shape[0]
    imgid = instance_imgid.long()
    bbox = as_float(instance_bbox).to(dtype)
    center = None if instance_center is None else as_float(instance_center).to(dtype)
    inv, unit_sq = _inverse_norms(x)  # [B, HW] each

    if similarity_emb is None:
        xs, inv_s, unit_sq_s = x.detach(), inv.detach(), unit_sq.detach()
    else:
        xs = as_float(similarity_emb).detach().to(dtype)
        if xs.shape != x.shape:
            raise ValueError(f"similarity_emb shape {tuple(xs.shape)} != emb shape {tuple(x.shape)}")
        inv_s, unit_sq_s = _inverse_norms(xs)

    rows, cols, valid = box_rows_cols(bbox, height, width, variant)
    point = instance_pixels(bbox, height, width, variant, instance_point, center)
    flat_index = point[:, 0] * width + point[:, 1]
    x_flat = x.reshape(num_images, dim, hw)
    xs_flat = xs.reshape(num_images, dim, hw)
    p = x_flat[imgid, :, flat_index] * inv[imgid, flat_index][:, None]  # [N, D] unit vectors, with gradient
    q = xs_flat[imgid, :, flat_index] * inv_s[imgid, flat_index][:, None]  # [N, D], detached
    x_rows = x_flat.transpose(1, 2)  # [B, HW, D]

    if variant == "release-image":
        # level 1 uses only the union of the boxes; the release's soft mask there is dead work, skipped
        union = torch.zeros(num_images, height, width, dtype=dtype, device=x.device)
        union.index_put_((imgid,), (rows[:, :, None] & cols[:, None, :]).to(dtype), accumulate=True)
        union = (union > 0).to(dtype).reshape(num_images, 1, hw)
        sums = torch.bmm(torch.cat([union, torch.ones_like(union)], dim=1) * inv[:, None, :], x_rows)  # [B, 2, D]
        union_sum, totals = sums[:, 0], sums[:, 1]
        soft_sum = torch.zeros(n, dtype=dtype, device=x.device)
        p_bar = p_bar_out = p
        has_outside = torch.ones(n, dtype=torch.bool, device=x.device)
    else:
        p_bar, p_bar_out, soft_sum, has_outside, tiny = _box_means(
            x_rows, inv, xs_flat, inv_s, unit_sq_s, q, p, rows, cols, imgid, num_images, height, width, capacity,
            variant, kernel, distance, beta, temperature)

    same = (imgid[:, None] == imgid[None, :]) & valid[:, None] & valid[None, :]
    others = same & ~torch.eye(n, dtype=torch.bool, device=x.device)
    n_img = torch.zeros(num_images, dtype=dtype, device=x.device).index_add_(0, imgid, valid.to(dtype))
    n_own = n_img[imgid]  # valid instances in my image
    zero = torch.zeros(n, dtype=dtype, device=x.device)
    fvalid = valid.to(dtype)

    if variant == "paper" and kernel == "ae":
        pull = distance_r(p, p_bar, distance) / dim
        out = torch.exp(-beta / dim * distance_r(p, p_bar_out, distance)) * has_outside.to(dtype)
        psi = torch.exp(-beta / dim * _pairwise_r(p, distance))
        inst = (psi * others.to(dtype)).sum(1) / (n_own - 1).clamp(min=1)
    elif variant == "paper":  # InfoNCE kernel
        pull = _info_nce(-_cross_r(p, p_bar, distance) / (2 * temperature), same)
        pos = -distance_r(p, p_bar, distance) / (2 * temperature)
        neg = -distance_r(p, p_bar_out, distance) / (2 * temperature)
        out = F.softplus(neg - pos) * has_outside.to(dtype)
        inst = _info_nce(-_pairwise_r(p, distance) / (2 * temperature), same)
    elif variant == "release-instance":
        pull = torch.where(tiny, zero, ((p - p_bar) ** 2).sum(-1) / (2 * dim)) * fvalid
        mid = torch.where(tiny[:, None], p, (p + p_bar) / 2)
        out = (1 + torch.exp(-beta / dim * ((mid - p_bar_out) ** 2).sum(-1))) * has_outside.to(dtype) * fvalid
        psi = torch.exp(-beta / dim * _pairwise_r(p, "l2"))
        inst = (0.5 + 0.5 * (psi * others.to(dtype)).sum(1)) / (n_own - 1).clamp(min=1) * (n_own >= 2).to(dtype) * fvalid
    else:  # release-image: push-only over {p_i} ∪ {bg}
        u_count = union.sum(-1)[:, 0]
        bg_exists = (u_count < hw).to(dtype)  # [B]
        bg = (totals - union_sum) / (hw - u_count).clamp(min=1)[:, None]
        n_prime = n_own + bg_exists[imgid]
        denom = (n_prime - 1).clamp(min=1)
        active = (n_prime >= 2).to(dtype) * fvalid
        psi = torch.exp(-beta / dim * _pairwise_r(p, "l2"))
        inst = (0.5 + 0.5 * (psi * others.to(dtype)).sum(1)) / denom * active
        psi_bg = torch.exp(-beta / dim * ((p - bg[imgid]) ** 2).sum(-1))
        out = (psi_bg + 0.5 / n_own.clamp(min=1)) / denom * active * bg_exists[imgid]
        pull = zero

    if variant == "paper":
        loss_pull = mean_over_images(pull, imgid, num_images, 1)
        loss_out = mean_over_images(out, imgid, num_images, 1)
        loss_inst = mean_over_images(inst, imgid, num_images, 2)
    else:
        total_instances = max(n, 1)
        loss_pull, loss_out, loss_inst = pull.sum() / total_instances, out.sum() / total_instances, inst.sum() / total_instances
    return BboxMaskTerms(pull_in=pull, push_out=out, push_inst=inst, valid=valid, has_outside=has_outside,
                         point_yx=point, p=p, p_bar=p_bar, p_bar_out=p_bar_out, soft_mask_sum=soft_sum,
                         loss_pull_in=loss_pull, loss_push_out=loss_out, loss_push_inst=loss_inst)


def _inverse_norms(x: torch.Tensor):
    """1/max(‖x‖, 1e-12) per pixel and ‖x/max(‖x‖, 1e-12)‖² (1, or 0 for an all-zero vector), both [B, HW];
    the same convention as ``F.normalize``."""
    sumsq = (x * x).sum(1).reshape(x.shape[0], -1)
    inv = 1 / sumsq.sqrt().clamp(min=1e-12)
    return inv, sumsq * inv * inv


def _box_means(x_rows, inv, xs_flat, inv_s, unit_sq_s, q, p, rows, cols, imgid, num_images, height, width,
               capacity, variant, kernel, distance, beta, temperature):
    """Soft-masked in-box means p̄ (Eq. 2) and out-box means p̄ᶜ (Eq. 3) of all instances at once.

    Instances are laid out per image in C padded slots, so that one ``bmm`` gives every instance's
    similarity to every pixel of its own image, and a second one the sums Σ s·e, Σ_{B_i} e and Σ e.
    """
    dim = xs_flat.shape[1]
    hw = height * width
    dtype = x_rows.dtype
    cap = padded_capacity(imgid, num_images, capacity)
    rank = rank_in_image(imgid, num_images)
    masks = torch.zeros(num_images, cap, height, width, dtype=dtype, device=x_rows.device)
    masks.index_put_((imgid, rank), (rows[:, :, None] & cols[:, None, :]).to(dtype))
    masks = masks.reshape(num_images, cap, hw)
    with torch.no_grad():
        q_pad = torch.zeros(num_images, cap, dim, dtype=dtype, device=x_rows.device)
        q_pad.index_put_((imgid, rank), q)
        dots = torch.bmm(q_pad, xs_flat) * inv_s[:, None, :]  # q · e(u), e unit: [B, C, HW]
        if distance == "cosine":
            cos = dots / (q_pad.norm(dim=-1, keepdim=True).clamp(min=1e-12) * unit_sq_s.sqrt()[:, None, :].clamp(min=1e-12))
            r_map = (2 * (1 - cos)).clamp(min=0)
        else:
            r_map = ((q_pad * q_pad).sum(-1, keepdim=True) + unit_sq_s[:, None, :] - 2 * dots).clamp(min=0)
        if variant != "paper":
            kappa = beta  # release: exp(−β·Σ_d), no 1/D
        elif kernel == "ae":
            kappa = beta / dim
        else:
            kappa = 1.0 / (2 * temperature)
        soft = torch.exp(-kappa * r_map) * masks
    ones = torch.ones(num_images, 1, hw, dtype=dtype, device=x_rows.device)
    weights = torch.cat([soft, masks, ones], dim=1) * inv[:, None, :]  # 1/‖x‖ turns sums of x into sums of e
    sums = torch.bmm(weights, x_rows)  # [B, 2C + 1, D]
    num = sums[imgid, rank]
    box_sum = sums[imgid, cap + rank]
    totals = sums[:, 2 * cap]
    soft_sum = soft.sum(-1)[imgid, rank]
    area = masks.sum(-1)[imgid, rank]
    tiny = soft_sum < RELEASE_TINY_MASK_SUM if variant != "paper" else soft_sum <= 0
    p_bar = torch.where(tiny[:, None], p, num / soft_sum.clamp(min=torch.finfo(dtype).tiny)[:, None])
    out_count = hw - area
    p_bar_out = (totals[imgid] - box_sum) / out_count.clamp(min=1)[:, None]
    return p_bar, p_bar_out, soft_sum, out_count > 0, tiny

def _cross_r(a: torch.Tensor, b: torch.Tensor, distance: str) -> torch.Tensor:
    """r(a_i, b_j) for all pairs [N, N]."""
    if distance == "cosine":
        return (2 * (1 - F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T)).clamp(min=0)
    return ((a * a).sum(-1)[:, None] + (b * b).sum(-1)[None, :] - 2 * a @ b.T).clamp(min=0)


def _info_nce(logits: torch.Tensor, same: torch.Tensor) -> torch.Tensor:
    """Row-wise cross-entropy with the diagonal as target, over the columns allowed by ``same`` (+ diagonal)."""
    n = logits.shape[0]
    allowed = same | torch.eye(n, dtype=torch.bool, device=logits.device)
    masked = logits.masked_fill(~allowed, float("-inf"))
    return torch.logsumexp(masked, dim=1) - logits.diagonal()


def bbox_mask_loss(emb: torch.Tensor, instance_bbox: torch.Tensor, instance_imgid: torch.Tensor,
                   instance_center: Optional[torch.Tensor] = None, **options) -> dict[str, torch.Tensor]:
    """The Bbox Mask Loss as a dict: ``pull_in``, ``push_out``, ``push_inst`` and their sum ``bbox_mask``.

    Options are those of :func:`bbox_mask_terms` (variant, kernel, distance, beta, temperature, ...).
    """
    t = bbox_mask_terms(emb, instance_bbox, instance_imgid, instance_center, **options)
    return {"pull_in": t.loss_pull_in, "push_out": t.loss_push_out, "push_inst": t.loss_push_inst, "bbox_mask": t.loss}


def pull_in(emb, instance_bbox, instance_imgid, instance_center=None, **options) -> torch.Tensor:
    """In-box pull per instance [N] (Eq. 2 / Eq. 7; see :func:`bbox_mask_terms` for the variants)."""
    return bbox_mask_terms(emb, instance_bbox, instance_imgid, instance_center, **options).pull_in


def push_out(emb, instance_bbox, instance_imgid, instance_center=None, **options) -> torch.Tensor:
    """Out-box push per instance [N] (Eq. 3 / Eq. 8)."""
    return bbox_mask_terms(emb, instance_bbox, instance_imgid, instance_center, **options).push_out


def push_inst(emb, instance_bbox, instance_imgid, instance_center=None, **options) -> torch.Tensor:
    """Cross-instance push per instance [N] (Eq. 4 / Eq. 9); its image mean is Eq. 9."""
    return bbox_mask_terms(emb, instance_bbox, instance_imgid, instance_center, **options).push_inst


def term_gradients(emb: torch.Tensor, instance_bbox: torch.Tensor, instance_imgid: torch.Tensor,
                   instance_center: Optional[torch.Tensor] = None, **options) -> dict[str, torch.Tensor]:
    """∂L/∂emb of each part of the Bbox Mask Loss: ``pull_in``, ``push_out``, ``push_inst`` and ``total``.

    ``emb`` [B, D, H, W] is the raw map (it is detached and copied here). Each value has the shape of
    ``emb``; a term that does not depend on the map (the release-image variant has no pull) gives zeros.
    Options are those of :func:`bbox_mask_terms`.
    """
    x = as_float(emb).detach().clone().requires_grad_(True)
    t = bbox_mask_terms(x, instance_bbox, instance_imgid, instance_center, **options)
    parts = {"pull_in": t.loss_pull_in, "push_out": t.loss_push_out, "push_inst": t.loss_push_inst, "total": t.loss}
    out = {}
    for name, value in parts.items():
        if not value.requires_grad:
            out[name] = torch.zeros_like(x)
            continue
        (g,) = torch.autograd.grad(value, x, retain_graph=True, allow_unused=True)
        out[name] = torch.zeros_like(x) if g is None else g.detach()
    return out
