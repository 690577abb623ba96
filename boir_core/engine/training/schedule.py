"""The learning-rate schedule of the paper and the release (docs/training.md#learning-rate-schedule).

Per iteration, precomputed for the whole run: a linear warm-up from ``warmup_start_lr`` to ``base_lr`` over
``warmup_iters`` steps (both endpoints included), then a cosine from ``base_lr`` down to ``min_lr``::

    lr_i = min_lr + ½ (base_lr − min_lr) (1 + cos(π i / N_rest)),   i = 0 … N_rest − 1
"""
from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["warmup_cosine_schedule", "iterations_per_epoch", "set_lr"]


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


def iterations_per_epoch(num_images: int, batch_size: int, world_size: int = 1,
                         max_steps_per_epoch: int = 0, accumulate: int = 1) -> int:
    """Iterations (optimisation steps) of one epoch per process, as the training loop counts them.

    Each of ``world_size`` processes sees ceil(num_images / world_size) images (the distributed sampler pads
    the last share); incomplete batches are dropped whenever at least one full batch exists (a batch of one
    image would break BatchNorm in ASPP's image-pool branch); a step takes ``accumulate`` of these batches
    (``train.accumulate``; an incomplete last group is dropped); ``max_steps_per_epoch`` > 0 caps the count.
    """
    if num_images <= 0 or batch_size <= 0 or world_size <= 0:
        raise ValueError(f"num_images, batch_size and world_size must be positive, got {num_images}, "
                         f"{batch_size}, {world_size}")
    per_rank = math.ceil(num_images / world_size)
    n = (per_rank // batch_size if per_rank >= batch_size else 1) // max(int(accumulate), 1)
    return min(n, max_steps_per_epoch) if max_steps_per_epoch > 0 else n


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Write ``lr`` into every parameter group (as the release does each iteration)."""
    for group in optimizer.param_groups:
        group["lr"] = float(lr)
