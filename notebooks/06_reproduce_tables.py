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
# Which of the paper's numbers can we check, and how sure can we be that a difference of a few tenths of AP
# is a real difference?

# %%
from boir_core.course import show_course_map

show_course_map("06")

# %% [markdown]
# **After this notebook you can**
# 1. produce every reproducible row of Tables 1–7 (evaluations, ablation runs, Table 5's measurements) and
#    read it as *paper / ours (ours − paper)*;
# 2. say what each table claims, with every gap computed from the paper's numbers (`boir_core.paper.TABLES`);
# 3. judge a gap against run-to-run noise: identical configurations reported twice, and a paired t-test.
#
# **Prerequisites**: [05 · Inference and evaluation](05_inference_and_evaluation.ipynb) (OKS, AP and the metrics
# file every row reads), [04 · Training](04_training.ipynb) (the runs behind the ablation rows) and
# [03 · The Bbox Mask Loss](03_bbox_mask_loss.ipynb) (section 8b "D = 1 trains nothing", section 10 "the
# released bbox head is dead": both matter for Tables 4 and 7).

# %% [markdown]
# ## How the rows are filled
# Every table is rendered from metrics JSON files written by `run_evaluation` (one per table row, named by
# the row's `key` in `boir_core.paper.values`) and shown as **paper / ours (ours − paper)**. Rows without a
# result show the command that produces them; rows of other methods are the paper's numbers only.
#
# | Table | what it needs | how this notebook gets it |
# |---|---|---|
# | 1 COCO test-dev | released BoIR / CID weights (or ours) | predicted on the images under `data_root` (*) |
# | 2 CrowdPose test | released BoIR / CID weights (or ours) | evaluated on the real data under `data_root` |
# | 3 COCO val + OCHuman | released BoIR / CID weights (or ours) | evaluated on the real data under `data_root` |
# | 6 COCO val | released BoIR / CID weights (or ours) | evaluated on the real data under `data_root` |
# | 4, 7 ablations | one config per row (`configs/ablations/`) | trained when `train=True`, then evaluated |
# | 5 cost | parameter counts and latency | measured live here: counts exact, time on *your* device, batch 1, flip |
#
# (*) Test-dev's ground truth is not public: the COCO evaluation server scores the results file the kit writes,
# so with real data Table 1's rows are not scored here (demo mode scores its SynthCrowd stand-ins).
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
results_dir = None  # where the metrics JSON files go; None: runs/reproduce/results (the CLI's default too)
demo = "auto"  # "auto": demo mode when the real data are absent; True / False force it
demo_ablation_rows = 2  # demo: how many ablation rows to train (a number, "all", or a list of keys)
demo_images = 4  # demo: SynthCrowd val images evaluated per row
demo_train_iters = 4  # demo: iterations of each small training run
demo_checkpoint = None  # demo: BoIR weights for the BoIR rows; None: the default weights (make demo's) if any
latency_repeats = 5  # Table 5: timed forward passes (after warm-up)
overwrite = False  # re-run rows whose metrics file exists
overrides = []  # real mode: key=value overrides for every run's config, e.g. ["model.pretrained=/path/w32.pth"]
num_threads = "auto"  # torch CPU threads; "auto": 1 in demo mode (small models, shared CPUs), else default
seeds = 3  # seed-noise study: runs per method (demo: tiny BoIR vs tiny CID, demo_train_iters each); 0 skips it

# %%
import time
from pathlib import Path

import numpy as np
import torch
from IPython.display import Markdown, display

from boir_core import paths
from boir_core.paper import TABLES
from boir_core.paper import reproduce as rp
from boir_core.paper import seeds as seeds_mod

# relative paths are read from the kit's root (the kernel may start in notebooks/); a path you set must exist
results_dir = results_dir or rp.RESULTS_DIR
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
options = rp.ReproduceOptions(data_root=data_root, checkpoint_dir=checkpoint_dir, train=train, gpus=gpus,
                              results_dir=results_dir, demo=demo_mode, demo_ablation_rows=demo_ablation_rows,
                              demo_images=demo_images, demo_train_iters=demo_train_iters,
                              demo_checkpoint=demo_checkpoint, overwrite=overwrite,
                              latency_repeats=latency_repeats, overrides=overrides)
