"""Seeding: the RNGs of a training run, and one epoch's data order as a function of (seed, epoch, rank).

The data order and augmentation of every epoch depend only on (seed, epoch, rank), so a resumed run
reproduces the losses of an uninterrupted one from the checkpoint on.
"""
from __future__ import annotations

import itertools
import random
import signal
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from ...data import EpochSampler

__all__ = ["seed_everything", "seed_worker", "EpochKey", "epoch_batches", "ResumableEpochSampler"]


class ResumableEpochSampler(EpochSampler):
    """An :class:`~boir_core.data.EpochSampler` that can start an epoch after its first ``skip`` indices: a run
    resumed from a checkpoint written inside an epoch (Ctrl-C) continues with the batches it had not trained
    on, without loading the others. The order itself is unchanged: a function of (seed, epoch, rank)."""

    def __init__(self, sampler: torch.utils.data.Sampler):
        super().__init__(sampler)
        self.skip = 0

    def __iter__(self):
        return itertools.islice(super().__iter__(), self.skip, None)

    def __len__(self) -> int:
        return max(len(self.sampler) - self.skip, 0)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def seed_worker(worker_id: int) -> None:  # DataLoader workers: derive every RNG from torch's seed
    s = torch.initial_seed() % (2**32)
    random.seed(s)
    np.random.seed(s)
    # Ctrl-C in a terminal reaches the workers too: the training process decides (it saves a checkpoint at
    # the next step boundary, then stops its workers), so a worker must not die of it first
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@dataclass(frozen=True)
class EpochKey:
    """What one epoch's data order and augmentation are a function of: the run's ``seed`` (``train.seed``), the
    ``epoch`` and the process's ``rank``."""

    seed: int
    epoch: int
    rank: int

    def stream_seed(self) -> int:
        """The one seed the epoch's random streams (loader generator, Python, NumPy, torch) start from."""
        return self.seed * 100_003 + self.epoch * 1_009 + self.rank


def epoch_batches(loader, sampler, gen: torch.Generator, key: EpochKey, skip_batches: int = 0) -> Iterator:
    """The batches of ``loader`` for one epoch, their order and augmentation a function of ``key`` alone: ``sampler``
    (the loader's) is set to ``key.epoch``, and ``gen`` (the loader's generator) and the global RNGs are seeded from
    :meth:`EpochKey.stream_seed`.

    ``skip_batches``: start after that many batches of the epoch (a :class:`ResumableEpochSampler` only).
    """
    sampler.set_epoch(key.epoch)  # the order, and the epoch that travels with each index to the workers
    if skip_batches or hasattr(sampler, "skip"):
        if not hasattr(sampler, "skip"):
            raise TypeError(f"skipping batches needs a ResumableEpochSampler, got {type(sampler).__name__}")
        sampler.skip = int(skip_batches) * int(loader.batch_size)
    s = key.stream_seed()
    gen.manual_seed(s)
    seed_everything(s)  # workers=0: the dataset draws from the global RNGs
    return iter(loader)
