"""What every variant of the Bbox Mask Loss shares: the vectorised sums over box pixels.

The normalised map e = x/‖x‖ is never materialised: every sum over pixels is a ``bmm`` of the raw map x
with weights that already include 1/‖x‖ (one pass over x instead of three). Instances are laid out per
image in C padded slots (:func:`~._common.padded_capacity`), so that one ``bmm`` gives every instance's
similarity to every pixel of its own image, and a second one the sums Σ s·e, Σ_{B_i} e and Σ e.
Nothing here loops over people or images. The variants themselves are in :mod:`.bbox_mask` (paper) and
:mod:`.bbox_mask_release` (release); :class:`BboxMaskSettings` (variant, kernel, distance, β, τ, where p_i is
read) is the one object every variant reads its settings from.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

from ._common import as_float, check_choice, padded_capacity, rank_in_image

__all__ = ["VARIANTS", "KERNELS", "DISTANCES", "INSTANCE_POINTS", "BboxMaskSettings", "BboxMaskTerms", "EmbeddingMap",
           "Instances", "BoxSums", "soft_box_sums", "union_box_sums",
           "pairwise_r"]


VARIANTS = ("paper", "release-image", "release-instance")
KERNELS = ("ae", "contrastive")
DISTANCES = ("l2", "cosine")
INSTANCE_POINTS = ("center", "box")


@dataclass(frozen=True)
class BboxMaskSettings:
    """The settings of the Bbox Mask Loss (module docstring of :mod:`.bbox_mask`), checked when made.

    ``variant`` (paper / release-image / release-instance), ``kernel`` (``"ae"``: the Gaussian ψ;
    ``"contrastive"``: InfoNCE), ``distance`` r (``"l2"`` / ``"cosine"``), ``beta`` β of ψ, ``temperature``
    τ of the contrastive kernel, ``instance_point`` (where p_i is read: ``"center"`` / ``"box"``);
    ``capacity``: instance slots per image for the padded layout (default: see ``padded_capacity``; the
    results do not depend on it). :meth:`of` reads them from a config's ``loss`` section.
    """

    variant: str = "paper"
    kernel: str = "ae"
    distance: str = "l2"
    beta: float = 10.0
    temperature: float = 0.05
    instance_point: str = "center"
    capacity: Optional[int] = None

    def __post_init__(self):
        check_choice("variant", self.variant, VARIANTS)
        check_choice("kernel", self.kernel, KERNELS)
        check_choice("distance", self.distance, DISTANCES)
        check_choice("instance_point", self.instance_point, INSTANCE_POINTS)
        if self.variant != "paper" and (self.kernel != "ae" or self.distance != "l2"):
            raise ValueError(f"variant={self.variant!r} is the released AE/L2 loss; kernel={self.kernel!r} and "
                             f"distance={self.distance!r} exist only for variant='paper'")

    @classmethod
    def of(cls, loss_cfg) -> "BboxMaskSettings":
        """The settings of a ``LossConfig`` (``bbox_mask_variant``, ``emb_loss``, ``distance``, ``beta``,
        ``temperature``, ``instance_point``)."""
        return cls(variant=loss_cfg.bbox_mask_variant, kernel=loss_cfg.emb_loss, distance=loss_cfg.distance,
                   beta=loss_cfg.beta, temperature=loss_cfg.temperature, instance_point=loss_cfg.instance_point)


@dataclass
class BboxMaskTerms:
    """Everything :func:`~.bbox_mask.bbox_mask_terms` computes. Per-instance tensors are [N] or [N, D]."""

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


def _inverse_norms(x: torch.Tensor):
    """1/max(‖x‖, 1e-12) per pixel and ‖x/max(‖x‖, 1e-12)‖² (1, or 0 for an all-zero vector), both [B, HW];
    the same convention as ``F.normalize``."""
    sumsq = (x * x).sum(1).reshape(x.shape[0], -1)
    # clamp before the square root (max(sqrt(s), 1e-12) == sqrt(max(s, 1e-24))): sqrt's gradient at an
    # all-zero pixel is infinite, and clamping after it would turn that into NaN gradients
    inv = 1 / sumsq.clamp(min=1e-24).sqrt()
    return inv, sumsq * inv * inv


@dataclass
class EmbeddingMap:
    """The raw map x [B, D, H, W] with 1/‖x‖ per pixel, and the detached map the soft masks come from."""

    x: torch.Tensor
    inv: torch.Tensor  # [B, HW] 1/‖x‖
    xs: torch.Tensor  # [B, D, H, W] similarity map, detached
    inv_s: torch.Tensor  # [B, HW]
    unit_sq_s: torch.Tensor  # [B, HW] ‖e_s‖²: 1, or 0 where xs is all zero

    @classmethod
    def of(cls, emb: torch.Tensor, similarity_emb: Optional[torch.Tensor] = None) -> "EmbeddingMap":
        x = as_float(emb)
        if x.ndim == 4 and x.shape[1] == 1:
            # D = 1: the unit "vector" of a pixel is its sign, ±1 (the value F.normalize gives for |x| ≥ 1e-12).
            # sign() makes explicit that its derivative is 0: with D = 1 no term sends any gradient to the map.
            x = torch.sign(x)
        inv, unit_sq = _inverse_norms(x)
        if similarity_emb is None:
            return cls(x, inv, x.detach(), inv.detach(), unit_sq.detach())
        xs = as_float(similarity_emb).detach().to(x.dtype)
        if xs.shape != x.shape:
            raise ValueError(f"similarity_emb shape {tuple(xs.shape)} != emb shape {tuple(x.shape)}")
        return cls(x, inv, xs, *_inverse_norms(xs))

    @property
    def num_images(self) -> int:
        return self.x.shape[0]

    @property
    def dim(self) -> int:
        return self.x.shape[1]

    @property
    def height(self) -> int:
        return self.x.shape[2]

    @property
    def width(self) -> int:
        return self.x.shape[3]

    @property
    def hw(self) -> int:
        return self.height * self.width

    @property
    def dtype(self) -> torch.dtype:
        return self.x.dtype

    def flat(self) -> torch.Tensor:
        return self.x.reshape(self.num_images, self.dim, self.hw)

    def flat_s(self) -> torch.Tensor:
        return self.xs.reshape(self.num_images, self.dim, self.hw)

    def read(self, imgid: torch.Tensor, point_yx: torch.Tensor):
        """(p, q) [N, D]: the unit vectors e and e_s at each (row, column); p has a gradient, q none."""
        index = point_yx[:, 0] * self.width + point_yx[:, 1]
        p = self.flat()[imgid, :, index] * self.inv[imgid, index][:, None]
        q = self.flat_s()[imgid, :, index] * self.inv_s[imgid, index][:, None]
        return p, q

    def pixel_sums(self, weights: torch.Tensor) -> torch.Tensor:
        """Σ_u w_k(u)·e(u) for weight maps [B, K, HW]: [B, K, D], one ``bmm``."""
        return torch.bmm(weights * self.inv[:, None, :], self.flat().transpose(1, 2))


@dataclass
class Instances:
    """The people of a batch: their image, box pixel sets (rows × columns) and where p is read."""

    imgid: torch.Tensor  # [N] long
    num_images: int
    rows: torch.Tensor  # [N, H] bool
    cols: torch.Tensor  # [N, W] bool
    valid: torch.Tensor  # [N] bool
    point_yx: torch.Tensor  # [N, 2] long

    def __len__(self) -> int:
        return self.imgid.shape[0]

    def masks(self, dtype: torch.dtype) -> torch.Tensor:
        """B_i as [N, H, W] in ``dtype``."""
        return (self.rows[:, :, None] & self.cols[:, None, :]).to(dtype)

    def same_image(self) -> torch.Tensor:
        """[N, N] bool: i and j are valid people of one image (the diagonal included)."""
        return (self.imgid[:, None] == self.imgid[None, :]) & self.valid[:, None] & self.valid[None, :]

    def others(self) -> torch.Tensor:
        """[N, N] bool: j ≠ i is a valid person of i's image."""
        return self.same_image() & ~torch.eye(len(self), dtype=torch.bool, device=self.imgid.device)

    def count(self, dtype: torch.dtype) -> torch.Tensor:
        """[N]: the number of valid people in i's image."""
        per_image = torch.zeros(self.num_images, dtype=dtype, device=self.imgid.device)
        return per_image.index_add_(0, self.imgid, self.valid.to(dtype))[self.imgid]


