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
# What happens in one training step, and what does a whole schedule do?

# %%
from boir_core.course import show_course_map

show_course_map("04")

# %% [markdown]
# **After this notebook you can**
# 1. name what one training iteration does, from the augmented batch to the AdamW step;
# 2. compute the learning rate at any step of the warm-up + cosine schedule, and the iterations of an epoch;
# 3. train a configuration (here the `tiny` one on SynthCrowd), read its loss curves and check every loss term
#    of one batch by hand.
#
# **Prerequisites**: [01 · Data and targets](01_data_and_targets.ipynb) (the targets of a batch),
# [02 · Backbone, ASPP neck and heads](02_backbone_aspp_heads.ipynb) (the network) and
# [03 · The Bbox Mask Loss](03_bbox_mask_loss.ipynb) (the embedding loss terms).

# %% [markdown]
# ## The training loop in brief
# This notebook explains the training loop of `boir_core.engine.training.train` and runs it. It starts with what a full
# schedule does: the training logs of the BoIR and the CID that the kit ships. Then it trains the
# `tiny` configuration (its own schedule: 2 epochs of 3 iterations) on the embedded SynthCrowd data; papermill
# parameters turn it into a full GPU run (`config`, `data_root`, `gpus`). A parameter left at `None` takes the
# config's value, so `-p config coco_w32` trains exactly the paper's COCO schedule.
#
# What happens in one iteration (docs/training.md#training-procedure, paper §4.2):
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
#
# Terms and symbols: [glossary and notation in notebook 01](01_data_and_targets.ipynb#glossary).

# %% tags=["parameters"]
config = "tiny"  # a name in configs/ or a YAML path
data_root = None  # None: the config's data.root (SynthCrowd is generated there when missing)
run_dir = None  # None: runs/notebooks/04_training/<config name>; relative paths are read from the kit's root
epochs = None  # None: the config's train.epochs
max_steps_per_epoch = None  # None: the config's train.max_steps_per_epoch (0: whole epochs)
batch_size = None  # None: the config's train.batch_size (images per GPU)
gpus = 1  # > 1: launch torchrun with this many processes
device = None  # None: the config's train.device
checkpoint = None  # a trained run folder or weights file: plot its log instead of training
overrides = []  # extra config overrides, written as on the command line

# %%
import json
import math
import subprocess
import sys

import matplotlib.pyplot as plt
import numpy as np

from boir_core import paths
from boir_core.config import load_config
from boir_core.engine.training.schedule import warmup_cosine_schedule
from boir_core.engine.training.train import train

# %matplotlib inline

# the parameters you set become overrides; the ones left at None keep the config's values
mirrors = {"data.root": data_root, "train.epochs": epochs, "train.max_steps_per_epoch": max_steps_per_epoch,
           "train.batch_size": batch_size, "train.device": device}
set_here = [f"{k}={v}" for k, v in mirrors.items() if v is not None]
cfg = load_config(config, [*set_here, *overrides])
cfg = cfg.override(f"data.root={paths.resolve(cfg.data.root)}")  # relative to the kit's root, not notebooks/
run_dir = paths.resolve(run_dir) if run_dir else paths.resolve(f"runs/notebooks/04_training/{cfg.name}")
checkpoint = paths.existing(checkpoint, "checkpoint") if checkpoint else None
print("overrides:", [*set_here, *overrides] or "none (the config as it is)")
print(cfg.to_yaml())

# %% [markdown]
# ## What a full schedule does: the shipped models' training logs
# The kit ships a BoIR and a CID trained with one recipe on SynthCrowd (`boir_core/weights/`, README "Shipped
# demo weights"), and their training logs with them (`boir_core/weights/logs/`). Each panel is one loss term
# against the step, both runs in one panel where both have the term (faint: single logged batches; line: the
# mean over each epoch); the terms are unweighted, `total` is the weighted sum the optimiser minimised (BoIR's
# and CID's are sums of different terms: compare the terms they share). The
# last panel is the AP on SynthCrowd val that the weights' manifest records, for checkpoints taken during the
# run and for the shipped weights themselves. (`boir_core.viz.training`; the cell prints the numbers.)

# %%
from boir_core.viz.training import shipped_training_log, training_curves_figure

try:
    shipped_logs = [shipped_training_log(arch) for arch in ("boir", "cid")]
except FileNotFoundError as err:  # a trimmed install without the shipped weights or their logs
    shipped_logs = []
    print(f"no shipped training logs to plot: {err}")
