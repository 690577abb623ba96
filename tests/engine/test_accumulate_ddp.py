"""Two gloo processes x accumulate 2 take the same step as one process x accumulate 4 on the same four
micro-batches (the gradients agree to float tolerance), and the DDP job's accumulating micro-steps run inside
DDP's own ``no_sync`` (a spy wrapped around the job's collaborator counts them)."""
from __future__ import annotations

import contextlib
import os

import pytest
import torch
import torch.multiprocessing as mp
from boir_ddp_helpers import free_port, torchrun_env

from boir_core.config import Config
from boir_core.engine.distributed import DistInfo
from boir_core.engine.training.job import build_job
from boir_core.engine.training.seeding import seed_everything

#: micro-batches of 2 images (the tiny set's images 0-7) and who takes them: one process all four in order,
#: two processes with DistributedSampler's round-robin share (rank 0: A, C; rank 1: B, D)
MICRO = 2
SHARE = {0: [0, 2], 1: [1, 3]}


def _micro_batches(job) -> list[dict]:
    """The same four micro-batches in every process (drawn after reseeding, as the dataset draws its
    augmentation from the global RNGs)."""
    from boir_core.data import collate_train

    seed_everything(123)
    items = [job.data.dataset[i] for i in range(4 * MICRO)]
    return [collate_train(items[i * MICRO:(i + 1) * MICRO]) for i in range(4)]


def _grads(job) -> dict[str, torch.Tensor]:
    return {k: p.grad.detach().clone() for k, p in job.core.named_parameters() if p.grad is not None}


class CountingNoSync:
    """Wraps the job's no_sync collaborator: counts the entries and delegates to the real one."""

    def __init__(self, real):
        self.real, self.entered = real, 0

    @contextlib.contextmanager
    def __call__(self):
        self.entered += 1
        with self.real():
            yield


def _worker(rank: int, world: int, port: int, cfg_dict: dict, out_dir: str) -> None:
    torchrun_env(rank, world, port)
    from boir_core.engine.distributed import cleanup_distributed, init_distributed

    cfg = Config.from_dict(cfg_dict)
    dinfo = init_distributed("cpu")
    try:
        job = build_job(cfg, dinfo)
        ddp = isinstance(job.model, torch.nn.parallel.DistributedDataParallel)
        is_ddp_no_sync = ddp and job.no_sync == job.model.no_sync  # the collaborator is DDP's own
        spy = CountingNoSync(job.no_sync)
        job.no_sync = spy
        micro = _micro_batches(job)
        job.model.train()
        result = job.step([micro[i] for i in SHARE[rank]])
        torch.save({"grads": _grads(job), "terms": result.terms, "no_sync_entered": spy.entered,
                    "is_ddp_no_sync": is_ddp_no_sync}, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        cleanup_distributed()


@pytest.mark.slow  # two spawned processes (about 10 s on 2 idle cores), like test_ddp.py
@pytest.mark.usefixtures("one_thread")
def test_two_gloo_processes_accumulating_2_equal_one_process_accumulating_4(tiny_cfg, tmp_path):
    base = tiny_cfg.override("data.input_size=64", "data.output_size=16", f"train.batch_size={MICRO}",
                             "train.clip_grad=1e9")
    mp.spawn(_worker, args=(2, free_port(), base.override("train.accumulate=2").to_dict(), str(tmp_path)),
             nprocs=2, join=True)
    one = build_job(base.override("train.accumulate=4"), DistInfo())
    one.model.train()
    result = one.step(_micro_batches(one))
    want = _grads(one)
    for rank in (0, 1):
        got = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert got["is_ddp_no_sync"] and got["no_sync_entered"] == 1  # micro-step 1 of 2 without a sync
        assert set(got["grads"]) == set(want)
        for k, g in want.items():  # DDP's mean over the ranks of each rank's mean over its micro-batches
            scale = float(g.abs().max()) + 1e-12
            torch.testing.assert_close(got["grads"][k], g, rtol=1e-4, atol=1e-5 * scale, msg=k)
        assert got["terms"]["total"] == pytest.approx(result.terms["total"], rel=1e-5)