@dataclass
class BoxSums:
    """Per-instance sums over pixels of its own image: Σ_{B_i} s·e, Σ_{B_i} s, Σ_{B_i} e, |B_i|, Σ e."""

    soft_num: torch.Tensor  # [N, D]
    soft_sum: torch.Tensor  # [N]
    box_sum: torch.Tensor  # [N, D]
    area: torch.Tensor  # [N]
    total: torch.Tensor  # [N, D]
    hw: int

    def soft_mean(self, p: torch.Tensor, fallback: torch.Tensor) -> torch.Tensor:
        """p̄ = Σ s·e / Σ s (Eq. 2), and p itself where ``fallback``."""
        tiny = torch.finfo(self.soft_sum.dtype).tiny
        return torch.where(fallback[:, None], p, self.soft_num / self.soft_sum.clamp(min=tiny)[:, None])

    @property
    def outside_count(self) -> torch.Tensor:
        return self.hw - self.area

    @property
    def has_outside(self) -> torch.Tensor:
        return self.outside_count > 0

    def outside_mean(self) -> torch.Tensor:
        """p̄ᶜ = mean of e outside B_i (Eq. 3); 0 for a box that covers the whole map."""
        return (self.total - self.box_sum) / self.outside_count.clamp(min=1)[:, None]