if shipped_logs:
    training_curves_figure(shipped_logs)
    plt.show()
    for lg in shipped_logs:
        steps, total = lg.epochs.get("total") or lg.series["total"]  # epoch means, else the logged batches
        aps = ", ".join(f"{ap:.3f} at step {st:.0f} ({note})" for st, ap, note in lg.ap)
        print(f"{lg.name}: {lg.steps} steps; total loss (epoch mean) {total[0]:.3f} after step {steps[0]:.0f}, "
              f"{total[-1]:.3f} after step {steps[-1]:.0f}; AP {aps or 'not recorded'}")

# %% [markdown]
# ## What limits a short run: the recipe study
# How much can a CPU hour teach the demo-size network, and which setting spends it best? The kit's recipe study
# (`benchmarks/recipe_study.py`, data in `boir_core/studies/recipe_study.jsonl`) trains the demo config once
# per setting from scratch for the same wall time on one CPU thread (so a cheaper step buys more steps: the
# number beside each point) and scores it on SynthCrowd val; a longer run may instead fix its number of steps
# (`--steps`), and a row measured on another CPU is drawn hollow (its minutes are that CPU's). AP stays near 0
# for the first ~1,000 steps of this network (the shipped logs above show where it starts to rise), so the
# right panel adds the held-out keypoint loss (`boir_core.paper.seeds.held_out_keypoint_loss`), which moves
# earlier. Every row carries the command that replays it step for step and the CPU it ran on; the cell prints
# them.

# %%
from boir_core.studies import load_study
from boir_core.viz.training import recipe_study_figure, study_main_cpu

try:
    study = load_study("recipe_study")
except FileNotFoundError as err:
    study = []
    print(f"no recipe study to plot: {err}")
if study:
    recipe_study_figure(study)
    plt.show()
    main_cpu = study_main_cpu(study)
    print(f"CPU: {main_cpu}")
    for r in sorted(study, key=lambda r: (r["setting"], r["cpu_minutes"])):
        where = "" if r["cpu"] == main_cpu else f"\n    on another CPU: {r['cpu']}"
        print(f"{r['setting']:<16} {r['steps']:>5} steps of {r['images_per_step']} images, {r['cpu_minutes']:5.1f} "
              f"CPU-min: AP {r['AP']:.3f} (crowded {r['crowded_AP']:.3f}, sparse {r['sparse_AP']:.3f}), held-out "
              f"loss {r['held_out_loss']:.4f}{where}\n    {r['command']}")
    best = max(study, key=lambda r: (r["AP"], -r["held_out_loss"]))
    print(f"best so far: {best['setting']} (AP {best['AP']:.3f} after {best['cpu_minutes']:.0f} CPU-minutes)")

# %% [markdown]
# ## The learning-rate schedule
#
# Per iteration: linear warm-up from 1e-12 to 1e-3 over `warmup_epochs` epochs, then a cosine down to 1e-6.
# Below, the paper's COCO schedule (`configs/coco_w32.yaml`: its epochs, warm-up epochs, images per GPU and
# learning rates; 4 GPUs as in the paper, and the train2017 images the loader keeps); this run's schedule
# follows once its data exist (it depends on the number of images).
#
# **Predict before you run.** In the paper's schedule, what is the learning rate halfway through the warm-up,
# and what is it halfway through the cosine? Guess both before running the next cell (the solution follows
# the plot).

# %%
from boir_core.engine.training.schedule import iterations_per_epoch

# the COCO train2017 images with at least one non-crowd person with labelled keypoints (56,599 of 118,287): what
# the loader keeps for training (train_filter "coco"); on your copy: len(KeypointDataset.from_config(cfg, train=True))
COCO_TRAIN_IMAGES, PAPER_GPUS = 56_599, 4
coco = load_config("coco_w32").train
paper_ipe = iterations_per_epoch(COCO_TRAIN_IMAGES, coco.batch_size, PAPER_GPUS)
paper = warmup_cosine_schedule(coco.epochs * paper_ipe, coco.warmup_epochs * paper_ipe, coco.lr,
                               coco.warmup_start_lr, coco.min_lr)
print(f"paper schedule: {COCO_TRAIN_IMAGES:,} images / ({PAPER_GPUS} GPUs x {coco.batch_size}) -> {paper_ipe} "
      f"iterations per epoch, {len(paper):,} iterations in {coco.epochs} epochs ({coco.warmup_epochs} of warm-up)")
fig, ax = plt.subplots(figsize=(5.5, 3))
ax.plot(np.arange(len(paper)) / paper_ipe, paper)
ax.set(title="paper schedule (COCO)", xlabel="epoch", ylabel="lr")
plt.tight_layout()
plt.show()

