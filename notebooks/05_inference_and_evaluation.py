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
# # 05 · Inference and evaluation
#
# How do dense maps become poses, and how is a pose scored?

# %%
from boir_core.course import show_course_map

show_course_map("05")

# %% [markdown]
# **After this notebook you can**
# 1. follow a trained network's output through every decoding step, from the center map to the final poses;
# 2. compute the OKS of a predicted pose by hand, and say why a few pixels cost more on a nose than on a hip;
# 3. evaluate a model with the COCO protocol and read AP, AP50, AP75, AR (and CrowdPose's easy / medium / hard).
#
# **Prerequisites**: [02 · Backbone, ASPP neck and heads](02_backbone_aspp_heads.ipynb) (which heads run at test
# time) and [04 · Training](04_training.ipynb) (where the weights come from).

# %% [markdown]
# ## Where this notebook starts
# At test time BoIR runs only the backbone, the ASPP neck, the center head and the instance keypoint head:
# the BUK, embedding and bbox heads were there to shape the features during training and cost nothing now.
# This notebook draws every step of the released decoding (docs/inference.md#decoding-steps) on one
# image, then evaluates a model with the COCO keypoint protocol and shows the metrics table. The network runs
# through `backend` (the config's `test.backend`; unset: `exact`, the path that gives the release's poses;
# `torch`, `onnxruntime` or `openvino` are faster, docs/inference.md#exact-and-fast-inference); the decoding drawn
# here is the same code for all of them.
#
# By default it uses the kit's default trained weights (`boir_core.paths.default_checkpoint()`: the demo BoIR
# shipped inside the package, `boir_core/weights/demo_boir.pt`, checksum-verified) when they exist, else it trains
# the tiny configuration for a few iterations so the notebook always runs, and says so.

# %% tags=["parameters"]
config = None  # None: the config saved with the weights (else demo); e.g. coco_w32 for released weights
data_root = None  # None: the config's data.root; relative paths are read from the kit's root
checkpoint = None  # our weights, a run folder or a released .pth; None: the default weights (make demo's)
fallback_run_dir = "runs/notebooks/05_tiny"  # where a tiny model is trained when there are no default weights
image_index = 0  # which validation image to decode step by step
max_images = None  # None: the config's test.max_images (0: the whole split)
device = None  # None: the config's test.device
backend = None  # None: the config's test.backend (unset: exact); torch is faster, onnxruntime / openvino run ONNX

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from boir_core import paths
from boir_core.config import load_config
from boir_core.data import KeypointDataset, get_profile
from boir_core.data.transforms import denormalize_image
from boir_core.engine.evaluation.runner import checkpoint_config, run_evaluation
from boir_core.engine.inference.predictor import Predictor
from boir_core.viz.draw import draw_poses

# %matplotlib inline

# %% [markdown]
# ## A model (guarded: load if present, else train briefly)

# %%
# the parameters you set become overrides; the ones left at None keep the config's values
mirrors = {"data.root": data_root, "test.device": device, "test.max_images": max_images, "test.backend": backend}
set_here = [f"{k}={v}" for k, v in mirrors.items() if v is not None]
if checkpoint:  # a path you named must exist: no silent fallback
    checkpoint = paths.existing(checkpoint, "checkpoint")
else:
    checkpoint = paths.default_checkpoint("boir")
if checkpoint is not None:
    cfg = checkpoint_config(checkpoint, config, set_here)
    print(f"weights: {checkpoint} ({cfg.name} config)")
else:
    print("no trained weights yet (`make demo` trains them into "
          f"{paths.resolve(paths.DEMO_WEIGHTS)}): training the tiny config for 4 iterations instead")
    # a toy model: a few iterations, and 20 validation images unless you set max_images
    cfg = load_config("tiny", ["train.epochs=1", "train.max_steps_per_epoch=4", "test.max_images=20", *set_here])
cfg = cfg.override(f"data.root={paths.resolve(cfg.data.root)}")  # relative to the kit's root, not notebooks/
if cfg.data.dataset.startswith("synthcrowd"):
    from boir_core.data.sources.synthetic import SynthCrowdSpec, ensure_synthcrowd

    ensure_synthcrowd(cfg.data.root, SynthCrowdSpec(num_keypoints=cfg.num_keypoints))
