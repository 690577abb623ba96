"""The learning-rate schedule of the paper and the release (spec §5).

Per iteration, precomputed for the whole run: a linear warm-up from ``warmup_start_lr`` to ``base_lr`` over
``warmup_iters`` steps (both endpoints included), then a cosine from ``base_lr`` down to ``min_lr``::

    lr_i = min_lr + ½ (base_lr − min_lr) (1 + cos(π i / N_rest)),   i = 0 … N_rest − 1
"""
from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["warmup_cosine_schedule", "set_lr"]


def warmup_cosine_schedule(
    total_iters: int,
    warmup_iters: int,
    base_lr: float = 1e-3,
    warmup_start_lr: float = 1e-12,
    min_lr: float = 1e-6,
) -> np.ndarray:
    """Return the learning rate of every iteration of the run (length ``total_iters``)."""
    if total_iters <= 0:
        raise ValueError(f"total_iters must be positive, got {total_iters}")
    warmup_iters = max(0, min(int(warmup_iters), total_iters))
    warm = np.linspace(warmup_start_lr, base_lr, warmup_iters) if warmup_iters > 0 else np.zeros(0)
    n_rest = total_iters - warmup_iters
    i = np.arange(n_rest)
    cos = min_lr + 0.5 * (base_lr - min_lr) * (1 + np.cos(math.pi * i / max(n_rest, 1)))
    return np.concatenate([warm, cos]).astype(np.float64)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Write ``lr`` into every parameter group (as the release does each iteration)."""
    for group in optimizer.param_groups:
        group["lr"] = float(lr)