# %% tags=["solution"] jupyter={"source_hidden": true}
n_warm_paper = coco.warmup_epochs * paper_ipe
half_warm, half_cos = (n_warm_paper - 1) // 2, n_warm_paper + (len(paper) - n_warm_paper) // 2
print(f"halfway through the warm-up (iteration {half_warm}): lr {paper[half_warm]:.3e}; halfway through the "
      f"cosine (iteration {half_cos}): lr {paper[half_cos]:.3e}")
# by hand: the warm-up is a straight line (both ends included), the cosine's middle is the mean of lr and min_lr
by_hand_warm = coco.warmup_start_lr + (coco.lr - coco.warmup_start_lr) * half_warm / (n_warm_paper - 1)
assert math.isclose(paper[half_warm], by_hand_warm, rel_tol=1e-12)
assert math.isclose(paper[half_cos], (coco.lr + coco.min_lr) / 2, rel_tol=1e-9)
# and the iterations of an epoch: each GPU's share of the images, in whole batches
assert paper_ipe == math.ceil(COCO_TRAIN_IMAGES / PAPER_GPUS) // coco.batch_size

# %% [markdown]
# ## Data
# SynthCrowd is generated once (deterministically) when the folder lacks it.

# %%
if cfg.data.dataset.startswith("synthcrowd"):
    from boir_core.data.sources.synthetic import SynthCrowdSpec, ensure_synthcrowd

    info = ensure_synthcrowd(cfg.data.root, SynthCrowdSpec(num_keypoints=cfg.num_keypoints))
    print({k: v for k, v in info.items() if k in ("root", "seconds")})

# %% [markdown]
# ## This run's schedule
# The loop counts iterations per epoch from the training set: each of the `gpus` processes sees
# ⌈images / gpus⌉ images in batches of `batch_size` (an incomplete last batch is dropped when a full one
# exists), capped by `max_steps_per_epoch` when it is > 0. With these defaults the run has a warm-up *and*
# a decay; after training, the learning rates in its log are checked against this plan.

# %%
from boir_core.data import KeypointDataset

n_train = len(KeypointDataset.from_config(cfg, train=True)) if not checkpoint else None
if n_train:
    ipe = iterations_per_epoch(n_train, cfg.train.batch_size, max(int(gpus), 1), cfg.train.max_steps_per_epoch)
    ours = warmup_cosine_schedule(cfg.train.epochs * ipe, cfg.train.warmup_epochs * ipe, cfg.train.lr,
                                  cfg.train.warmup_start_lr, cfg.train.min_lr)
    n_warm = min(cfg.train.warmup_epochs * ipe, len(ours))
    print(f"{n_train} training images, {ipe} iterations per epoch, {len(ours)} iterations: {n_warm} warm-up, "
          f"{len(ours) - n_warm} cosine")
    if len(ours) > n_warm:
        print(f"lr peaks at {ours.max():.2e} and ends at {ours[-1]:.2e}")
    else:
        print("every iteration is warm-up: the learning rate never decays (raise epochs or lower warmup_epochs)")
    fig, ax = plt.subplots(figsize=(5.5, 3))
    ax.plot(ours, marker=".")
    ax.axvline(n_warm - 0.5, ls="--", c="gray")
    ax.set(title=f"this run ({len(ours)} iterations, {ipe} per epoch)", xlabel="iteration", ylabel="lr")
    plt.show()

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
if n_train and not checkpoint and gpus <= 1:  # the log of the run we just trained follows the planned schedule
    logged = {r["iter"]: r["lr"] for r in iters}
    assert all(abs(lr - ours[i - 1]) <= 1e-12 * max(1.0, ours[i - 1]) for i, lr in logged.items()), logged
    print(f"logged learning rates match the plotted schedule at iterations {sorted(logged)}")

# %% [markdown]
# ## The loss of one batch, term by term (paper Eq. 5, docs/training.md#losses)
# One batch (at most 4 images, on the CPU) of this run's data through the network (this run's weights when
# present, else untrained), with
# every term of `boir_core.losses.total_loss`:
#
# * `multi_heatmap`: the **focal loss** (notebook 01) on [BUK ∥ center] — Eq. 5's L_center + L_buk as
#   *one* term with one normaliser;
# * `instance_heatmap`: the focal loss on each person's own keypoint maps (L_kpt);
# * `bbox`: **1 − CIoU** (below) at the 3×3 pixels around each center (L_bbox);
# * `bbox_mask` = `pull_in` + `push_out` + `push_inst` (L_emb, notebook 03).
#
# Eq. 5 adds them with unit weights (`loss.weighting=paper`); the release weights them 1, 4, 0.25, 0.25
# and divides by the images per GPU (`loss.weighting=release`). The totals are checked against the sum.
#
# **CIoU** of a predicted box p and the ground truth g: IoU − ρ²/c² − α·v, where ρ is the distance between
# the box centers, c the diagonal of the smallest box enclosing both, v = 4/π²·(atan(w_g/h_g) − atan(w_p/h_p))²
# the aspect-ratio mismatch and α = v/(1 − IoU + v) (a constant in the gradient). The head predicts the
# distances (l, t, r, b) from the pixel to the box sides, so p = (x − l, y − t, l + r, t + b).