if checkpoint is None:
    from boir_core.engine.training.train import train

    checkpoint = train(cfg, paths.resolve(fallback_run_dir), resume="or-restart", progress=False).final_weights
    print(f"weights: {checkpoint} (tiny, 4 iterations)")
print(f"data: {cfg.data.root}")
predictor = Predictor(cfg, checkpoint)  # weights, test.device, test.backend (unset: exact) and the decode settings
print(predictor.report)
print(f"network: test.backend={predictor.backend} ({predictor.variant}) on {predictor.device}")

# %% [markdown]
# ## Step 1 · the test-time resize
# The short side becomes `input_size`, the long side is padded up to a multiple of 64; a rotation-free
# affine keeps the image centered. Its inverse maps predictions back to the original pixels.

# %%
prof = predictor.profile
test_set = KeypointDataset.from_config(cfg, train=False)
sample = test_set[image_index]
original = test_set.read(image_index)
canvas = denormalize_image(sample["image"])
fig, ax = plt.subplots(1, 2, figsize=(10, 4))
ax[0].imshow(original)
ax[0].set_title(f"original {original.shape[1]}×{original.shape[0]}")
ax[1].imshow(canvas)
ax[1].set_title(f"network input {canvas.shape[1]}×{canvas.shape[0]}")
plt.show()

# %% [markdown]
# ## Steps 2–5 · flip test, center map, smoothing and peaks
# The image and its mirror go through the backbone together; the mirrored feature map is flipped back, so
# both center maps are aligned and averaged. The map is smoothed, `(C + avgpool_k(C))/2`, then max-pool NMS
# (kernel 3, 5 or 7 by map size) keeps local maxima and the top 30 above 0.01 become people.

# %%
res = predictor(sample["image"], sample["meta"], image_id=sample["image_id"], return_intermediates=True)
it = res.intermediates
fig, ax = plt.subplots(1, 3, figsize=(13, 4))
ax[0].imshow(it["center_raw"], cmap="magma")
ax[0].set_title("center map (flip-averaged)")
ax[1].imshow(it["center_smoothed"], cmap="magma")
ax[1].set_title("smoothed")
ax[2].imshow(it["center_nms"], cmap="magma")
if len(it["peaks_yx"]):
    ax[2].scatter(it["peaks_yx"][:, 1], it["peaks_yx"][:, 0], s=40, facecolors="none", edgecolors="cyan")
ax[2].set_title(f"NMS (kernel {it['peak_kernel']}): {len(it['peaks_yx'])} peaks")
plt.show()
print(f"network {1000 * res.time_network:.1f} ms, decoding {1000 * res.time_decode:.1f} ms")

# %% [markdown]
# ## Steps 6–8 · instance heatmaps, flip average, refinement
# Each peak's backbone vector conditions the instance head on both aligned maps. The mirrored half has left
# and right swapped, so its channels are permuted by the flip index before averaging. Each keypoint is the
# argmax of its smoothed heatmap, moved a quarter pixel towards the larger neighbour.

# %%
if len(it["peaks_yx"]):
    names = prof.keypoints
    k_show = [0, names.index(next(n for n in names if "wrist" in n)),
              names.index(next(n for n in names if "ankle" in n))]
    fig, ax = plt.subplots(3, len(k_show), figsize=(3.2 * len(k_show), 9))
    for j, k in enumerate(k_show):
        ax[0, j].imshow(it["instance_heatmaps_original"][0, k], cmap="viridis")
        ax[0, j].set_title(f"person 0, {names[k]}: original")
        if it["instance_heatmaps_mirrored"] is not None:
            ax[1, j].imshow(it["instance_heatmaps_mirrored"][0, k], cmap="viridis")
        ax[1, j].set_title("mirrored (channels permuted)")
        ax[2, j].imshow(it["instance_heatmaps_smoothed"][0, k], cmap="viridis")
        x, y = it["keypoints_map"][0, k].tolist()
        ax[2, j].plot(x, y, "r+", ms=12)
        ax[2, j].set_title("averaged + smoothed, refined peak")
    plt.tight_layout()
    plt.show()
else:
    print("no center above the threshold in this image: the model is untrained or the image is empty")

# %% [markdown]
# ## Steps 9–10 · back to the image and OKS-NMS
# Map pixels become input pixels (4x + 2), then original pixels through the inverse resize. Each person's
# score is the mean keypoint score; OKS-NMS drops lower-scored duplicates (OKS > 0.8).