def soft_box_sums(emb: EmbeddingMap, people: Instances, q: torch.Tensor, kappa: float, distance: str = "l2",
                  capacity: Optional[int] = None) -> BoxSums:
    """The sums behind p̄ and p̄ᶜ, with the soft mask s_i(u) = exp(−κ·r(e_s(u), q_i)) on B_i (no gradient).

    r is ‖·‖² (``"l2"``) or 2·(1 − cos) (``"cosine"``), clamped at 0; κ is the variant's kernel scale.
    """
    num_images, hw, dtype = emb.num_images, emb.hw, emb.dtype
    cap = padded_capacity(people.imgid, num_images, capacity)
    slot = (people.imgid, rank_in_image(people.imgid, num_images))
    masks = torch.zeros(num_images, cap, emb.height, emb.width, dtype=dtype, device=emb.x.device)
    masks.index_put_(slot, people.masks(dtype))
    masks = masks.reshape(num_images, cap, hw)
    with torch.no_grad():
        q_pad = torch.zeros(num_images, cap, emb.dim, dtype=dtype, device=emb.x.device)
        q_pad.index_put_(slot, q)
        dots = torch.bmm(q_pad, emb.flat_s()) * emb.inv_s[:, None, :]  # q · e(u), e unit: [B, C, HW]
        if distance == "cosine":
            q_norm = q_pad.norm(dim=-1, keepdim=True).clamp(min=1e-12)
            r_map = (2 * (1 - dots / (q_norm * emb.unit_sq_s.sqrt()[:, None, :].clamp(min=1e-12)))).clamp(min=0)
        else:
            r_map = ((q_pad * q_pad).sum(-1, keepdim=True) + emb.unit_sq_s[:, None, :] - 2 * dots).clamp(min=0)
        soft = torch.exp(-kappa * r_map) * masks
    ones = torch.ones(num_images, 1, hw, dtype=dtype, device=emb.x.device)
    sums = emb.pixel_sums(torch.cat([soft, masks, ones], dim=1))  # [B, 2C + 1, D]
    img, rank = slot
    return BoxSums(soft_num=sums[img, rank], soft_sum=soft.sum(-1)[img, rank], box_sum=sums[img, cap + rank],
                   area=masks.sum(-1)[img, rank], total=sums[:, 2 * cap][img], hw=hw)


def union_box_sums(emb: EmbeddingMap, people: Instances):
    """Per image: Σ e over the union of its boxes [B, D], Σ e over the image [B, D], the union's size [B]."""
    union = torch.zeros(emb.num_images, emb.height, emb.width, dtype=emb.dtype, device=emb.x.device)
    union.index_put_((people.imgid,), people.masks(emb.dtype), accumulate=True)
    union = (union > 0).to(emb.dtype).reshape(emb.num_images, 1, emb.hw)
    sums = emb.pixel_sums(torch.cat([union, torch.ones_like(union)], dim=1))  # [B, 2, D]
    return sums[:, 0], sums[:, 1], union.sum(-1)[:, 0]


def pairwise_r(p: torch.Tensor, distance: str = "l2") -> torch.Tensor:
    """r(p_i, p_j) for all pairs [N, N] (matrix form, clamped at 0)."""
    if distance == "cosine":
        q = F.normalize(p, dim=-1)
        return (2 * (1 - q @ q.T)).clamp(min=0)
    sq = (p * p).sum(-1)
    return (sq[:, None] + sq[None, :] - 2 * p @ p.T).clamp(min=0)
