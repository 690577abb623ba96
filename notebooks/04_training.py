# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 04 · Training BoIR
#
# This notebook explains the training loop of `boir_core.engine.train` and runs it. By default it trains the
# `tiny` configuration (its own schedule: 2 epochs of 3 iterations) on the embedded SynthCrowd data; papermill
# parameters turn it into a full GPU run (`config`, `data_root`, `gpus`). A parameter left at `None` takes the
# config's value, so `-p config coco_w32` trains exactly the paper's COCO schedule.
#
# What happens in one iteration (spec §5, paper §4.2):
#
# 1. a batch of augmented images with their targets (notebook 01) goes through the network (notebook 02):
#    backbone → ASPP neck → center / BUK / embedding / bbox heads, and the instance keypoint head at the
#    (jittered) ground-truth centers;
# 2. the loss terms (notebook 03) are computed in fp32 and summed with the paper's unit weights (Eq. 5) —
#    or the release's weights and per-image division with `loss.weighting=release` (the demo config uses
#    these: with the instance heatmaps weighted x4 a short CPU run learns the keypoints faster);
# 3. AdamW (lr 1e-3, weight decay 0.025) takes a step after the gradient norm is clipped at 10, with the
#    learning rate set per iteration from a linear warm-up + cosine schedule.
#
# Mixed precision is used on CUDA (fp16 autocast with a gradient scaler; `train.amp=bf16` for bfloat16);
# CPU runs in fp32, except with `train.amp=fast` (the demo config) on a CPU with native bfloat16 (AMX or
# AVX512-BF16), where bf16 autocast plus `train.channels_last=true` trains about 1.5x faster.
#
# Several GPUs or machines: `torchrun` starts one process per GPU and the loop wraps the model in
# DistributedDataParallel (NCCL on GPU, gloo on CPU) with a distributed sampler reshuffled every epoch;
# only rank 0 logs and saves.

# %% tags=["parameters"]
config = "tiny"  # a name in configs/ or a YAML path
data_root = None  # None: the config's data.root (SynthCrowd is generated there when missing)
run_dir = None  # None: runs/notebooks/04_training/<config name>; relative paths are read from the kit's root
epochs = None  # None: the config's train.epochs
max_iters_per_epoch = None  # None: the config's train.max_iters_per_epoch (0: whole epochs)
batch_size = None  # None: the config's train.batch_size (images per GPU)
gpus = 1  # > 1: launch torchrun with this many processes
device = None  # None: the config's train.device
checkpoint = None  # a trained run folder or weights file: plot its log instead of training
overrides = []  # extra config overrides, written as on the command line

# %%
import json
import subprocess
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from boir_core import paths
from boir_core.config import load_config
from boir_core.engine.schedule import warmup_cosine_schedule
from boir_core.engine.train import train

# %matplotlib inline

# the parameters you set become overrides; the ones left at None keep the config's values
mirrors = {"data.root": data_root, "train.epochs": epochs, "train.max_iters_per_epoch": max_iters_per_epoch,
           "train.batch_size": batch_size, "train.device": device}
set_here = [f"{k}={v}" for k, v in mirrors.items() if v is not None]
cfg = load_config(config, [*set_here, *overrides])
cfg = cfg.override(f"data.root={paths.resolve(cfg.data.root)}")  # relative to the kit's root, not notebooks/
run_dir = paths.resolve(run_dir) if run_dir else paths.resolve(f"runs/notebooks/04_training/{cfg.name}")
checkpoint = paths.existing(checkpoint, "checkpoint") if checkpoint else None
print("overrides:", [*set_here, *overrides] or "none (the config as it is)")
print(cfg.to_yaml())

# %% [markdown]
# ## The learning-rate schedule
#
# Per iteration: linear warm-up from 1e-12 to 1e-3 over `warmup_epochs` epochs, then a cosine down to 1e-6.
# Below, the paper's COCO schedule (140 epochs, 10 warm-up epochs, ≈708 iterations per epoch with 4 GPUs ×
# 20 images) next to this notebook's run.

# %%
paper = warmup_cosine_schedule(140 * 708, 10 * 708)
fig, ax = plt.subplots(1, 2, figsize=(11, 3))
ax[0].plot(np.arange(len(paper)) / 708, paper)
ax[0].set(title="paper schedule (COCO)", xlabel="epoch", ylabel="lr")
ipe = max(1, cfg.train.max_iters_per_epoch or 1)  # (whole epochs: the data set's length sets the real count)
ours = warmup_cosine_schedule(max(1, cfg.train.epochs * ipe), cfg.train.warmup_epochs * ipe, cfg.train.lr)
ax[1].plot(ours, marker=".")
ax[1].set(title=f"this run ({len(ours)} iterations)", xlabel="iteration")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Data
# SynthCrowd is generated once (deterministically) when the folder lacks it.

# %%
if cfg.data.dataset.startswith("synthcrowd"):
    from boir_core.data.synthetic import ensure_synthcrowd

    info = ensure_synthcrowd(cfg.data.root, num_keypoints=cfg.num_keypoints)
    print({k: v for k, v in info.items() if k in ("root", "generated", "seconds")})

# %% [markdown]
# ## Train (guarded)
#
# If `checkpoint` names a finished run, its log is plotted and nothing is trained. Otherwise the loop runs
# into `run_dir`; running the cell again resumes from `run_dir/checkpoints/last.pt` (checkpoints are written
# atomically: a temporary file, then a rename). With `gpus > 1` the same job is launched with `torchrun`.

# %%
if checkpoint:
    ck = checkpoint
    run = ck if ck.is_dir() else (ck.parent.parent if ck.parent.name == "checkpoints" else ck.parent)
    print(f"using the finished run in {run}")
elif gpus > 1:
    run = run_dir
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={gpus}", "-m", "boir_core", "train",
           "--config", str(config), "--run-dir", str(run), *set_here, *overrides, f"data.root={cfg.data.root}"]
    print(" ".join(cmd))
    subprocess.run(cmd, check=True, cwd=paths.repo_root())
else:
    run = run_dir
    summary = train(cfg, run, resume="or-restart", progress=False)  # changed parameters: start over
    print(f"{summary.iterations} iterations in {summary.seconds:.1f} s, weights in {summary.final_weights}")
print(f"run folder: {run} (config.yaml, metrics.jsonl, final.pt)")

# %% [markdown]
# ## Loss curves
# `metrics.jsonl` holds one JSON line per logged iteration (every loss term, lr, gradient norm, AMP scale)
# and one per epoch (means and throughput).

# %%
records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
iters = [r for r in records if r["type"] == "iter"]
terms = [k for k in iters[0] if k not in ("type", "epoch", "iter", "lr", "grad_norm", "scale")]
fig, ax = plt.subplots(1, 2, figsize=(11, 3.2))
for k in terms:
    ax[0].plot([r["iter"] for r in iters], [r[k] for r in iters], label=k)
ax[0].set(title="loss terms", xlabel="iteration", yscale="log")
ax[0].legend(fontsize=7)
ax[1].plot([r["iter"] for r in iters], [r["grad_norm"] for r in iters])
ax[1].axhline(cfg.train.clip_grad, ls="--", c="gray", label="clip")
ax[1].set(title="gradient norm (before clipping)", xlabel="iteration")
ax[1].legend()
plt.tight_layout()
plt.show()
epochs_log = [r for r in records if r["type"] == "epoch"]
print(f"last epoch: {epochs_log[-1]}")
