"""The optimiser of a training run: AdamW, the AMP settings with their GradScaler, and the iterations per
epoch (train and the dry run build them the same way). The learning-rate schedule is :mod:`.schedule`."""
from __future__ import annotations

import torch

from ..config import Config
from .distributed import DistInfo
from .precision import amp_settings

__all__ = ["build_optimization"]


def build_optimization(cfg: Config, model, dinfo: DistInfo, loader):
    """AdamW, the AMP settings and their GradScaler, and the iterations per epoch of ``loader`` (train and
    the dry run build them the same way): (optimizer, scaler, use_amp, amp_dtype, use_scaler, iters_per_epoch)."""
    tc = cfg.train
    optimizer = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    use_amp, amp_dtype, use_scaler = amp_settings(tc.amp, dinfo.device)
    scaler = torch.amp.GradScaler("cuda", init_scale=16384.0, enabled=use_scaler)
    iters_per_epoch = len(loader) if tc.max_iters_per_epoch <= 0 else min(len(loader), tc.max_iters_per_epoch)
    if iters_per_epoch == 0:
        raise RuntimeError(f"training set is smaller than one batch of {tc.batch_size} images per process")
    return optimizer, scaler, use_amp, amp_dtype, use_scaler, iters_per_epoch
