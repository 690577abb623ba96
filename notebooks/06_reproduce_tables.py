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
# # 06 · Reproducing the paper's Tables 1–7
#
# Every table is rendered from metrics JSON files written by `run_evaluation` (one per table row, named by
# the row's `key` in `boir_core.paper.values`) and shown as **paper / ours (ours − paper)**. Rows without a
# result show the command that produces them; rows of other methods are the paper's numbers only.
#
# | Table | what it needs | how this notebook gets it |
# |---|---|---|
# | 1 COCO test-dev, 2 CrowdPose test, 3 COCO val + OCHuman, 6 COCO val | released BoIR / CID weights (or ours) | evaluated on the real data under `data_root` |
# | 4, 7 ablations | one config per row (`configs/ablations/`) | trained when `train=True`, then evaluated |
# | 5 cost | parameter counts and latency | measured live here: counts exact, time on *your* device, batch 1, flip |
#
# **Weights** are looked up in `checkpoint_dir` by the name of the config that trained them:
# `boir_coco_w32`, `boir_coco_w48`, `cid_coco_w32`, `boir_crowdpose_w32`, ..., `boir_crowdpose_w32_finetune`,
# and one per ablation row (`t4_full`, `t7_beta_0.5`, ...), as `.pth`, `.pth.tar`, `.pt` or a run folder
# with `final.pt` (`boir_w32_coco.pth` is accepted too). OCHuman rows use the COCO weights.
#
# **Demo mode** (`demo="auto"` and no real data under `data_root`; this is what CI runs): every table runs
# on the synthetic SynthCrowd set, with a small model trained for a few iterations standing in for every
# BoIR row and a tiny CID for the CID rows. Those numbers check the pipeline; they are **not** COCO numbers,
# and every cell says so (`[demo]` and a DEMO banner).

# %% tags=["parameters"]
table = 0  # 1-7, or 0 for all tables
data_root = "data"  # holds coco/, crowdpose/, ochuman/ as prepared by data_scripts/prepare_data.py
checkpoint_dir = "checkpoints"  # released or our weights, named as described above (paths from the kit's root)
train = False  # Tables 4 / 7: train each ablation config (real data) instead of only evaluating weights
gpus = 1  # GPUs to use (0: CPU); > 1 trains under torchrun
results_dir = "runs/reproduce/results"  # where the metrics JSON files go
demo = "auto"  # "auto": demo mode when the real data are absent; True / False force it
demo_ablation_rows = 2  # demo: how many ablation rows to train (a number, "all", or a list of keys)
demo_images = 4  # demo: SynthCrowd val images evaluated per row
demo_train_iters = 4  # demo: iterations of each small training run
demo_checkpoint = None  # demo: BoIR weights for the BoIR rows; None: the default weights (make demo's) if any
latency_repeats = 5  # Table 5: timed forward passes (after warm-up)
overwrite = False  # re-run rows whose metrics file exists
num_threads = "auto"  # torch CPU threads; "auto": 1 in demo mode (small models, shared CPUs), else default

# %%
import time
from pathlib import Path

import torch
from IPython.display import Markdown, display

from boir_core import paths
from boir_core.engine import reproduce as rp
from boir_core.io import atomic_write_text
from boir_core.paper import TABLES

# relative paths are read from the kit's root (the kernel may start in notebooks/); a path you set must exist
data_root, checkpoint_dir, results_dir = (paths.resolve(p) for p in (data_root, checkpoint_dir, results_dir))
if demo_checkpoint:
    demo_checkpoint = paths.existing(demo_checkpoint, "demo_checkpoint")
else:
    demo_checkpoint = paths.default_checkpoint("boir")
print(f"data_root: {data_root}\ncheckpoint_dir: {checkpoint_dir}\nresults_dir: {results_dir}")

demo_mode = rp.detect_demo(demo, data_root)
if num_threads == "auto":
    num_threads = 1 if demo_mode else 0
if int(num_threads) > 0:
    torch.set_num_threads(int(num_threads))
print(f"tables: {rp.table_ids(table)}; mode: {'DEMO (SynthCrowd)' if demo_mode else 'real data'}; "
      f"device: {'cuda' if gpus and torch.cuda.is_available() else 'cpu'}")

# %% [markdown]
# ## The plan: which runs fill which rows
# Each run key fills one or more table rows. In real mode a run is skipped (and its row shows its command)
# when its data or weights are missing.

# %%
runs = rp.plan(table, demo=demo_mode, demo_ablation_rows=demo_ablation_rows)
lines = ["| key | kind | config | weights | data | tables |", "|---|---|---|---|---|---|"]
for r in runs:
    found = rp.resolve_weights(r, checkpoint_dir)
    w = f"`{found}`" if found else f"`{r.weights}` (not found)"
    lines.append(f"| `{r.key}` | {r.kind} | `{r.config}` | {w if not demo_mode else 'demo model'} | "
                 f"{r.dataset} {r.split} | {', '.join(r.tables)} |")
display(Markdown("\n".join(lines)))

# %% [markdown]
# ## Running (evaluations, ablation training, Table 5 measurements)
# Existing metrics files are kept (set `overwrite=True` to redo them), so a second run only fills gaps.

# %%
t0 = time.time()
report = rp.reproduce(table, data_root=data_root, checkpoint_dir=checkpoint_dir, train=train, gpus=gpus,
                      results_dir=results_dir, demo=demo_mode, demo_ablation_rows=demo_ablation_rows,
                      demo_images=demo_images, demo_train_iters=demo_train_iters,
                      demo_checkpoint=demo_checkpoint, overwrite=overwrite, latency_repeats=latency_repeats)
print(report.summary())

# %% [markdown]
# ## Table 5 measured here
# Parameter counts are those of the inference networks (backbone, neck, center head, instance head; the
# training-only BUK / embedding / bbox heads cost nothing at test time). Times are network + decoding for one
# image with flip test, on this machine; the paper's are on one RTX 3090.

# %%
if report.profiles:
    lines = ["| row | architecture | inference params | paper (M) | network ms | decode ms | timed model | device |",
             "|---|---|---|---|---|---|---|---|"]
    for key, p in report.profiles.items():
        row = TABLES["5"].row(key)
        lat = p["latency"]
        lines.append(f"| {row.label} {row.backbone} | `{p['config']}` | {p['params']['inference']:,} "
                     f"({p['params']['inference'] / 1e6:.1f} M) | {row.values['params_M']} | "
                     f"{lat['network_ms']:.1f} | {lat['decode_ms']:.1f} | `{p['timed_config']}` | {lat['device']} |")
    display(Markdown("\n".join(lines)))
    if demo_mode:
        display(Markdown("*Demo mode: the counts are the real W32 / W48 architectures (exact); the times are "
                         "the small demo models on this CPU, not HRNet-W32/W48.*"))

# %% [markdown]
# ## The tables: paper / ours (ours − paper)

# %%
rendered = rp.render_report(report)  # {table id: markdown}, from the metrics files of each row
for tid, text in rendered.items():
    display(Markdown(text))
# the same tables as one markdown file beside the results (`make reproduce` prints it)
tables_md = atomic_write_text(Path(results_dir) / f"tables_{table or 'all'}.md", "\n\n".join(rendered.values()) + "\n")
print(f"tables written to {tables_md}")

# %%
print(f"notebook done in {time.time() - t0:.0f} s ({'DEMO' if demo_mode else 'real'} mode)")
