"""Embedding similarity maps, and how well a map keeps people apart.

**Similarity maps** (:func:`similarity_map`): how alike is every pixel's embedding to one query embedding?
This is the picture behind the paper's Fig. 1 (b–f) and the soft mask of Eq. 1. Embeddings are
L2-normalised over their D channels first (as in the Bbox Mask Loss). Kernels:

- ``"gaussian"`` (the paper's ψ, Eqs. 8/9): exp(−β/D·‖e(u) − p‖²), the loss's own
  :func:`boir_core.losses.psi`;
- ``"release"`` (the released soft mask): exp(−β·‖e(u) − p‖²), no 1/D — much sharper;
- ``"cosine"``: cos(e(u), p) ∈ [−1, 1].

**Regions** (:func:`box_pixels`, :func:`difference_pixels`, :func:`region_mean`): the pixel set of a box is the
Bbox Mask Loss's B_i (:func:`boir_core.losses.box_masks`: pixel centers inside the box, plus the center
pixel); B∖A is the pixels of B's box that are not in A's. The mean similarity of A's center over B∖A says how
much of A's similarity leaks onto the part of B that A does not cover.

**Separation** (:func:`instance_embeddings`, :func:`separation_score`): a fixed number of pixels sampled
(seeded) inside each person's box, and the silhouette score of their embeddings grouped by person, in the
embedding space itself (scikit-learn, Euclidean on the L2-normalised vectors): near 1 when each person's
pixels sit together and far from the others', near 0 (or below) when people are mixed.

Plain functions of tensors or arrays; notebooks 03 and 07 reuse them.
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F

from ..losses import box_masks, distance_r, psi

__all__ = ["KERNELS", "similarity_map", "query_at", "box_pixels", "difference_pixels", "region_mean",
           "instance_pixels_sample", "instance_embeddings", "separation_score"]

KERNELS = ("gaussian", "release", "cosine")

ArrayLike = Union[torch.Tensor, np.ndarray]


def _as_tensor(x: ArrayLike) -> torch.Tensor:
    t = torch.as_tensor(x)
    return t if t.is_floating_point() else t.float()


def query_at(emb: ArrayLike, point: Sequence[int]) -> torch.Tensor:
    """The normalised embedding at pixel ``point`` = (row, column) of a [D, H, W] map."""
    e = _as_tensor(emb)
    if e.dim() != 3:
        raise ValueError(f"emb must be [D, H, W], got shape {tuple(e.shape)}")
    row, col = int(point[0]), int(point[1])
    if not (0 <= row < e.shape[1] and 0 <= col < e.shape[2]):
        raise ValueError(f"point (row={row}, col={col}) lies outside the {e.shape[1]}x{e.shape[2]} map")
    return F.normalize(e[:, row, col], dim=0)


def similarity_map(emb: ArrayLike, point: Optional[Sequence[int]] = None, query: Optional[ArrayLike] = None,
                   beta: float = 10.0, kernel: str = "gaussian") -> torch.Tensor:
    """Similarity [H, W] of every pixel of a [D, H, W] embedding map to the pixel ``point`` = (row, column)
    or to an explicit ``query`` vector [D] (normalised here). No gradient is kept."""
    if kernel not in KERNELS:
        raise ValueError(f"kernel={kernel!r} is not one of {list(KERNELS)}")
    if (point is None) == (query is None):
        raise ValueError("give exactly one of point=(row, col) or query=[D] vector")
    with torch.no_grad():
        e = _as_tensor(emb)
        if e.dim() != 3:
            raise ValueError(f"emb must be [D, H, W], got shape {tuple(e.shape)}")
        e = F.normalize(e, dim=0)
        q = query_at(e, point) if point is not None else F.normalize(_as_tensor(query).to(e.dtype), dim=0)
        if q.shape[0] != e.shape[0]:
            raise ValueError(f"query has {q.shape[0]} channels, emb has {e.shape[0]}")
        if kernel == "cosine":
            return torch.einsum("dhw,d->hw", e, q)
        r = distance_r(e.permute(1, 2, 0), q)  # ‖e(u) − p‖², the loss's distance
        return psi(r, beta, e.shape[0] if kernel == "gaussian" else 1)


# ---------------------------------------------------------------------------------------------------
# regions of a map: box pixel sets, B∖A, mean over a region

def box_pixels(boxes_xywh: ArrayLike, height: int, width: int) -> torch.Tensor:
    """The pixel sets [N, H, W] (bool) of ``xywh`` boxes given in *map* pixels: the Bbox Mask Loss's B_i
    (:func:`boir_core.losses.box_masks`, paper variant: pixel (u, v) is in when its center (u + ½, v + ½)
    lies in the box, and the pixel holding the box center always is), clipped to the map."""
    b = torch.as_tensor(np.asarray(boxes_xywh, dtype=np.float64)).reshape(-1, 4)
    return box_masks(b, int(height), int(width))


def difference_pixels(box_b: Sequence[float], box_a: Sequence[float], height: int, width: int) -> torch.Tensor:
    """B∖A [H, W] (bool): the pixels of box B that are not pixels of box A (both ``xywh`` in map pixels)."""
    m = box_pixels([list(box_b), list(box_a)], height, width)
    return m[0] & ~m[1]


def region_mean(values: ArrayLike, mask: ArrayLike) -> float:
    """Mean of a [H, W] map over the pixels where ``mask`` is true; NaN for an empty region."""
    v = np.asarray(values.detach().cpu() if hasattr(values, "detach") else values, dtype=np.float64)
    m = np.asarray(mask.detach().cpu() if hasattr(mask, "detach") else mask, dtype=bool)
    if v.shape != m.shape:
        raise ValueError(f"values {v.shape} and mask {m.shape} must have the same shape")
    return float(v[m].mean()) if m.any() else float("nan")


# ---------------------------------------------------------------------------------------------------
# separation of people in an embedding map

def instance_pixels_sample(boxes_xywh: ArrayLike, height: int, width: int, per_person: int, seed: int = 0,
                           exclusive: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``per_person`` pixels drawn without replacement inside each box (``xywh``, map pixels).

    With ``exclusive`` (default) a pixel that lies in two or more boxes belongs to nobody and is never drawn
    (its owner is ambiguous); a person with fewer than ``per_person`` such pixels is left out. Draws are seeded:
    person i's come from ``numpy.random.default_rng([seed, i])``, so they do not depend on the other people.
    Returns ``pixels`` [n, 2] (row, column) and ``labels`` [n] (the box index of each pixel), people in box order.
    """
    if int(per_person) < 1:
        raise ValueError(f"per_person must be >= 1, got {per_person}")
    masks = box_pixels(boxes_xywh, height, width).numpy()
    if exclusive and len(masks):
        masks = masks & (masks.sum(0) == 1)[None]
    pixels, labels = [], []
    for i, m in enumerate(masks):
        rows, cols = np.nonzero(m)  # row-major order: the draw depends on the seed only
        if len(rows) < int(per_person):
            continue
        pick = np.random.default_rng([int(seed), i]).choice(len(rows), size=int(per_person), replace=False)
        pixels.append(np.stack([rows[pick], cols[pick]], axis=1))
        labels.append(np.full(int(per_person), i))
    if not pixels:
        return np.zeros((0, 2), np.int64), np.zeros(0, np.int64)
    return np.concatenate(pixels).astype(np.int64), np.concatenate(labels).astype(np.int64)


