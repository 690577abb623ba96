"""Embedding similarity maps: how alike is every pixel's embedding to one query embedding?

This is the picture behind the paper's Fig. 1 (b–f) and the soft mask of Eq. 1. Embeddings are
L2-normalised over their D channels first (as in the Bbox Mask Loss). Kernels:

- ``"gaussian"`` (the paper's ψ, Eqs. 8/9): exp(−β/D·‖e(u) − p‖²)
- ``"release"`` (the released soft mask): exp(−β·‖e(u) − p‖²), no 1/D — much sharper
- ``"cosine"``: cos(e(u), p) ∈ [−1, 1]

Plain functions of tensors or arrays; notebooks 03 and 07 reuse them.
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["KERNELS", "similarity_map", "query_at"]

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
        sq = ((e - q[:, None, None]) ** 2).sum(0)
        scale = beta / e.shape[0] if kernel == "gaussian" else beta
        return torch.exp(-scale * sq)