report = rp.reproduce(table, options)
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
# ## What each table claims
# (Terms: [glossary in notebook 01](01_data_and_targets.ipynb#glossary).) Every gap below is computed from the
# paper's numbers as the kit stores them (`boir_core.paper.TABLES`), not typed in.

# %%
from boir_core.paper import rows_for_key


def paper_value(tid, method, backbone, column="AP", marks=""):
    """The paper's number in Table ``tid`` for one method and backbone (``marks="*"``: Table 2's finetuned rows)."""
    (row,) = [r for r in TABLES[tid].rows if r.method == method and r.backbone == backbone and r.marks == marks]
    return row.values[column]


def gap(tid, column="AP", backbone="HRNet-W32", marks=""):
    """BoIR − CID in one column of one table."""
    return paper_value(tid, "BoIR", backbone, column, marks) - paper_value(tid, "CID", backbone, column, marks)


och = {(bb, split): gap("3", f"OCHuman {split} AP", bb)
       for bb in ("HRNet-W32", "HRNet-W48") for split in ("val", "test")}
t4l = {r.key: r.values["AP"] for r in TABLES["4L"].rows}
ae = TABLES["4R"].row("t4_ae_l2").values["AP"]
contrastive_gaps = [ae - r.values["AP"] for r in TABLES["4R"].rows if r.settings["Emb. Loss"] == "Contrastive"]
betas = {r.settings["β"]: r.values["AP"] for r in TABLES["7L"].rows}
dims = {r.settings["Emb. Dim"]: r.values["AP"] for r in TABLES["7R"].rows}
extra_params, extra_ms = gap("5", "params_M"), gap("5", "time_ms")
d_paper = gap("3", "COCO val AP")  # BoIR − CID on COCO val (Table 3)
# Table 6 is the full metric set behind Table 3's COCO column, and Table 5's AP column is the same COCO val AP
for m in ("BoIR", "CID"):
    assert paper_value("6", m, "HRNet-W32") == paper_value("3", m, "HRNet-W32", "COCO val AP")
    assert paper_value("5", m, "HRNet-W32") == paper_value("6", m, "HRNet-W32")
f = "{:+.1f}".format
claims = [
    f"**Table 1** (COCO test-dev): BoIR beats the other single-stage methods of its backbone size, e.g. CID by "
    f"{f(gap('1'))} AP with HRNet-W32 and {f(gap('1', backbone='HRNet-W48'))} AP with HRNet-W48.",
    f"**Table 2** (CrowdPose test): trained from scratch BoIR trails CID ({f(gap('2'))} AP at W32); finetuned from "
    f"COCO (the * rows) it leads by {f(gap('2', marks='*'))} AP — the paper blames CrowdPose's small training set.",
    f"**Table 3** (COCO val, OCHuman): {f(d_paper)} AP over CID on COCO val and "
    f"{f(min(och.values()))} to {f(max(och.values()))} AP on the crowded OCHuman (W32 and W48, val and test) with "
    "the COCO model, no finetuning: the crowd claim.",
    f"**Table 4** (ablations, COCO val): left, the Bbox Mask Loss goes with higher AP ({t4l['t4_no_bmask_no_bbox']} "
    f"→ {t4l['t4_bmask_only']} without the bbox head, {t4l['t4_bbox_only']} → {t4l['t4_full']} with it), and so "
    f"does the bbox head ({t4l['t4_no_bmask_no_bbox']} → {t4l['t4_bbox_only']}, {t4l['t4_bmask_only']} → "
    f"{t4l['t4_full']}); but the released bbox head never trains (notebook 03, section 10), so under the release "
    "the rows with and without it are the same training — see *Same configuration, different rows* below. Right: "
    f"the AE kernel on L2 beats InfoNCE (\"contrastive\") by {min(contrastive_gaps):.1f}–"
    f"{max(contrastive_gaps):.1f} AP.",
    f"**Table 5** (cost): BoIR adds {extra_params:.1f} M parameters and {extra_ms:.1f} ms over CID at inference "
    "(HRNet-W32; the neck and the center head; the other auxiliary heads are dropped).",
    "**Table 6** (COCO val, all metrics): the full metric set behind Table 3's COCO column (checked above).",
    f"**Table 7** (β and D): β = {max(betas, key=betas.get):g} is best ({max(betas.values())} AP); D barely matters "
    f"({min(dims.values())}–{max(dims.values())} AP).",
]
display(Markdown("\n".join(f"* {c}" for c in claims)))
assert min(och.values()) > 0 and extra_params > 0 and extra_ms > 0 and min(contrastive_gaps) > 0