def instance_embeddings(features: ArrayLike, boxes_xywh: ArrayLike, per_person: int = 32, seed: int = 0,
                        exclusive: bool = True, normalise: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The embedding vectors of :func:`instance_pixels_sample`'s pixels: ``X`` [n, C] and ``labels`` [n].

    ``features`` is a [C, H, W] map, ``boxes_xywh`` in its pixels. With ``normalise`` (default) each vector
    is L2-normalised, as the Bbox Mask Loss sees an embedding."""
    f = torch.as_tensor(np.asarray(features.detach().cpu() if hasattr(features, "detach") else features))
    if f.dim() != 3:
        raise ValueError(f"features must be [C, H, W], got shape {tuple(f.shape)}")
    f = f.double()
    pixels, labels = instance_pixels_sample(boxes_xywh, f.shape[1], f.shape[2], per_person, seed, exclusive)
    x = f[:, pixels[:, 0], pixels[:, 1]].T if len(pixels) else f.new_zeros((0, f.shape[0]))
    if normalise:
        x = F.normalize(x, dim=1)
    return x.numpy(), labels


def separation_score(x: ArrayLike, labels: ArrayLike) -> float:
    """The silhouette score (scikit-learn, Euclidean) of the vectors ``x`` [n, C] grouped by ``labels``, in
    [−1, 1]; NaN when there are fewer than two groups (or every point is its own group)."""
    x = np.asarray(x, dtype=np.float64)
    labels = np.asarray(labels)
    if x.ndim != 2 or len(x) != len(labels):
        raise ValueError(f"x must be [n, C] with one label per row, got {x.shape} and {labels.shape}")
    groups = len(np.unique(labels))
    if groups < 2 or groups >= len(labels):
        return float("nan")
    from sklearn.metrics import silhouette_score  # local: scikit-learn's import is slow, only this needs it

    return float(silhouette_score(x, labels, metric="euclidean"))
