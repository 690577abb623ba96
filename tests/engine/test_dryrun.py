"""``train --dry-run``: the pre-flight of a long run, at the paper's W32 / 512 px settings on a COCO-format set
built here, with a local ImageNet file (no network).

The paper's batch is 20 images per GPU; on a 2-core CPU one W32 step at 512 px and batch 20 takes minutes and
well over 10 GB, so the test runs the paper's network and input size with a batch of 2 (and checks that the
report scales images per step with the batch and the number of processes)."""
from __future__ import annotations

import shutil
import statistics
from pathlib import Path

import pytest
import torch

from boir_core.__main__ import main
from boir_core.config import load_config

BATCH = 1  # one image per step: the paper-size step is what is checked, not the batch


def coco_layout_from_synthcrowd(root: Path, num_train: int) -> Path:
    """A COCO-format set in the layout the coco profile expects (annotations/coco_train.json,
    images/train2017/), made from SynthCrowd images and labels."""
    from boir_core.data.sources.synthetic import SynthCrowdSpec, make_synthcrowd

    synth = root / "synth"
    make_synthcrowd(synth, SynthCrowdSpec(num_train=num_train, num_val=1, seed=11, image_size=(96, 128), max_people=3))
    coco = root / "coco"
    (coco / "annotations").mkdir(parents=True)
    shutil.copytree(synth / "images" / "train", coco / "images" / "train2017")
    shutil.copy(synth / "annotations" / "person_keypoints_train.json", coco / "annotations" / "coco_train.json")
    return coco


@pytest.fixture(scope="module")
def imagenet_w32(tmp_path_factory):
    """A random hrnet_w32 classification checkpoint under the official names (timm's = the release's)."""
    import timm

    torch.manual_seed(0)
    sd = timm.create_model("hrnet_w32", pretrained=False).state_dict()
    path = tmp_path_factory.mktemp("imagenet") / "hrnetv2_w32_imagenet_pretrained.pth"
    torch.save(sd, path)
    return path


@pytest.mark.slow
def test_dry_run_at_paper_settings_reports_what_a_long_run_needs(tmp_path, imagenet_w32, capsys):
    coco = coco_layout_from_synthcrowd(tmp_path, num_train=6)
    rc = main(["train", "--config", "coco_w32", "--dry-run", f"data.root={coco}", f"model.pretrained={imagenet_w32}",
               f"train.batch_size={BATCH}", "data.workers=0", "train.device=cpu", "--run-dir", str(tmp_path / "run")])
    assert rc == 0
    out = capsys.readouterr().out
    assert not (tmp_path / "run").exists()  # a dry run writes nothing
    cfg = load_config("coco_w32", [f"data.root={coco}", f"model.pretrained={imagenet_w32}",
                                   f"train.batch_size={BATCH}", "data.workers=0", "train.device=cpu"])
    assert cfg.to_yaml().strip() in out  # the resolved config, in full
    assert cfg.data.input_size == 512 and cfg.model.backbone == "hrnet_w32"
    iters = 6 // BATCH  # 6 images, BATCH per step, one process
    assert f"images per step:    {BATCH} ({BATCH} per process x 1 process(es) x accumulate 1;" in out
    # the paper's 4 GPUs x 20 = 80 is not what this run steps with: the report says so
    assert f"effective batch:    {BATCH} (paper: 80)" in out and "WARNING:" in out
    assert f"steps:              {140 * iters:,} in all = 140 epochs x {iters}" in out
    assert f"initialisation:     ImageNet: {imagenet_w32}" in out
    assert "preset:             paper" in out
    # the W32 BoIR parameter counts of Table 5 (training network with its auxiliary heads, and inference)
    from boir_core.engine.inference.profile import profile

    with torch.device("meta"):
        counts = profile(cfg, params_only=True)["params"]
    assert f"parameters:         {counts['total']:,} training" in out and f"{counts['inference']:,} inference" in out
    assert "peak memory:" in out and "peak RSS of this process" in out and "step time:" in out
    assert "NON-FINITE" not in out