# %% [markdown]
# Many of these gaps are a few tenths of AP; the two sections after the tables ask how large run-to-run
# noise is.

# %% [markdown]
# ## The tables: paper / ours (ours − paper)

# %%
rendered = rp.render_report(report)  # {table id: markdown}, from the metrics files of each row
for tid, text in rendered.items():
    display(Markdown(text))
# the same tables as one markdown file beside the results (what `make reproduce` writes and prints)
print(f"tables written to {rp.write_tables(report)}")

# %%
print(f"notebook done in {time.time() - t0:.0f} s ({'DEMO' if demo_mode else 'real'} mode)")


# %% [markdown]
# ## Same configuration, different rows
# Several ablation configs resolve to the *same* configuration: the rows differ only in which table they
# sit in. Their paper numbers are therefore two or three runs of one experiment (one run cannot report two
# numbers), and their spread is a measure of run-to-run noise. The groups below are computed from
# `configs/ablations/*.yaml` (each loaded with its `base:` chain and every default), not typed in.
#
# The kit's configs train a working bbox head (`model.bbox_head_init=paper`). The release zero-initialises
# the whole head, which then never trains its convolutions and sends no gradient to the shared network
# ([notebook 03, section 10](03_bbox_mask_loss.ipynb), docs/release_vs_paper.md#bbox-head-initialisation). If
# the paper's runs used the released code, a row with the bbox head and the same row without it are the same training
# too (up to the clipping norm, to which the head's four bias gradients contribute), so the second grouping
# ignores `model.bbox_head`.

# %%
groups = rp.identical_configs()
spreads = []
for g in groups:
    aps = {k: rows_for_key(k)[0][1].values["AP"] for k in g}
    labels = [f"Table {', '.join(t.id for t, _ in rows_for_key(k))}, row {k}: {aps[k]} AP" for k in g]
    spreads.append(max(aps.values()) - min(aps.values()))
    print(f"one config, {len(g)} rows, paper AP spread {spreads[-1]:.1f}:\n    " + "\n    ".join(labels))
assert ("t4_bmask_only", "t7_beta_10", "t7_dim_128") in groups and ("t4_full", "t4_ae_l2") in groups

release_groups = rp.identical_configs(ignore=("name", "model.bbox_head"))  # the dead head changes nothing
release_spreads = []
for g in release_groups:
    aps = {k: rows_for_key(k)[0][1].values["AP"] for k in g}
    release_spreads.append(max(aps.values()) - min(aps.values()))
    print(f"same training under the release's dead bbox head, {len(g)} rows, AP spread {release_spreads[-1]:.1f}: "
          + ", ".join(f"{k} {v}" for k, v in aps.items()))
assert ("t4_no_bmask_no_bbox", "t4_bbox_only") in release_groups
print(f"\nlargest AP gap between identical configs in the paper: {max(spreads):.1f} by the kit's configs, "
      f"{max(release_spreads):.1f} counting the rows the release's dead bbox head makes identical; notebook 03 "
      "adds D = 1, which trains no embedding at all, i.e. the 'neither' row of Table 4: "
      f"{rows_for_key('t7_dim_1')[0][1].values['AP']} vs {rows_for_key('t4_no_bmask_no_bbox')[0][1].values['AP']} AP")
assert max(release_spreads) > max(spreads)  # "0.3" understated the noise the paper's own tables show

# %% [markdown]
# ## Seed noise and a paired t-test (paper §4.3)
# The paper trained BoIR and CID five times each on COCO and reports p = 6.4·10⁻⁵ for BoIR being better. A
# **paired t-test** (`boir_core.paper.stats.paired_t_test`) compares the per-seed differences d_s = a_s − b_s
# with their own spread: t = d̄ / (s_d / √n), n − 1 degrees of freedom. Runs are paired by seed: the same
# seed gives both methods the same data order and augmentation.
#
# **At demo scale** (what CI runs): `seeds` seeds (default 3, to stay cheap; papermill can inject more) of a
# tiny BoIR and a tiny CID, each trained `demo_train_iters` iterations on SynthCrowd. So few iterations leave
# AP at 0, so the score is the **held-out instance keypoint loss** (the primary task, which both methods
# share; lower is better) on `demo_images` validation images. The numbers show the method of the test
# and the size of seed noise, not which method is better on COCO. Each demo run has its own folder,
# `<results_dir>/demo/seeds/<BoIR|CID>_seed<s>_<fingerprint>`, named by its settings
# (`boir_core.paper.seeds.seed_run_dir`): a rerun with the same settings reuses it, other settings (e.g.
# another `demo_train_iters`) get a folder of their own. In real mode this section reads
# `<results_dir>/seeds/<boir|cid>_seed<s>/metrics.json` (COCO val AP of your own seeded runs) when present.

