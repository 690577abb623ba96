"""Seeding: the RNGs of a training run, and one epoch's data order as a function of (seed, epoch, rank).

The data order and augmentation of every epoch depend only on (seed, epoch, rank), so a resumed run
reproduces the losses of an uninterrupted one from the checkpoint on.
"""
from __future__ import annotations

import random
from typing import Iterator

import numpy as np
import torch

__all__ = ["seed_everything", "seed_worker", "epoch_batches"]


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def seed_worker(worker_id: int) -> None:  # DataLoader workers: derive every RNG from torch's seed
    s = torch.initial_seed() % (2**32)
    random.seed(s)
    np.random.seed(s)


def epoch_batches(loader, sampler, gen: torch.Generator, seed: int, epoch: int, rank: int) -> Iterator:
    """Make one epoch's data order and augmentation a function of (seed, epoch, rank) alone."""
    sampler.set_epoch(epoch)  # the order, and the epoch that travels with each index to the workers
    s = seed * 100_003 + epoch * 1_009 + rank
    gen.manual_seed(s)
    seed_everything(s)  # workers=0: the dataset draws from the global RNGs
    return iter(loader)