# %%
print(f"{len(it['peaks_yx'])} candidates -> {len(res.poses)} people after OKS-NMS")
plt.figure(figsize=(6, 6))
plt.imshow(draw_poses(original, res.poses, prof.skeleton, min_score=0.05))
plt.axis("off")
plt.show()

# %% [markdown]
# **Explorer**: the decoding knobs (center threshold, pooling kernel, proposals, OKS-NMS threshold, flip test)
# on this image; the poses are decoded again and redrawn, with the counts at each stage.

# %%
from boir_core.viz.explorers import DecodingExplorer, place

decoding_explorer = place(DecodingExplorer(predictor.runner, sample, original, predictor.decode_settings,
                                           prof.skeleton))

# %% [markdown]
# ## Evaluation
# `run_evaluation` decodes the test split, scores it with pycocotools (COCO / OCHuman; CrowdPose uses its
# own protocol) and writes a metrics JSON next to the weights — the file the table notebook (06) reads.

# %%
eval_dir = paths.resolve(fallback_run_dir) / "eval"
out = run_evaluation(cfg, checkpoint, out_dir=eval_dir, progress=False, predictor=predictor)  # exact unless set
print(f"results and metrics.json in {eval_dir}")
m = out["metrics"]
print(f"{'metric':<8} value")
for k, v in m.items():
    print(f"{k:<8} {v:.3f}")
print(f"timings per image: {out['timings']}")

# %% [markdown]
# ## What the numbers mean: OKS, AP, AR and CrowdPose's easy / medium / hard
# (Terms: [glossary in notebook 01](01_data_and_targets.ipynb#glossary).)
#
# **OKS** (object keypoint similarity) plays the role IoU plays for boxes. For a prediction d and a person g
# with area s² (the annotation's `area`), over g's labelled keypoints (v > 0):
#
# OKS = mean_k exp(−‖d_k − g_k‖² / (2·s²·(2σ_k)²))
#
# σ_k is how much annotators disagree on keypoint k (0.026 for the nose, 0.107 for the hips, times the
# person's size), so a few pixels cost more on an eye than on a hip, and more on a small person.
#
# **Predict before you run.** A person fills a 64 × 64 px box (area s² = 64²). A prediction is perfect except
# for one keypoint, which is 5 px off. What is that keypoint's term exp(−d²/(2s²(2σ_k)²)) when it is the
# nose, and when it is a hip? Roughly 0.9 and 0.9, 0.3 and 0.9, or 0.3 and 0.3? Guess, then run the hidden
# solution.

# %% tags=["solution"] jupyter={"source_hidden": true}
from boir_core.data.profiles import COCO_SIGMAS
from boir_core.engine.evaluation.coco_ap import oks_matrix

names_coco = get_profile("coco").keypoints
person = {"keypoints": [v for k in range(17) for v in (100.0 + 3 * k, 200.0 + 2 * k, 2)], "area": 64.0 ** 2}
terms = {}
for part in ("nose", "left_hip"):
    k = names_coco.index(part)
    pred = list(person["keypoints"])
    pred[3 * k] += 5.0  # 5 px to the right
    oks = float(oks_matrix([pred], [person], COCO_SIGMAS)[0, 0])
    terms[part] = 17 * oks - 16  # the other 16 keypoints are exact: each term is 1
    by_hand = np.exp(-5.0 ** 2 / (2 * 64.0 ** 2 * (2 * COCO_SIGMAS[k]) ** 2))
    print(f"{part:8s} σ = {COCO_SIGMAS[k]}: term {terms[part]:.3f} (by hand {by_hand:.3f}); OKS of the pose {oks:.3f}")
    assert abs(terms[part] - by_hand) < 1e-9
assert terms["nose"] < 0.5 < terms["left_hip"]  # the same 5 px: a large error on a nose, a small one on a hip

# %% [markdown]
# **Explorer: one keypoint's OKS term.** Move the error d and the person's size s (√area), pick a keypoint. The
# left panel is the term against the error for a few sizes (yours in black, the dotted lines are the thresholds
# 0.5 and 0.95 of AP's range); the right panel is every keypoint type at your d and s, sorted by σ. Things to
# try: the 5 px of the question above on a 32 px person; how large must a person be before a 5 px nose error
# passes AP75's threshold? (`boir_core.viz.formula_explorers.OKSExplorer`; every number is the library's
# `oks_matrix` on a person with one labelled keypoint.)

