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
# CPU demo configuration on the embedded SynthCrowd data for a handful of iterations; papermill parameters
# turn it into a full GPU run (`config`, `data_root`, `gpus`, `epochs`).
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
config = "demo"  # a name in configs/ or a YAML path
data_root = "data/synthcrowd"  # SynthCrowd is generated here when missing
run_dir = "runs/notebooks/04_training"
epochs = 1
max_iters_per_epoch = 6  # 0: whole epochs (the paper's schedule)
batch_size = 4
gpus = 1  # > 1: launch torchrun with this many processes
device = "auto"
checkpoint = ""  # a trained run folder or weights file: plot its log instead of training
overrides = []  # extra config overrides, written as on the command line

# %%
import json
import subprocess
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from boir_core.config import load_config
from boir_core.engine.schedule import warmup_cosine_schedule
from boir_core.engine.train import train

cfg = load_config(config, [f"data.root={data_root}", f"train.epochs={epochs}",
                           f"train.max_iters_per_epoch={max_iters_per_epoch}", f"train.batch_size={batch_size}",
                           f"train.device={device}", *overrides])
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
ipe = max(1, max_iters_per_epoch or 1)
ours = warmup_cosine_schedule(max(1, epochs * ipe), cfg.train.warmup_epochs * ipe, cfg.train.lr)
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
    ck = Path(checkpoint)
    run = ck if ck.is_dir() else (ck.parent.parent if ck.parent.name == "checkpoints" else ck.parent)
    print(f"using the finished run in {run}")
elif gpus > 1:
    run = Path(run_dir)
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={gpus}", "-m", "boir_core", "train",
           "--config", str(config), "--run-dir", str(run), f"data.root={data_root}", f"train.epochs={epochs}",
           f"train.max_iters_per_epoch={max_iters_per_epoch}", f"train.batch_size={batch_size}", *overrides]
    print(" ".join(cmd))
    subprocess.run(cmd, check=True)
else:
    run = Path(run_dir)
    summary = train(cfg, run, resume="or-restart", progress=False)  # changed parameters: start over
    print(f"{summary.iterations} iterations in {summary.seconds:.1f} s, weights in {summary.final_weights}")

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