# %%
from boir_core.paper.stats import paired_t_test, t_for_p

p_paper = 6.4e-5
sd_diff_paper = d_paper * 5 ** 0.5 / t_for_p(p_paper, 4)
print(f"paper: p = {p_paper:g} with 5 runs each needs |t| ≥ {t_for_p(p_paper, 4):.1f} paired (df 4) or "
      f"{t_for_p(p_paper, 8):.1f} unpaired (df 8); with BoIR − CID = {d_paper:.1f} AP (Table 3) the paired form "
      f"implies a spread of the per-run differences of only {sd_diff_paper:.2f} AP")
# the conflict with the paper's own tables: one configuration, two reported numbers
from scipy.stats import norm

sd_run = sd_diff_paper / 2 ** 0.5  # each run's sd, if a seed's BoIR and CID runs vary independently
same_cfg = [rows_for_key(k)[0][1].values["AP"] for k in ("t4_bmask_only", "t7_beta_10")]
p_same = 2 * norm.sf(abs(same_cfg[1] - same_cfg[0]) / (sd_run * 2 ** 0.5))
p_dead = 2 * norm.sf(max(release_spreads) / (sd_run * 2 ** 0.5))
print(f"conflict: that spread means a per-run sd of ≈ {sd_run:.2f} AP (if a seed's BoIR and CID runs vary "
      f"independently; larger only if they move together), yet one configuration is reported as {same_cfg[0]} "
      f"(Table 4) and {same_cfg[1]} AP (Table 7): at sd {sd_run:.2f} two runs differ that much with probability "
      f"{p_same:.1g}, and by {max(release_spreads):.1f} AP (the dead-bbox-head pair) with probability {p_dead:.1g}. "
      "The p-value and the tables cannot both describe the same run-to-run noise.")
assert p_same < 0.05 and p_dead < p_same
scores = None
if int(seeds) >= 2 and demo_mode:
    t_seed = time.time()
    seed_root = seeds_mod.demo_data_root(results_dir, 17, demo_images)
    pair = seeds_mod.demo_pair_configs(seed_root, iters=demo_train_iters)
    scores = seeds_mod.seed_study(pair, range(int(seeds)), Path(results_dir) / "demo" / "seeds", val_images=demo_images)
    metric = "held-out instance keypoint loss (lower is better)"
    print(f"{int(seeds)} seeds x 2 methods in {time.time() - t_seed:.0f} s")
elif int(seeds) >= 2:
    files = {m: [Path(results_dir) / "seeds" / f"{m.lower()}_seed{s}" / "metrics.json" for s in range(int(seeds))]
             for m in ("BoIR", "CID")}
    if all(f.is_file() for fs in files.values() for f in fs):
        import json

        scores = {m: [100 * json.loads(f.read_text())["metrics"]["AP"] for f in fs] for m, fs in files.items()}
        metric = "COCO val AP (higher is better)"
    else:
        print("no seeded runs found; train and evaluate each seed s, e.g.\n"
              "  python -m boir_core train --config coco_w32 train.seed=s --run-dir runs/seeds/boir_seed<s>\n"
              f"  python -m boir_core evaluate --config coco_w32 --checkpoint runs/seeds/boir_seed<s> "
              f"(metrics into {results_dir}/seeds/boir_seed<s>/), and the same with cid_coco_w32")
