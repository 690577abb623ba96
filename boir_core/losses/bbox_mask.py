r"""The Bbox Mask Loss (paper §3.2, Eqs. 1–4, appendix Eqs. 7–9; release: docs/release_vs_paper.md#bbox-mask-loss).

Notation. e is the embedding map, L2-normalised over its D channels at every pixel. For instance i of an
image with N instances, b_i = (x, y, w, h) is its box in output pixels and p_i = e at one pixel (below).

Three variants (``variant=`` of :class:`BboxMaskSettings`, which holds every setting below):

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
    sharper exp(−β·Σ_d) there.) The weights s carry no gradient; ``EmbeddingMap.of(emb, similarity_emb)`` lets a
    test supply the map they are computed from.
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
algorithm of docs/release_vs_paper.md#release-algorithm exactly: dilated half-open box masks, p at
((x+w)/2, (y+h)/2), soft mask exp(−β·Σ_d (p − e)²) without 1/D, the Σs < 1e-5 rule, the AE "zeroed diagonal"
constant N/(2(N−1)), the +1 in the out-box push, the single background mean per image (level 1) and the ÷
total_instances normaliser. Their per-instance values split each image's loss exactly (they sum to it); they live in
:mod:`.bbox_mask_release`.

Everything is vectorised: one padded ``bmm`` per map for the soft masks, all-pairs matrices with a
same-image mask for the pushes, and ``index_add_`` for per-image sums. No loop over people or images.
The sums over box pixels that every variant shares are in :mod:`.bbox_mask_sums`; this module holds the
public functions, the paper variant (:func:`paper_ae_terms`, Eqs. 7–9) and its InfoNCE kernel
(:func:`paper_contrastive_terms`).
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import torch
import torch.nn.functional as F

from ._common import as_float, check_choice, check_same_length, check_shape, fp32_loss, mean_over_images
from .bbox_mask_release import RELEASE_TINY_MASK_SUM, release_image_terms, release_instance_terms, release_rows_cols
from .bbox_mask_sums import (
    DISTANCES,
    INSTANCE_POINTS,
    KERNELS,
    VARIANTS,
    BboxMaskSettings,
    BboxMaskTerms,
    BoxSums,
    EmbeddingMap,
    Instances,
    pairwise_r,
    soft_box_sums,
)

__all__ = [
    "VARIANTS", "KERNELS", "DISTANCES", "INSTANCE_POINTS", "RELEASE_TINY_MASK_SUM", "PAPER",
    "BboxMaskSettings", "BboxMaskTerms", "EmbeddingMap", "normalize_embedding", "box_rows_cols", "box_masks",
    "instance_pixels", "distance_r", "psi",
    "bbox_mask_terms", "bbox_mask_loss", "pull_in", "push_out", "push_inst", "term_gradients",
]

#: the paper's settings, every default (β = 10, the Gaussian kernel, L2, p_i at the keypoint-mean center)
PAPER = BboxMaskSettings()


def normalize_embedding(emb: torch.Tensor) -> torch.Tensor:
    """Unit L2 norm over the channel dimension (dim 1) of a [B, D, H, W] map."""
    return F.normalize(as_float(emb), dim=1)


def box_rows_cols(instance_bbox: torch.Tensor, height: int, width: int, variant: str = "paper"):
    """Per-axis membership of the box pixel sets: rows [N, H] and columns [N, W] (bool), and ``valid`` [N].

    paper: a column u is in when u + ½ ∈ [x, x + w], or when it contains x + w/2 (clipped to the map).
    release: columns clamp(int(x) − 1) … clamp(int(x + w) + 1) − 1 (half-open), valid only if both
    extents are ≥ 2 (docs/release_vs_paper.md#bbox-mask-loss; :func:`.bbox_mask_release.release_rows_cols`).
    """
    check_choice("variant", variant, VARIANTS)
    instance_bbox = as_float(instance_bbox)  # half precision cannot hold the pixel centers u + ½ past 256
    if variant != "paper":
        return release_rows_cols(instance_bbox, height, width)
    x, y, w, h = instance_bbox.unbind(-1)
    u = torch.arange(width, device=instance_bbox.device, dtype=instance_bbox.dtype)
    v = torch.arange(height, device=instance_bbox.device, dtype=instance_bbox.dtype)
    cx = torch.floor(x + w / 2).clamp(0, width - 1)
    cy = torch.floor(y + h / 2).clamp(0, height - 1)
    cols = ((u[None] + 0.5 >= x[:, None]) & (u[None] + 0.5 <= (x + w)[:, None])) | (u[None] == cx[:, None])
    rows = ((v[None] + 0.5 >= y[:, None]) & (v[None] + 0.5 <= (y + h)[:, None])) | (v[None] == cy[:, None])
    return rows, cols, torch.ones_like(x, dtype=torch.bool)


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
    instance_bbox = as_float(instance_bbox)  # half precision cannot hold x + w/2 exactly past 256
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


def psi(r: torch.Tensor, beta: float, dim: float) -> torch.Tensor:
    """The Gaussian kernel ψ of Eqs. 8 and 9 on a distance r (:func:`distance_r`): exp(−β/D·r), D = ``dim``.

    The paper variant's pushes use it (its soft mask, Eq. 1, is the same kernel inside the box sums); the
    pictures that show "the loss's kernel" call it too (:mod:`boir_core.viz.similarity`, the Fig. 1 maps of
    :mod:`boir_core.viz.figures`). ``dim=1`` gives the release's soft-mask kernel exp(−β·r); ``beta=1`` and
    ``dim=h`` the Gaussian of bandwidth h, exp(−r/h).
    """
    if not dim > 0:
        raise ValueError(f"psi: dim (D) must be > 0, got {dim}")
    return torch.exp(-(beta / dim) * r)


def _check_inputs(emb, instance_bbox, instance_imgid, instance_center):
    check_shape("emb", emb.x if isinstance(emb, EmbeddingMap) else emb, 4)
    check_shape("instance_bbox", instance_bbox, 2, 4)
    check_shape("instance_imgid", instance_imgid, 1)
    check_same_length(instance_bbox=instance_bbox, instance_imgid=instance_imgid, instance_center=instance_center)


@fp32_loss
def bbox_mask_terms(emb: torch.Tensor | EmbeddingMap, instance_bbox: torch.Tensor, instance_imgid: torch.Tensor,
                    instance_center: Optional[torch.Tensor] = None, settings: BboxMaskSettings = PAPER, *,
                    dummy_instances: int | torch.Tensor = 0) -> BboxMaskTerms:
    """Compute every part of the Bbox Mask Loss at once (see the module docstring for the equations).

    Args:
        emb: [B, D, H, W] raw embedding map (normalised here), or ``EmbeddingMap.of(emb, similarity_emb)`` when
            the soft-mask weights come from another map ``similarity_emb`` (always detached; default: ``emb``).
        instance_bbox: [N, 4] xywh boxes in output pixels.
        instance_imgid: [N] image of each instance.
        instance_center: [N, 2] (x, y) keypoint-mean centers (paper variant with ``instance_point="center"``).
        settings: variant, kernel, distance, β, τ, instance point and padded capacity (:class:`BboxMaskSettings`;
            default :data:`PAPER`; from a config: ``BboxMaskSettings.of(cfg.loss)``).
        dummy_instances: the release's dummies (one per image without instances, ``loss.dummy_instance=release``):
            the release variants count them in their instance count, where they add nothing to the sums; the
            paper variant averages over images and has no instance count, so they do not change it.

    Per-instance values. paper: as in the module docstring. release-instance: pull_in = ‖p − p̄‖²/(2D),
    push_out = 1 + exp(−β‖(p + p̄)/2 − p̄ᶜ‖²/D), push_inst = [½ + ½Σ_{j≠i} ψ_ij]/(n − 1) (n ≥ 2).
    release-image: pull_in = 0, push_inst as before but with N' = n + 1 (the background mean bg counts),
    push_out = [ψ(p_i, bg) + ½/n]/(N' − 1) (the background's own constant shared by the image's people).
    Skipped (tiny) boxes give 0 everywhere. The release losses are Σ_i values / N.
    """
    _check_inputs(emb, instance_bbox, instance_imgid, instance_center)
    e = emb if isinstance(emb, EmbeddingMap) else EmbeddingMap.of(emb)
    variant = settings.variant
    bbox = as_float(instance_bbox).to(e.dtype)
    center = None if instance_center is None else as_float(instance_center).to(e.dtype)
    people = Instances(instance_imgid.long(), e.num_images, *box_rows_cols(bbox, e.height, e.width, variant),
                       point_yx=instance_pixels(bbox, e.height, e.width, variant, settings.instance_point, center))
    p, q = e.read(people.imgid, people.point_yx)  # p with gradient; q detached, for the soft masks
    if variant == "release-image":
        return release_image_terms(e, people, p, settings.beta, dummy_instances)
    if variant == "release-instance":
        return release_instance_terms(e, people, p, q, settings, dummy_instances)
    if settings.kernel == "ae":
        return paper_ae_terms(e, people, p, q, settings)
    return paper_contrastive_terms(e, people, p, q, settings)


def paper_ae_terms(emb: EmbeddingMap, people: Instances, p: torch.Tensor, q: torch.Tensor,
                   settings: BboxMaskSettings) -> BboxMaskTerms:
    """Eqs. 1–3 and 7–9 per instance (q: p detached); then image means and the mean over images."""
    D, beta, distance = emb.dim, settings.beta, settings.distance
    N = people.count(emb.dtype)  # people in i's image

    def d(a, b):
        return distance_r(a, b, distance)

    def kernel(r):  # ψ, the Gaussian kernel
        return psi(r, beta, D)

    sums = soft_box_sums(emb, people, q, kappa=beta / D, distance=distance,
                         capacity=settings.capacity)  # s = ψ(d(e, p)), Eq. 1
    means = _PaperMeans(p, sums.soft_mean(p, fallback=sums.soft_sum <= 0), sums.outside_mean())  # Eqs. 2, 3
    pull_in = d(p, means.p_bar) / D  # Eq. 7
    push_out = kernel(d(p, means.p_bar_out)) * sums.has_outside.to(p.dtype)  # Eq. 8
    push_inst = (kernel(pairwise_r(p, distance)) * people.others().to(p.dtype)).sum(1) / (N - 1).clamp(min=1)  # Eq. 9
    return _paper_image_means(people, sums, means, pull_in, push_out, push_inst)


def paper_contrastive_terms(emb: EmbeddingMap, people: Instances, p: torch.Tensor, q: torch.Tensor,
                            settings: BboxMaskSettings) -> BboxMaskTerms:
    """The InfoNCE kernel (Table 4 right): logits ℓ(a, b) = −r(a, b)/(2τ), soft mask exp(ℓ(e, p_i))."""
    temperature, distance = settings.temperature, settings.distance
    sums = soft_box_sums(emb, people, q, kappa=1.0 / (2 * temperature), distance=distance,
                         capacity=settings.capacity)
    p_bar = sums.soft_mean(p, fallback=sums.soft_sum <= 0)
    p_bar_c = sums.outside_mean()
    same = people.same_image()
    pull_in = _info_nce(-_cross_r(p, p_bar, distance) / (2 * temperature), same)
    own = -distance_r(p, p_bar, distance) / (2 * temperature)
    background = -distance_r(p, p_bar_c, distance) / (2 * temperature)
    push_out = F.softplus(background - own) * sums.has_outside.to(p.dtype)
    push_inst = _info_nce(-pairwise_r(p, distance) / (2 * temperature), same)
    return _paper_image_means(people, sums, _PaperMeans(p, p_bar, p_bar_c), pull_in, push_out, push_inst)


class _PaperMeans(NamedTuple):
    """p_i, its soft-masked in-box mean p̄_i (Eq. 2) and the mean outside its box p̄ᶜ_i (Eq. 3), each [N, D]."""

    p: torch.Tensor
    p_bar: torch.Tensor
    p_bar_out: torch.Tensor


def _paper_image_means(people: Instances, sums: BoxSums, means: _PaperMeans, pull, out, inst) -> BboxMaskTerms:
    """The result with the paper's averages: per image, then over the images where the term is defined."""
    imgid, num_images = people.imgid, people.num_images
    return BboxMaskTerms(pull_in=pull, push_out=out, push_inst=inst, valid=people.valid,
                         has_outside=sums.has_outside, point_yx=people.point_yx, p=means.p, p_bar=means.p_bar,
                         p_bar_out=means.p_bar_out, soft_mask_sum=sums.soft_sum,
                         loss_pull_in=mean_over_images(pull, imgid, num_images, 1),
                         loss_push_out=mean_over_images(out, imgid, num_images, 1),
                         loss_push_inst=mean_over_images(inst, imgid, num_images, 2))


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

def bbox_mask_loss(emb: torch.Tensor | EmbeddingMap, instance_bbox: torch.Tensor, instance_imgid: torch.Tensor,
                   instance_center: Optional[torch.Tensor] = None, settings: BboxMaskSettings = PAPER
                   ) -> dict[str, torch.Tensor]:
    """The Bbox Mask Loss as a dict: ``pull_in``, ``push_out``, ``push_inst`` and their sum ``bbox_mask``
    (arguments as :func:`bbox_mask_terms`)."""
    t = bbox_mask_terms(emb, instance_bbox, instance_imgid, instance_center, settings)
    return {"pull_in": t.loss_pull_in, "push_out": t.loss_push_out, "push_inst": t.loss_push_inst, "bbox_mask": t.loss}


def pull_in(emb, instance_bbox, instance_imgid, instance_center=None, settings: BboxMaskSettings = PAPER
            ) -> torch.Tensor:
    """In-box pull per instance [N] (Eq. 2 / Eq. 7; see :func:`bbox_mask_terms` for the variants)."""
    return bbox_mask_terms(emb, instance_bbox, instance_imgid, instance_center, settings).pull_in


def push_out(emb, instance_bbox, instance_imgid, instance_center=None, settings: BboxMaskSettings = PAPER
             ) -> torch.Tensor:
    """Out-box push per instance [N] (Eq. 3 / Eq. 8)."""
    return bbox_mask_terms(emb, instance_bbox, instance_imgid, instance_center, settings).push_out


def push_inst(emb, instance_bbox, instance_imgid, instance_center=None, settings: BboxMaskSettings = PAPER
              ) -> torch.Tensor:
    """Cross-instance push per instance [N] (Eq. 4 / Eq. 9); its image mean is Eq. 9."""
    return bbox_mask_terms(emb, instance_bbox, instance_imgid, instance_center, settings).push_inst


def term_gradients(emb: torch.Tensor, instance_bbox: torch.Tensor, instance_imgid: torch.Tensor,
                   instance_center: Optional[torch.Tensor] = None, settings: BboxMaskSettings = PAPER
                   ) -> dict[str, torch.Tensor]:
    """∂L/∂emb of each part of the Bbox Mask Loss: ``pull_in``, ``push_out``, ``push_inst`` and ``total``.

    ``emb`` [B, D, H, W] is the raw map (it is detached and copied here). Each value has the shape of
    ``emb``; a term that does not depend on the map (the release-image variant has no pull) gives zeros.
    ``settings`` as for :func:`bbox_mask_terms`.
    """
    x = as_float(emb).detach().clone().requires_grad_(True)
    t = bbox_mask_terms(x, instance_bbox, instance_imgid, instance_center, settings)
    parts = {"pull_in": t.loss_pull_in, "push_out": t.loss_push_out, "push_inst": t.loss_push_inst, "total": t.loss}
    out = {}
    for name, value in parts.items():
        if not value.requires_grad:
            out[name] = torch.zeros_like(x)
            continue
        (g,) = torch.autograd.grad(value, x, retain_graph=True, allow_unused=True)
        out[name] = torch.zeros_like(x) if g is None else g.detach()
    return out