# %%
from boir_core.viz.explorers import place
from boir_core.viz.formula_explorers import OKSExplorer

oks_explorer = place(OKSExplorer(names_coco, COCO_SIGMAS, keypoint="nose", error_px=5.0, size_px=64))

# %% [markdown]
# **AP at a threshold t**: every image keeps its 20 best-scored predictions; walking them by score, each
# is matched to the unmatched person with the highest OKS ≥ t (a true positive) or to nobody (a false
# positive). Pooled over images and sorted by score, the counts give a precision–recall curve; precision is
# made non-increasing and averaged at 101 recall points. **AP** averages AP(t) over t = 0.50, 0.55, …, 0.95
# (AP50, AP75: one threshold; AP_M / AP_L: only medium (32²–96² px) or large people). **AR** averages the
# final recall over the same thresholds.
#
# `boir_core.engine.evaluation.coco_ap` writes this out in plain loops. A model trained for a few iterations scores 0,
# so to get telling numbers we score a *stand-in* for predictions: the ground truth with noise added, some
# people left out and some random poses added. The plain version must reproduce pycocotools.

# %%
import json

from boir_core.engine.evaluation.coco_ap import crowd_index, keypoint_ap, oks_matrix
from boir_core.engine.evaluation.evaluate import evaluate_results

gt_file = Path(cfg.data.root) / "annotations" / f"person_keypoints_{cfg.data.test_split}.json"
gt_all = json.loads(gt_file.read_text())
keep = {im["id"] for im in gt_all["images"][: max_images or None]}
gt_sub = {**gt_all, "images": [im for im in gt_all["images"] if im["id"] in keep],
          "annotations": [a for a in gt_all["annotations"] if a["image_id"] in keep]}
rng = np.random.default_rng(0)
stand_in = []
for a in gt_sub["annotations"]:
    if rng.random() < 0.15:  # a missed person
        continue
    k = np.array(a["keypoints"], float).reshape(-1, 3)
    k[:, :2] += rng.normal(0, rng.uniform(0.5, 8), (len(k), 2))  # some people precise, some sloppy
    k[:, 2] = 1
    stand_in.append({"image_id": a["image_id"], "category_id": 1, "keypoints": k.ravel().tolist(),
                     "score": float(rng.random())})
for im in gt_sub["images"][::2]:  # a false pose in every other image
    k = np.column_stack([rng.uniform(0, im["width"], prof.num_keypoints),
                         rng.uniform(0, im["height"], prof.num_keypoints), np.ones(prof.num_keypoints)])
    stand_in.append({"image_id": im["id"], "category_id": 1, "keypoints": k.ravel().tolist(),
                     "score": float(rng.random())})

first = gt_sub["images"][0]["id"]
people = [a for a in gt_sub["annotations"] if a["image_id"] == first]
dets = [r for r in stand_in if r["image_id"] == first]
print(f"OKS of image {first}'s predictions (rows) with its people (columns):")
print(np.round(oks_matrix([d["keypoints"] for d in dets], people, prof.sigmas), 3))
plain = keypoint_ap(stand_in, gt_sub, prof.sigmas)
coco = evaluate_results(stand_in, gt_sub, cfg.data.dataset, sigmas=prof.sigmas)
print(f"{len(stand_in)} stand-in predictions for {len(gt_sub['annotations'])} people on {len(keep)} images")
print(f"{'metric':6s} {'plain':>8s} {'pycocotools':>12s}")
for k in ("AP", "AP50", "AP75", "AR"):
    print(f"{k:6s} {plain[k]:8.4f} {coco[k]:12.4f}")
    assert abs(plain[k] - coco[k]) < 1e-9, k
assert coco["AP50"] >= coco["AP"] >= 0  # looser thresholds can only match more

# %% [markdown]
# ## Going deeper: CrowdPose's easy / medium / hard
# **CrowdPose** reports AP over the whole test set and over three subsets of images, split by the **crowd
# index**: per person, the labelled joints of *other* people inside its box divided by its own, averaged
# over the image's people. Easy: index < 0.2, medium: < 0.8, hard: ≥ 0.8. The CrowdPose files store the
# index per image (`crowdIndex`, rounded to 0.01); we recompute it from the annotations of the real
# fixture images when they are present.