if scores is not None:
    for m, v in scores.items():
        mean = sum(v) / len(v)
        sd = (sum((x - mean) ** 2 for x in v) / (len(v) - 1)) ** 0.5
        print(f"{m:5s} {metric}: " + ", ".join(f"{x:.4f}" for x in v) + f"   mean {mean:.4f}, sd over seeds {sd:.4f}")
    test = paired_t_test(scores["BoIR"], scores["CID"])
    print(f"BoIR − CID: {test}")
    from scipy.stats import ttest_rel

    ref = ttest_rel(scores["BoIR"], scores["CID"])
    if test.sd_diff > 0:
        assert abs(test.t - ref.statistic) < 1e-9 * max(1.0, abs(test.t)) and abs(test.p - ref.pvalue) < 1e-12
    verdict = "below" if test.p < 0.05 else "not below"
    print(f"p = {test.p:.3g} is {verdict} 0.05: with {test.n} seeds the difference is "
          f"{'' if test.p < 0.05 else 'not '}distinguishable from seed noise at this scale")

# %% [markdown]
# ### The paper's claim in miniature: BoIR against CID with seeds, trained long enough to score AP
# The demo-scale study above is about the *method* of the test. The kit also commits a study that is about the
# *claim*: the shipped models' recipe (`configs/demo_shipped_boir.yaml` and `demo_shipped_cid.yaml`: the same
# network, data, schedule and data order; only BoIR's bbox head and Bbox Mask Loss differ), trained from scratch
# for the same number of steps once per seed on one CPU core, and scored by AP on all 200 SynthCrowd val images,
# on the crowded ones (crowdIndex ≥ 0.5) and on the sparse ones. Each row of
# `boir_core/studies/seed_study.jsonl` carries the command that replays it, the CPU and the times
# (`benchmarks/seed_study.py` wrote them). Everything printed below is computed from that file; whatever its sign.

# %%
import matplotlib.pyplot as plt

from boir_core.paper.seeds import format_seed_study, seed_study_reading, seed_study_runs_line, seed_study_summary
from boir_core.studies import load_study
from boir_core.viz.training import seed_study_figure

# %matplotlib inline

seed_rows = load_study("seed_study")
if seed_rows:
    seed_summary = seed_study_summary(seed_rows)
    print(format_seed_study(seed_summary))
    print(seed_study_runs_line(seed_rows))
    print("\n".join(seed_study_reading(seed_summary)))
    seed_study_figure(seed_summary)
    plt.show()
else:
    print("boir_core/studies/seed_study.jsonl holds no runs yet: python benchmarks/seed_study.py --steps 2000 "
          "--seeds 0,1,2 writes them")

# %% [markdown]
# ## Going deeper: what Tables 4 and 7 can and cannot support
# One cell, every number from `TABLES` and the ablation configs:
#
# 1. **the noise**: the rows that are one configuration (the kit's configs), and the rows that are one
#    training under the release's dead bbox head, to which notebook 03's reading adds D = 1 (no embedding
#    gradient, no bbox head: the "neither" row's training; the paper does not say so, it is the kit's
#    reading). Each grouping gives a pooled per-run sd s;
# 2. **the contrastive rows**: the released code has no contrastive loss (CID's was removed), so these two rows
#    cannot come from it; the kit trains its own definition (docs/release_vs_paper.md#contrastive-and-cosine-kernels);
# 3. **every gap the two tables are read for**, as a two-run t-test against s (t = gap / (s·√2), df of the
#    pooled groups): p < 0.05 means the gap is larger than the noise of that grouping.

# %%
import statistics

from scipy import stats

from boir_core.config import load_config


def ap_of(key):
    return rows_for_key(key)[0][1].values["AP"]


def pooled(groups_):
    """(pooled per-run sd, degrees of freedom) of groups of identical trainings."""
    vals = [[ap_of(k) for k in g] for g in groups_]
    df_ = sum(len(v) - 1 for v in vals)
    ss = sum(sum((x - statistics.fmean(v)) ** 2 for x in v) for v in vals)
    return (ss / df_) ** 0.5, df_


noise = {"kit's configs": groups,
         "release + D = 1": [(*g, "t7_dim_1") if "t4_no_bmask_no_bbox" in g else g for g in release_groups]}
sd_df = {name: pooled(g) for name, g in noise.items()}
for name, g in noise.items():
    print(f"{name}: {len(g)} groups of identical trainings, "
          + "; ".join("{" + ", ".join(f"{k} {ap_of(k)}" for k in grp) + "}" for grp in g)
          + f" -> pooled sd {sd_df[name][0]:.3f} AP, df {sd_df[name][1]}")
print(f"D = 1 against 'neither' (one training by notebook 03's reading): {ap_of('t7_dim_1')} vs "
      f"{ap_of('t4_no_bmask_no_bbox')} AP, a gap of {ap_of('t7_dim_1') - ap_of('t4_no_bmask_no_bbox'):.1f}")