# %%
import dataclasses

import torch

from boir_core.data import collate_train
from boir_core.losses import TERM_PARTS, TERMS, bbox_loss, ciou, loss_weights, total_loss
from boir_core.losses.reference import bbox_loss_ref
from boir_core.model import build_model, load_weights

torch.manual_seed(0)
net = build_model(cfg, train=True)
weights = run / "final.pt"
try:
    load_weights(net, weights, allow_missing_aux_heads=True)
    source = f"weights of {weights}"
except Exception as err:  # another architecture, or no weights: the untrained network still shows the terms
    source = f"untrained network ({type(err).__name__})"
net.train()
ds = KeypointDataset.from_config(cfg, train=True)
batch = collate_train([ds[i] for i in range(min(cfg.train.batch_size, 4, len(ds)))])  # ≤ 4 images: CPU-cheap
with torch.no_grad():
    outputs = net.forward_train(batch["image"], batch["instance_coord"], batch["instance_imgid"])
print(f"{source}; {batch['image'].shape[0]} images, {len(batch['instance_coord'])} people")
rows = {}
for weighting in ("paper", "release"):
    rows[weighting] = total_loss(outputs, batch, dataclasses.replace(cfg.loss, weighting=weighting))
n_img = batch["image"].shape[0]
# each weighting's weights and divisor, one per term of `TERMS` (boir_core.losses.total): a new term shows up here
weights = {w: loss_weights(dataclasses.replace(cfg.loss, weighting=w), n_img) for w in ("paper", "release")}
print(f"{'term':18s} {'value':>9s} {'paper weight':>13s} {'release weight':>15s}")
for k, v in rows["paper"].items():
    if k == "total":
        continue
    if k in TERM_PARTS:  # the Bbox Mask Loss's three sums: reported, added once as their term
        print(f"{k:18s} {float(v):9.4f} {'(part of ' + TERM_PARTS[k] + ')':>29s}")
        continue
    (wp, dp), (wr, dr) = ((weights[w][0][k], weights[w][1]) for w in ("paper", "release"))
    print(f"{k:18s} {float(v):9.4f} {f'{wp:g} / {dp:g}':>13s} {f'{wr:g} / {dr:g}':>15s}")
for weighting, t in rows.items():
    w, divisor = weights[weighting]
    by_hand = sum(w[k] * float(v) for k, v in t.items() if k in TERMS) / divisor
    print(f"total ({weighting}): {float(t['total']):.4f} = by hand {by_hand:.4f}")
    assert math.isclose(float(t["total"]), by_hand, rel_tol=1e-6)
assert math.isclose(float(rows["paper"]["bbox_mask"]),
                    sum(float(rows["paper"][k]) for k in ("pull_in", "push_out", "push_inst")), rel_tol=1e-6)

if "bbox" in outputs:  # CIoU by hand at the first person's center pixel
    yc, xc = batch["instance_coord"][0].tolist()
    left, top, right, bottom = outputs["bbox"][batch["instance_imgid"][0], :, yc, xc].double().tolist()
    px, py, pw, ph = xc - left, yc - top, left + right, top + bottom
    gx, gy, gw, gh = batch["instance_bbox"][0].double().tolist()
    iw = max(0.0, min(px + pw, gx + gw) - max(px, gx))
    ih = max(0.0, min(py + ph, gy + gh) - max(py, gy))
    iou = iw * ih / (pw * ph + gw * gh - iw * ih)
    rho2 = (px + pw / 2 - gx - gw / 2) ** 2 + (py + ph / 2 - gy - gh / 2) ** 2
    c2 = (max(px + pw, gx + gw) - min(px, gx)) ** 2 + (max(py + ph, gy + gh) - min(py, gy)) ** 2
    v = 4 / math.pi ** 2 * (math.atan(gw / gh) - math.atan(pw / ph)) ** 2
    alpha = v / (1 - iou + v) if v > 0 else 0.0
    lib = float(ciou(torch.tensor([px, py, pw, ph], dtype=torch.float64),
                     torch.tensor([gx, gy, gw, gh], dtype=torch.float64)))
    print(f"person 0: predicted box {np.round([px, py, pw, ph], 2).tolist()}, "
          f"truth {np.round([gx, gy, gw, gh], 2).tolist()}: "
          f"IoU {iou:.3f}, ρ²/c² {rho2 / c2:.3f}, α·v {alpha * v:.4f} -> CIoU {iou - rho2 / c2 - alpha * v:.4f} "
          f"(library {lib:.4f})")
    assert abs(lib - (iou - rho2 / c2 - alpha * v)) < 1e-6
    args = (outputs["bbox"].double(), batch["instance_coord"], batch["instance_imgid"], batch["instance_bbox"].double())
    assert torch.allclose(bbox_loss(*args), torch.as_tensor(bbox_loss_ref(*args), dtype=torch.float64), atol=1e-9)