# %%
fixtures = paths.real_fixtures_dir()  # BOIR_REAL_FIXTURES, else shared/fixtures/real beside the kit
cp_file = fixtures / "crowdpose" / "test_crowdpose.json" if fixtures is not None else None
if cp_file is not None and cp_file.is_file():
    cp = json.loads(cp_file.read_text())
    for im in cp["images"]:
        ci = crowd_index([a for a in cp["annotations"] if a["image_id"] == im["id"]])
        subset = "easy" if ci < 0.2 else "medium" if ci < 0.8 else "hard"
        print(f"{im['file_name']}: crowd index {ci:.3f} (file: {im['crowdIndex']}) -> {subset}")
        assert abs(ci - im["crowdIndex"]) <= 0.005 + 1e-9
else:
    print("real fixtures not found (set BOIR_REAL_FIXTURES): no crowd-index example")

# %% [markdown]
# ## Exercises
# Each solution is in the hidden cell below its question (click the cell's "…" to show it); running it checks
# the answer with an independent computation. (The "predict before you run" question is in *What the numbers
# mean* above.)
#
# **Exercise 1.** How far can the nose be off before its OKS term drops to 0.5, for a person of 64² px and for
# one of 32² px? What does that say about AP75 on small people?

# %% tags=["solution"] jupyter={"source_hidden": true}
k_nose = names_coco.index("nose")
for side in (64.0, 32.0):
    d_half = np.sqrt(2 * np.log(2)) * side * 2 * COCO_SIGMAS[k_nose]  # solve exp(−d²/(2s²(2σ)²)) = 0.5 for d
    print(f"{side:.0f}² px person: the nose term is 0.5 at {d_half:.2f} px")
    gt_person = {"keypoints": [0.0, 0.0, 2] + [10.0, 10.0, 0] * 16, "area": side ** 2}  # only the nose labelled
    assert abs(oks_matrix([[d_half, 0.0, 1] + [0.0] * 48], [gt_person], COCO_SIGMAS)[0, 0] - 0.5) < 1e-12
print("half the person's size, half the pixels: a small person's keypoints must be twice as precise")

# %% [markdown]
# **Exercise 2.** An image holds two people with 10 labelled joints each. Person A's box contains 3 of B's
# joints, person B's box contains 2 of A's. What is the image's crowd index, and which CrowdPose subset is it in?

# %% tags=["solution"] jupyter={"source_hidden": true}
def toy_person(box, points):
    return {"bbox": box, "keypoints": [v for x, y in points for v in (x, y, 2)] + [0, 0, 0] * (14 - len(points))}


a_box, b_box = [0, 0, 10, 10], [20, 0, 10, 10]
a_pts = [(1 + i % 5, 1 + i // 5) for i in range(8)] + [(21, 5), (22, 5)]  # 2 of A's joints lie in B's box
b_pts = [(25, 1 + i) for i in range(7)] + [(5, 8), (6, 8), (7, 8)]  # 3 of B's joints lie in A's box
ci = crowd_index([toy_person(a_box, a_pts), toy_person(b_box, b_pts)])
by_hand = (3 / 10 + 2 / 10) / 2
subset = "easy" if ci < 0.2 else "medium" if ci < 0.8 else "hard"
print(f"crowd index {ci:.2f} (by hand (3/10 + 2/10) / 2 = {by_hand:.2f}) -> {subset}")
assert abs(ci - by_hand) < 1e-12 and subset == "medium"

# %% [markdown]
# ## Recap
# 1. At test time only the backbone, the neck, the center head and the instance head run; decoding is flip
#    averaging, smoothing, peak picking, one instance-head pass per center and OKS-NMS.
# 2. OKS scores a pose like IoU scores a box, with a per-keypoint tolerance σ_k scaled by the person's size.
# 3. AP averages precision over recall and over OKS thresholds 0.50 … 0.95; the kit's plain implementation
#    reproduces pycocotools on the same predictions.
#
# **Next**: [06 · Reproducing Tables 1–7](06_reproduce_tables.ipynb) — the same metrics for every row of the
# paper's tables, and how sure one can be of a difference.
