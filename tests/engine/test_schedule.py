"""Warm-up + cosine schedule against its closed form (docs/training.md#learning-rate-schedule)."""
import math

import numpy as np
import pytest
import torch

from boir_core.engine.training.schedule import set_lr, warmup_cosine_schedule


def test_schedule_closed_form():
    total, warm = 50, 10
    lrs = warmup_cosine_schedule(total, warm, base_lr=1e-3, warmup_start_lr=1e-12, min_lr=1e-6)
    assert lrs.shape == (total,)
    # warm-up: linear, both endpoints included
    assert lrs[0] == pytest.approx(1e-12) and lrs[warm - 1] == pytest.approx(1e-3)
    assert np.allclose(np.diff(lrs[:warm]), (1e-3 - 1e-12) / (warm - 1))
    n_rest = total - warm
    for i in range(n_rest):
        expect = 1e-6 + 0.5 * (1e-3 - 1e-6) * (1 + math.cos(math.pi * i / n_rest))
        assert lrs[warm + i] == pytest.approx(expect, rel=1e-12)
    assert lrs[warm] == pytest.approx(1e-3) and lrs[-1] > 1e-6 and np.all(np.diff(lrs[warm:]) < 0)


def test_schedule_edge_cases():
    assert warmup_cosine_schedule(5, 0)[0] == pytest.approx(1e-3)
    assert len(warmup_cosine_schedule(3, 10)) == 3  # warm-up longer than the run is cut
    with pytest.raises(ValueError):
        warmup_cosine_schedule(0, 0)


def test_set_lr_writes_every_group():
    p1, p2 = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([{"params": [p1]}, {"params": [p2], "lr": 5.0}], lr=1.0)
    set_lr(opt, 0.25)
    assert [g["lr"] for g in opt.param_groups] == [0.25, 0.25]


@pytest.mark.parametrize("num_images,batch_size,world_size,cap", [
    (16, 8, 1, 0), (17, 8, 1, 0), (7, 8, 1, 0), (1, 4, 1, 0), (17, 4, 2, 0), (5, 4, 3, 0), (100, 8, 1, 6),
    (100, 8, 4, 0), (3, 2, 2, 0),
])
def test_iterations_per_epoch_matches_the_training_loader(num_images, batch_size, world_size, cap):
    """The count the notebooks plot the schedule with equals len() of the loader the training loop builds."""
    from torch.utils.data import DataLoader, DistributedSampler

    from boir_core.engine.training.schedule import iterations_per_epoch

    data = list(range(num_images))
    for rank in range(world_size):
        sampler = DistributedSampler(data, num_replicas=world_size, rank=rank, shuffle=True, drop_last=False)
        loader = DataLoader(data, batch_size=batch_size, sampler=sampler, drop_last=len(sampler) >= batch_size)
        expected = len(loader) if cap <= 0 else min(len(loader), cap)
        assert iterations_per_epoch(num_images, batch_size, world_size, cap) == expected


def test_schedule_defaults_are_the_release_values():
    """Called with only the lengths and the base rate, the warm-up starts at 1e-12 and the cosine ends
    towards 1e-6 (docs/training.md#training-procedure)."""
    lrs = warmup_cosine_schedule(12, 2, base_lr=1e-3)
    assert lrs[0] == pytest.approx(1e-12, rel=1e-9, abs=0)
    n_rest = 10
    assert lrs[-1] == pytest.approx(1e-6 + 0.5 * (1e-3 - 1e-6) * (1 + math.cos(math.pi * 9 / n_rest)), rel=1e-12)


def test_schedule_of_one_iteration_and_one_warmup_step():
    assert warmup_cosine_schedule(1, 0, base_lr=0.5).tolist() == [0.5]
    # a warm-up of one iteration is that one iteration at the start rate, then the cosine
    lrs = warmup_cosine_schedule(4, 1, base_lr=0.5, warmup_start_lr=0.1, min_lr=0.0)
    assert lrs.shape == (4,) and lrs[0] == pytest.approx(0.1) and lrs[1] == pytest.approx(0.5)
    assert lrs[2] == pytest.approx(0.25 * (1 + math.cos(math.pi / 3)))
    with pytest.raises(ValueError, match="total_iters must be positive, got -2"):
        warmup_cosine_schedule(-2, 0)


def test_iterations_per_epoch_edges_defaults_and_refusals():
    """Closed form: ceil(N / world) images a rank, full batches only (one batch when fewer images), whole
    accumulation groups, the cap; an int, with one process and no cap by default; each non-positive size refused
    by name and value."""
    from boir_core.engine.training.schedule import iterations_per_epoch

    assert iterations_per_epoch(17, 8) == 2 and isinstance(iterations_per_epoch(17, 8), int)
    assert isinstance(iterations_per_epoch(17, 4, 1, 0, accumulate=2), int)
    assert iterations_per_epoch(5, 1) == 5  # batches of one image are a valid choice
    assert iterations_per_epoch(8, 8) == 1 and iterations_per_epoch(100, 8, 1, 1) == 1  # cap 1 is a cap
    for args in ((0, 8, 1), (16, 0, 1), (16, 8, 0), (-3, 8, 1)):
        with pytest.raises(ValueError, match="^num_images, batch_size and world_size must be positive, got "
                                             + ", ".join(str(a) for a in args) + "$"):
            iterations_per_epoch(*args)