# %% [markdown]
# ## Exercises
# Each solution is in the hidden cell below its question (click the cell's "…" to show it); running it checks
# the answer with an independent computation. (The "predict before you run" question is in *The learning-rate
# schedule* above.)
#
# **Exercise 1.** A person's ground-truth box is 20 px wide and 40 px high; the bbox head predicts the same box
# 4 px to the right. Compute its IoU and its CIoU by hand. Which of CIoU's three parts is zero, and why?

# %% tags=["solution"] jupyter={"source_hidden": true}
gt_box, pred_box = (10.0, 10.0, 20.0, 40.0), (14.0, 10.0, 20.0, 40.0)  # x, y, w, h
overlap = (20 - 4) * 40
iou_hand = overlap / (2 * 20 * 40 - overlap)
rho2_hand = 4.0 ** 2  # the box centers are 4 px apart
c2_hand = (20 + 4) ** 2 + 40 ** 2  # the diagonal of the enclosing 24 x 40 box
ciou_hand = iou_hand - rho2_hand / c2_hand  # v = 0: both boxes have the same aspect ratio, so α·v = 0
print(f"IoU {iou_hand:.4f}, ρ²/c² {rho2_hand / c2_hand:.4f}, α·v 0 -> CIoU {ciou_hand:.4f}, "
      f"box loss 1 − CIoU = {1 - ciou_hand:.4f}")
lib_ciou = float(ciou(torch.tensor(pred_box, dtype=torch.float64), torch.tensor(gt_box, dtype=torch.float64)))
assert abs(lib_ciou - ciou_hand) < 1e-6, lib_ciou

# %% [markdown]
# **Exercise 2.** You train the paper's COCO schedule on *one* GPU with the same 20 images per step. How many
# iterations does an epoch have, and how many iterations does the warm-up last? Does the learning rate at the
# end of epoch 10 change?

# %% tags=["solution"] jupyter={"source_hidden": true}
one_gpu_ipe = iterations_per_epoch(COCO_TRAIN_IMAGES, coco.batch_size, 1)
one_gpu = warmup_cosine_schedule(coco.epochs * one_gpu_ipe, coco.warmup_epochs * one_gpu_ipe, coco.lr,
                                 coco.warmup_start_lr, coco.min_lr)
print(f"1 GPU: {one_gpu_ipe} iterations per epoch ({PAPER_GPUS} GPUs: {paper_ipe}), warm-up "
      f"{coco.warmup_epochs * one_gpu_ipe:,} iterations; lr after epoch {coco.warmup_epochs}: "
      f"{one_gpu[coco.warmup_epochs * one_gpu_ipe - 1]:.1e} (4 GPUs: {paper[n_warm_paper - 1]:.1e})")
assert one_gpu_ipe == COCO_TRAIN_IMAGES // coco.batch_size  # whole batches of one GPU's (all) images
assert one_gpu[coco.warmup_epochs * one_gpu_ipe - 1] == paper[n_warm_paper - 1] == coco.lr  # the schedule is in epochs

# %% [markdown]
# ## Recap
# 1. One iteration: an augmented batch through the network, the loss terms of Eq. 5 in fp32, gradient clipping,
#    one AdamW step at the learning rate the warm-up + cosine schedule sets for that iteration.
# 2. The schedule is fixed in epochs; the iterations per epoch follow from the images, the GPUs and the batch
#    size, so the same config gives other iteration counts on other hardware.
# 3. The run folder holds everything to check a run afterwards: `config.yaml`, `metrics.jsonl` (every term,
#    lr and gradient norm) and the weights; each loss term of a batch can be recomputed by hand.
#
# **Next**: [05 · Inference and evaluation](05_inference_and_evaluation.ipynb) — turn the trained network's
# maps into poses and score them.