def test_dry_run_figures(tmp_path):
    """The returned figures are consistent with each other (small network, fast)."""
    from boir_core.engine.jobs.dryrun import dry_run

    coco = coco_layout_from_synthcrowd(tmp_path, num_train=5)
    cfg = load_config("coco_w32", [f"data.root={coco}", "model.pretrained=none", "train.batch_size=2",
                                   "data.workers=0", "train.device=cpu", "data.input_size=128",
                                   "data.output_size=32", "model.backbone=hrnet_w18_small", "train.epochs=3",
                                   "train.warmup_epochs=1", "preset=release"])
    r = dry_run(cfg, steps=3, log=lambda m: None)
    assert r["train_images"] == 5 and r["iters_per_epoch"] == 2 and r["total_steps"] == 6 and r["warmup_steps"] == 2
    assert r["images_per_step"] == 2 and r["steps_run"] == 3 and len(r["each_step_seconds"]) == 3
    assert r["step_seconds"] == pytest.approx(statistics.mean(r["each_step_seconds"][1:]), rel=1e-3, abs=1e-3)
    assert r["images_per_s"] == pytest.approx(2 / r["step_seconds"])
    assert r["estimated_hours"] == pytest.approx(6 * r["step_seconds"] / 3600)
    assert r["peak_memory"]["bytes"] > 100 * 2**20 and r["finite"] and r["preset"] == "release"
    assert r["initialisation"].startswith("none") and r["config"]["preset"] == "release"


def test_dry_run_plans_the_length_train_will_run(tmp_path, monkeypatch):
    """``train.max_steps`` and ``train.time_budget_s`` set the length of the run as ``train`` plans it
    (engine.training.budget), with the warm-up's share of the epochs; the report and its text say where it came from."""
    import boir_core.engine.jobs.dryrun as dr
    import boir_core.engine.training.job as job_mod
    from boir_core.engine.training.budget import Measurement, plan_run

    coco = coco_layout_from_synthcrowd(tmp_path, num_train=5)
    small = [f"data.root={coco}", "model.pretrained=none", "train.batch_size=2", "data.workers=0",
             "train.device=cpu", "data.input_size=128", "data.output_size=32", "model.backbone=hrnet_w18_small",
             "train.epochs=10", "train.warmup_epochs=2"]
    r = dr.dry_run(load_config("coco_w32", small + ["train.max_steps=7"]), steps=1, log=lambda m: None)
    assert (r["total_steps"], r["warmup_steps"], r["steps_from"]) == (7, 1, "max_steps")  # round(7 * 2 / 10)
    assert r["estimated_hours"] == pytest.approx(7 * r["step_seconds"] / 3600)
    assert "steps:              7 in all = train.max_steps (warm-up 1)" in dr.format_dry_run(r)

    # a time budget: as many steps as fit at the measured step time (here a fake clock: 0.5 s a reading)
    lrs = []
    real_set_lr = job_mod.set_lr
    monkeypatch.setattr(job_mod, "set_lr", lambda opt, lr: (lrs.append(lr), real_set_lr(opt, lr)))
    readings = iter(range(10_000))
    cfg = load_config("coco_w32", small + ["train.time_budget_s=60"])
    r = dr.dry_run(cfg, steps=2, log=lambda m: None, clock=lambda: 0.5 * next(readings))
    assert r["each_step_seconds"] == [0.5, 0.5] and r["step_seconds"] == 0.5
    want = plan_run(cfg.train, 2, Measurement(step_seconds=0.5))  # 60 s / 0.5 s; 5 images, batch 2: 2 an epoch
    assert (r["total_steps"], r["warmup_steps"], r["steps_from"]) == (120, want.warmup_steps, "time_budget") == (
        want.total_steps, 24, want.source)
    assert "120 in all = what fits in train.time_budget_s=60 s" in dr.format_dry_run(r)
    assert lrs[0] == pytest.approx(cfg.train.warmup_start_lr)  # the steps run follow the warm-up

    r = dr.dry_run(load_config("coco_w32", small), steps=1, log=lambda m: None)
    assert (r["total_steps"], r["warmup_steps"], r["steps_from"]) == (20, 4, "epochs")  # 10 x 2, 2 x 2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_dry_run_on_cuda_reports_max_memory_allocated(tmp_path):
    from boir_core.engine.jobs.dryrun import dry_run, format_dry_run

    coco = coco_layout_from_synthcrowd(tmp_path, num_train=4)
    cfg = load_config("coco_w32", [f"data.root={coco}", "model.pretrained=none", "train.batch_size=4",
                                   "data.workers=0", "train.device=cuda", "train.channels_last=true"])
    r = dry_run(cfg, steps=2, log=lambda m: None)
    assert r["peak_memory"]["kind"] == "cuda max_memory_allocated" and r["peak_memory"]["bytes"] > 2**28
    assert r["amp"]["autocast"] == "float16" and r["amp"]["grad_scaler"] and r["finite"]
    assert "cuda max_memory_allocated" in format_dry_run(r)


def test_gpu_check_without_cuda_says_so_and_exits_0():
    import os
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[2]
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", PYTHONPATH=str(repo))
    p = subprocess.run([sys.executable, str(repo / "benchmarks" / "gpu_check.py")], env=env, capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0 and "no CUDA device on this machine" in p.stdout and "--device cpu --tiny" in p.stdout