contrastive_rows = [r for r in TABLES["4R"].rows if r.settings["Emb. Loss"] == "Contrastive"]
for r in contrastive_rows:
    assert load_config(rp.RUNS[r.key].config_path).loss.emb_loss == "contrastive"  # the kit's loss, not the release's
print("contrastive rows (not producible with the released code): "
      + ", ".join(f"{r.key} {r.values['AP']}" for r in contrastive_rows))

readings = [  # (what a reader takes from the table, row with, row without)
    ("Bbox Mask Loss, no bbox head", "t4_bmask_only", "t4_no_bmask_no_bbox"),
    ("Bbox Mask Loss, with bbox head", "t4_full", "t4_bbox_only"),
    ("bbox head, no Bbox Mask Loss", "t4_bbox_only", "t4_no_bmask_no_bbox"),
    ("bbox head, with Bbox Mask Loss", "t4_full", "t4_bmask_only"),
    *[(f"AE against {r.settings['Emb. Loss']} / {r.settings['Dist. Metric']}", "t4_ae_l2", r.key)
      for r in contrastive_rows],
    *[(f"β = 10 against β = {r.settings['β']:g}", "t7_beta_10", r.key) for r in TABLES["7L"].rows
      if r.key != "t7_beta_10"],
    ("largest D gap", max((r.key for r in TABLES["7R"].rows), key=ap_of),
     min((r.key for r in TABLES["7R"].rows), key=ap_of)),
]
lines = ["| reading | gap (AP) | " + " | ".join(f"p ({n})" for n in noise) + " |", "|---|---|" + "---|" * len(noise)]
p_by = {n: [] for n in noise}
for label, a, b in readings:
    g_ = ap_of(a) - ap_of(b)
    cells = []
    for n, (sd, df_) in sd_df.items():
        p_ = 2 * stats.t.sf(abs(g_) / (sd * 2 ** 0.5), df_)
        p_by[n].append(p_)
        cells.append(f"{p_:.2f}" + (" **beyond noise**" if p_ < 0.05 else ""))
    lines.append(f"| {label} ({a} − {b}) | {g_:+.1f} | " + " | ".join(cells) + " |")
display(Markdown("\n".join(lines)))
strict, release = "kit's configs", "release + D = 1"
print("smallest gap beyond the noise (two runs, p < 0.05): "
      + ", ".join(f"{stats.t.ppf(0.975, df_) * sd * 2 ** 0.5:.2f} AP ({n})" for n, (sd, df_) in sd_df.items()))
print(f"-> with the kit's groups {sum(p < 0.05 for p in p_by[strict])} of {len(readings)} readings are beyond the "
      f"noise; if the paper ran the released code, {sum(p < 0.05 for p in p_by[release])}: Tables 4 and 7 then "
      "support no ranking of settings, and the bbox-head rows measure no bbox head at all")
assert sd_df[release][0] > sd_df[strict][0]  # the dead head's pairs show more noise than the kit's groups
assert all(p >= 0.05 for p in p_by[release])  # the sentence above

# %% [markdown]
# ## Exercises
# Each solution is in the hidden cell below its question (click the cell's "…" to show it); running it checks
# the answer with an independent computation.
#
# **Predict before you run.** If the paper's runs used the released code (dead bbox head), how many *different*
# trainings are behind the four rows of Table 4 (left)? Write your guess down, then run the solution.

# %% tags=["solution"] jupyter={"source_hidden": true}
keys_4l = {r.key for r in TABLES["4L"].rows}
trainings_4l = [g for g in release_groups if set(g) & keys_4l]
trainings_4l += [(k,) for k in keys_4l - {k for g in trainings_4l for k in g}]  # rows alone in their training
print(f"Table 4 (left): {len(keys_4l)} rows, {len(trainings_4l)} different trainings under the release: {trainings_4l}")
# independent: with the head dead only the Bbox Mask Loss switch changes the training
switches = {load_config(rp.RUNS[r.key].config_path).loss.bbox_mask for r in TABLES["4L"].rows}
assert len(trainings_4l) == len(switches) == 2

