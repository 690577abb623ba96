"""The optimiser of a training run: AdamW, the precision with its GradScaler, and the iterations per epoch
(built once, by :func:`boir_core.engine.training.job.build_job`). The learning-rate schedule is :mod:`.schedule`."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ...config import Config
from ..distributed import DistInfo
from .precision import Precision

__all__ = ["Optimization", "build_optimization"]


@dataclass
class Optimization:
    """What steps the weights: the optimiser, its GradScaler (disabled unless the precision needs one), the
    precision the steps compute in, and the iterations of one epoch."""

    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    precision: Precision
    iters_per_epoch: int


def build_optimization(cfg: Config, model, dinfo: DistInfo, loader) -> Optimization:
    """AdamW over ``model``'s parameters, the precision of ``train.amp`` on this device with its GradScaler, and
    the iterations (optimisation steps) per epoch of ``loader``, whose batches are micro-batches: ``len(loader) //
    train.accumulate``, capped by ``train.max_steps_per_epoch``."""
    tc = cfg.train
    optimizer = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    precision = Precision.of(tc.amp, dinfo.device)
    scaler = torch.amp.GradScaler("cuda", init_scale=16384.0, enabled=precision.grad_scaler)
    steps = len(loader) // max(tc.accumulate, 1)  # a step takes train.accumulate micro-batches of the loader
    iters_per_epoch = steps if tc.max_steps_per_epoch <= 0 else min(steps, tc.max_steps_per_epoch)
    if iters_per_epoch == 0:
        what = (f"one batch of {tc.batch_size} images per process" if tc.accumulate <= 1 else
                f"one step of {tc.accumulate} micro-batches x {tc.batch_size} images per process (train.accumulate)")
        raise RuntimeError(f"training set is smaller than {what}")
    return Optimization(optimizer, scaler, precision, iters_per_epoch)