# %% [markdown]
# **Exercise 1.** Table 3 puts BoIR 0.8 AP above CID on COCO val, one run each. Is that larger than the
# run-to-run noise of the paper's own ablation rows? Use the pooled per-run sd of each grouping above and a
# two-run t-test; then test the Bbox Mask Loss as the groups allow it under the release (all rows with it
# against all rows without it, a two-sample t-test).

# %% tags=["solution"] jupyter={"source_hidden": true}
for n, (sd, df_) in sd_df.items():
    t_ = d_paper / (sd * 2 ** 0.5)
    p_ = 2 * stats.t.sf(t_, df_)
    print(f"{n}: {d_paper:.1f} AP = {t_:.2f} × the sd of a two-run difference, p = {p_:.3f} (df {df_})")
    # independent: the same p from the t distribution's cdf, the sd from numpy's group-centred deviations
    dev = np.concatenate([np.array([ap_of(k) for k in g]) - np.mean([ap_of(k) for k in g]) for g in noise[n]])
    sd_np = float(np.sqrt((dev ** 2).sum() / (len(dev) - len(noise[n]))))
    assert abs(sd_np - sd) < 1e-12 and abs(p_ - 2 * (1 - stats.t.cdf(d_paper / (sd_np * np.sqrt(2)), df_))) < 1e-9
without = [ap_of(k) for k in next(g for g in noise[release] if "t4_no_bmask_no_bbox" in g)]  # no effective loss
with_loss = [ap_of(k) for k in next(g for g in noise[release] if "t4_full" in g)]
sp = pooled([g for g in noise[release]])[0]
t_bm = (statistics.fmean(with_loss) - statistics.fmean(without)) / (sp * (1 / len(with_loss) + 1 / len(without)) ** 0.5)
p_bm = 2 * stats.t.sf(abs(t_bm), len(with_loss) + len(without) - 2)
print(f"Bbox Mask Loss under the release: {statistics.fmean(with_loss):.2f} ({len(with_loss)} rows) vs "
      f"{statistics.fmean(without):.2f} ({len(without)} rows), t = {t_bm:.2f}, p = {p_bm:.2f}")
ref = stats.ttest_ind(with_loss, without)  # scipy's two-sample t-test (equal variances)
assert abs(ref.statistic - t_bm) < 1e-9 and abs(ref.pvalue - p_bm) < 1e-9

# %% [markdown]
# **Exercise 2.** What is the smallest gap between two single runs that the release grouping's noise lets you
# call real (p < 0.05)? Which of the claims of Tables 1–3 (BoIR − CID) clear it?

# %% tags=["solution"] jupyter={"source_hidden": true}
sd, df_ = sd_df[release]
gap_min = stats.t.ppf(0.975, df_) * sd * 2 ** 0.5
claimed = {"Table 1 W32": gap("1"), "Table 1 W48": gap("1", backbone="HRNet-W48"), "Table 2 W32": gap("2"),
           "Table 2 W32*": gap("2", marks="*"), "Table 3 COCO val W32": d_paper,
           **{f"Table 3 OCHuman {s_} {bb[-3:]}": v for (bb, s_), v in och.items()}}
print(f"smallest two-run gap with p < 0.05: {gap_min:.2f} AP")
for k, v in claimed.items():
    print(f"  {k}: {v:+.1f} AP -> {'clears it' if abs(v) > gap_min else 'within the noise'}")
# independent: a gap of exactly gap_min has p = 0.05 (two-sided)
assert abs(2 * stats.t.sf(gap_min / (sd * np.sqrt(2)), df_) - 0.05) < 1e-12
assert all(v > gap_min for k, v in claimed.items() if "OCHuman" in k)  # the crowd claim survives the noise

# %% [markdown]
# ## Recap
# 1. Every reproducible row is a metrics file written by `run_evaluation` and rendered as *paper / ours
#    (ours − paper)*; COCO test-dev gets the file to submit, not a score.
# 2. The paper's own tables hold their noise: one configuration reported as two numbers, and, under the
#    release's dead bbox head, pairs of "ablation" rows that are the same training 0.8 AP apart. Against that
#    noise Tables 4 and 7 rank no setting; the OCHuman gains of Table 3 are larger than it.
# 3. A p-value is only as good as the spread it assumes: p = 6.4·10⁻⁵ needs a per-run sd the tables contradict.
#
# **Next**: [07 · What the representations look like](07_representations.ipynb) — instead of AP, look at the
# features themselves: does BoIR separate people better than CID?
