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
# # 01 · Data and targets
#
# What does a single-stage pose network learn to predict, and from which labels? This notebook starts with
# the whole network in one picture and the story of the method, then follows one training image from its
# COCO annotation to every *target* the network is trained on.

# %%
from boir_core.course import show_course_map

show_course_map("01")

# %% [markdown]
# **After this notebook you can**
# - say what each part of BoIR predicts (centers, each person's keypoints, and the training-only heads), and why
#   centers come first;
# - read a COCO keypoint annotation and predict which people become training *instances*;
# - compute the center / keypoint targets of a person (Gaussian radius r, σ) and the focal loss that scores them.
#
# **Prerequisites**: Python, NumPy and PyTorch tensors; what a convolutional network and a heatmap are. No pose
# estimation background is assumed.
#
# ## The big picture: one network, centers first
#
# A multi-person pose estimator returns, for every person in an image, K keypoints (17 for COCO: nose, eyes, ears,
# shoulders, elbows, wrists, hips, knees, ankles). *Top-down* methods run a person detector and then a pose network
# on every crop; *bottom-up* methods find all keypoints of all people at once and then have to group them into
# people. **Single-stage** methods do both in one network without a grouping step. BoIR is one of them:

# %%
from boir_core.viz.pipeline import draw_pipeline

# %matplotlib inline
pipeline_figure = draw_pipeline()

# %% [markdown]
# **CID, the starting point.** *Contextual Instance Decoupling* (CID; Wang & Zhang, CVPR 2022) finds people as the
# peaks of a **center heatmap** c. At each center it reads the backbone's feature vector f^p, and an **instance
# head** uses that one vector to pick that person out of the shared feature map F (a channel attention and a
# spatial attention, notebook 02) and draws only *that person's* K keypoint heatmaps. So grouping is never needed:
# every keypoint is predicted for a person from the start. To make the vectors of different people different, CID
# trains them with a contrastive loss, *between the few pixels at the people's centers* only.
#
# **What BoIR changes.** A contrastive loss at the centers says nothing about the rest of a person's body, and
# when people overlap the feature map is exactly where they get mixed up. BoIR (*Box-Supervised Instance
# Representation*, Jeong et al., BMVC 2023) keeps CID's pipeline and adds, **for training only**, an ASPP neck with
# auxiliary heads: bottom-up keypoints (BUK, every person's joints), a box, and an **embedding map** e. The
# embedding is trained by the **Bbox Mask Loss** (notebook 03), built from nothing but each person's box: the
# embedding p at a person's center should resemble the embeddings inside its box and differ from everything
# outside it and from the other people. Every pixel gets a training signal, not just the centers; boxes are cheap
# labels, available even for people without keypoints. The auxiliary heads shape the shared features F during
# training and are dropped at inference (dashed above), so the deployed network stays as cheap as CID's.
#
# **Where this notebook fits.** Everything above is trained from targets computed from annotations: a heatmap per
# keypoint, one for centers, per-person heatmaps, boxes and an ignore mask. This notebook builds each of them with
# `boir_core.data` (docs/data_format.md):
#
# 1. the COCO keypoint format and the three data-set **profiles** (COCO, CrowdPose, OCHuman);
# 2. **augmentation**: random affine (scale, rotation, translation) and horizontal flip;
# 3. every **target**: the center heatmap, the bottom-up keypoint ("BUK") heatmaps, the per-instance
#    heatmaps and masks, the boxes, and the ignore mask, and the focal loss that scores the heatmaps;
# 4. the **test-time resize** and its inverse.
#
# Everything runs on **SynthCrowd**, the kit's embedded synthetic crowd data set, and on the real COCO /
# CrowdPose / OCHuman fixture images when they are present. Where the released code differs from the paper in
# a detail of the data (the flip, box clipping, the radius formula), the main text says what the kit does and
# the details wait in the **"Going deeper"** sections at the end.

# %% [markdown]
# <a id="glossary"></a>
# ## Glossary and notation (the other notebooks link here)
#
# - **BoIR**: this paper: CID's pipeline plus an ASPP neck with auxiliary heads and the Bbox Mask Loss
# - **CID**: *Contextual Instance Decoupling* (Wang & Zhang, CVPR 2022), the single-stage method BoIR builds on and
#   compares with: detect people by a center heatmap, then predict each person's keypoints from the backbone map
#   conditioned on the feature at its center
# - **IIA / GFD**: the names CID gives its two parts (the story above): *Instance Information Abstraction* (center
#   heatmap, the feature at each center, a contrastive loss on those features) and *Global Feature Decoupling* (the
#   instance head). BoIR keeps GFD (notebook 02) and replaces IIA's loss
# - **single-stage**: finds people (centers) and their keypoints in one network, without a person detector (top-down) or
#   keypoint grouping (bottom-up)
# - **BUK**: bottom-up keypoint heatmaps: K maps holding *every* person's joints (an auxiliary head)
# - **focal loss**: CornerNet's pixel-wise loss for heatmaps with Gaussian targets (section 4 below)
# - **CIoU**: *Complete IoU* box loss: IoU minus a center-distance and an aspect-ratio penalty (notebook 04)
# - **AE**: *Associative Embedding* (Newell et al. 2017): embeddings pulled together within a person and pushed apart
#   across people with a Gaussian kernel exp(−β·d); the Bbox Mask Loss uses its kernel (Table 4 "AE")
# - **InfoNCE**: a contrastive loss: cross-entropy over similarities / τ with the matching pair as the target (CID's
#   loss; Table 4 "Contrastive")
# - **Bbox Mask Loss**: BoIR's embedding loss from boxes: `pull_in`, `push_out`, `push_inst` (notebook 03; its
#   release variants, "BG level" 0 and 1, are in 03's "Going deeper" section)
# - **OKS**: *Object Keypoint Similarity*: exp(−d²/(2·s²·k²)) averaged over labelled keypoints, s² = the person's area,
#   k = 2σ per keypoint: the "IoU" of poses (notebook 05)
# - **AP / AR**: average precision / recall over OKS thresholds 0.50, 0.55, …, 0.95 (AP50, AP75: one threshold; M / L:
#   medium / large people)
# - **AP^E / AP^M / AP^H**: CrowdPose's AP on its easy / medium / hard images, split by *crowd index* < 0.2, < 0.8,
#   ≥ 0.8 (notebook 05)
# - **warm-up / cosine**: the learning rate rises linearly, then decays along a half cosine (notebook 04)
# - **paper / release**: every place the released code differs from the paper is a config switch (README)
#
# | symbol | meaning |
# |---|---|
# | K | keypoints per person (17 COCO / OCHuman, 14 CrowdPose) |
# | images per batch | written out (per GPU): the letters B and N have other jobs below |
# | N (n) | people in one image (in the batch) |
# | S_in, S_out = S_in/4 | input size; output map size (stride 4); H×W the map |
# | F, C_b | the backbone's stride-4 feature map and its channels (480 for HRNet-W32) |
# | f^p | F at a person's center: the backbone vector the instance head reads (notebook 02) |
# | c, k^bu, b, e | center map, BUK maps, box map (l, t, r, b), embedding map (D channels, L2-normalised) |
# | D, β | embedding dimension (128); the embedding kernel's bandwidth (10), ψ(d) = exp(−β/D·d) |
# | B_i, p_i, p̄_i, p̄ᶜ_i | pixels in person i's box; e at its center; the soft-masked in-box mean; the out-box mean |
# | r, σ | Gaussian radius of a target and its σ = (2r + 1)/6 (section 4) |
# | (x, y) vs (y, x) | points are (x, y); `instance_coord` is (row, column) = (y, x) |

# %% tags=["parameters"]
data_root = None  # None: generate a small SynthCrowd into a temporary folder; relative paths: from the kit's root
real_fixtures = None  # real COCO / CrowdPose / OCHuman samples; None: ../shared/fixtures/real (skipped if absent)
input_size = 256  # S_in; the output maps are S_in / 4
num_train = 6  # SynthCrowd images to generate when data_root is None
num_val = 2
seed = 0

# %%
import json
import os
import tempfile
from dataclasses import replace
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from boir_core import paths
from boir_core.data import PROFILES, DataFiles, KeypointDataset, SampleSettings, collate_train, get_profile
from boir_core.data.targets import gaussian_radius, gaussian_sigma
from boir_core.data.transforms import apply_affine, denormalize_image, eval_resize

# %matplotlib inline
output_size = input_size // 4

# %% [markdown]
# ## SynthCrowd
# A few procedurally drawn crowd images in the real COCO on-disk layout: `images/{split}/*.jpg` and
# `annotations/person_keypoints_{split}.json`.

# %%
if data_root is None:
    from boir_core.data.sources.synthetic import SynthCrowdSpec, make_synthcrowd

    data_root = os.path.join(tempfile.gettempdir(), f"boir_nb01_synthcrowd_{num_train}_{num_val}_{seed}")
    if not Path(data_root, "annotations", "person_keypoints_train.json").exists():
        make_synthcrowd(data_root, SynthCrowdSpec(num_train=num_train, num_val=num_val, seed=seed, num_keypoints=17))
data_root = paths.existing(data_root, "data_root")
print(data_root, sorted(p.name for p in (data_root / "annotations").iterdir()))

# %% [markdown]
# ## 1 · The COCO keypoint format
# One JSON per split with `images`, `annotations` and `categories`. Each person annotation stores
# `keypoints` as a flat list of K triplets **(x, y, v)** in original pixels, where v = 0 means "not
# labelled", v = 1 "labelled but occluded", v = 2 "labelled and visible"; `bbox` is **xywh**;
# `iscrowd = 1` marks a crowd region (a segmentation, no keypoints).

# %%
coco_json = json.loads((data_root / "annotations" / "person_keypoints_train.json").read_text())
ann = coco_json["annotations"][0]
print("image:", coco_json["images"][0])
print("keys of an annotation:", sorted(ann))
kp = np.array(ann["keypoints"]).reshape(-1, 3)
names = coco_json["categories"][0]["keypoints"]
for name, (x, y, v) in list(zip(names, kp))[:6]:
    print(f"  {name:<15s} x={x:6.1f} y={y:6.1f} v={int(v)}")
print("bbox (xywh):", ann["bbox"], " num_keypoints:", ann["num_keypoints"])

# %% [markdown]
# ## 2 · Profiles: what differs between the data sets
# The **flip index** says which keypoint a keypoint becomes when the image is mirrored (left ↔ right).
# The release also applies different rules per data set (docs/data_format.md#data-sets-on-disk,
# docs/data_format.md#ignore-mask, docs/data_format.md#targets).

# %%
print(f"{'profile':<13s} {'K':>3s}  {'train filter':<12s} {'small no ctr':<12s} {'crowd mask':<10s} crowdIndex")
for name, p in PROFILES.items():
    print(f"{name:<13s} {p.num_keypoints:>3d}  {p.train_filter:<12s} {str(p.small_person_no_center):<12s} "
          f"{str(p.crowd_ignore_mask):<10s} {p.has_crowd_index}")
for name in ("coco", "crowdpose"):
    p = get_profile(name)
    print(f"\n{name}: flip index {list(p.flip_index)}")
    print("  e.g.", ", ".join(f"{p.keypoints[i]} -> {p.keypoints[j]}" for i, j in list(enumerate(p.flip_index))[:4]))
    print("  OKS sigmas", list(p.sigmas))
    print("  files:", p.ann_file("ROOT", "val"), "|", p.image_dir("ROOT", "val"))


# %%
def show_image(ax, chw, title=""):
    """Undo the ImageNet normalisation of a [3, H, W] tensor and show it."""
    ax.imshow(denormalize_image(chw))
    ax.set_title(title, fontsize=9)
    ax.axis("off")


def draw_people(ax, keypoints, skeleton, scale=1.0, boxes=None):
    """Keypoints (x, y, v) [n, K, 3] (output px × scale) with the skeleton; boxes xywh in output px."""
    colours = plt.cm.tab10(np.arange(len(keypoints)) % 10)
    for c, kp in zip(colours, keypoints):
        vis = kp[:, 2] > 0
        for a, b in skeleton:
            if vis[a] and vis[b]:
                ax.plot(kp[[a, b], 0] * scale, kp[[a, b], 1] * scale, "-", color=c, lw=1.5)
        ax.scatter(kp[vis, 0] * scale, kp[vis, 1] * scale, s=8, color=c)
    if boxes is not None:
        for c, (x, y, w, h) in zip(colours, boxes):
            ax.add_patch(plt.Rectangle((x * scale, y * scale), w * scale, h * scale, fill=False, ec=c, lw=1))


# %% [markdown]
# ## 3 · Augmentation (docs/data_format.md#augmentation)
# One random affine per sample: the crop side is the short image side × U[0.75, 1.5), rotation
# U(−30°, 30°), an integer shift of up to ±20 % of the crop, and a horizontal flip with probability ½
# (keypoints are then permuted by the flip index). The same matrix, at ¼ scale, maps keypoints and box
# corners straight into **output-map coordinates**. Below: six draws of the same image.

# %%
train_ds = KeypointDataset(data_root, "synthcrowd", "train", settings=SampleSettings(input_size=input_size, seed=seed))
print(train_ds)
skel = get_profile("synthcrowd").skeleton
fig, axes = plt.subplots(1, 6, figsize=(18, 3.2))
for e, ax in enumerate(axes):
    train_ds.set_epoch(e)
    s = train_ds[0]
    show_image(ax, s["image"], f"epoch {e}: {len(s['instance_coord'])} instances")
    draw_people(ax, s["instance_keypoints"].numpy(), skel, scale=4.0)
    ax.set_xlim(0, input_size), ax.set_ylim(input_size, 0)
plt.show()
train_ds.set_epoch(0)

# %% [markdown]
# **Explorer**: pin the augmentation yourself (scale, rotation, shift, flip) and watch the sample and the
# chosen target follow (`boir_core.viz.explorers.AugmentationExplorer`).

# %%
from boir_core.viz.explorers import AugmentationExplorer, place

augmentation_explorer = place(AugmentationExplorer(train_ds, index=0, skeleton=skel))

# %% [markdown]
# The flip also permutes the keypoints (a left wrist becomes a right wrist). Where exactly a mirrored keypoint
# lands is a place where the released code is 0.75 output pixels off; the kit labels flips exactly by default
# ([Going deeper A](#going-deeper-a-the-flip)).

# %% [markdown]
# ## 4 · Targets (docs/data_format.md#targets)
# * **Center** of a person = the mean of its labelled keypoints (not the box center). On COCO-like
#   data, people smaller than 32² input px² get no center (their center pixel stays a negative).
# * Each person gets an **adaptive Gaussian**: CornerNet's radius from its box, σ = (2r + 1)/6.
# * **Multi heatmap** = K BUK channels (all people's keypoints) + 1 center channel; peaks are exactly 1.
# * **Instances** in ascending area order, each with its center coordinate (jittered by ±1 px),
#   K heatmaps of its own keypoints, a K-mask (0 for unlabelled keypoints) and an xywh box.
# * The **ignore mask** is 0 on crowd regions, on unlabelled people (COCO rule) and outside the image.

# %%
print("Gaussian size (worked examples of docs/data_format.md#gaussian-size): h×w -> r, σ")
for h, w in [(16, 8), (32, 16), (64, 32), (100, 60)]:
    r = int(gaussian_radius(h, w))
    print(f"  {h:>3d}×{w:<3d} -> r = {r:2d}, σ = {float(gaussian_sigma(r)):.2f}")

# %% [markdown]
# **Where the numbers come from, in short.** r is CornerNet's *adaptive radius*: the error that still leaves a
# box overlapping its true position by a minimum IoU (0.7), so big people get wide Gaussians and small people
# narrow ones. With the formula as the release computes it, r is about a tenth of h + w (never more than
# 0.137·(h + w)); σ = (2r + 1)/6 makes the drawn (2r + 1)-pixel square span ±3σ. The algebra, and how far the
# release's r is from the bound CornerNet meant, are in [Going deeper B](#going-deeper-b-the-radius).


# %%
def show_targets(sample, skeleton, title):
    k = sample["multi_heatmap"].shape[0] - 1
    n = len(sample["instance_coord"])
    fig, axes = plt.subplots(1, 5 + min(n, 3), figsize=(3 * (5 + min(n, 3)), 3.2))
    show_image(axes[0], sample["image"], title)
    draw_people(axes[0], sample["instance_keypoints"].numpy(), skeleton, 4.0,
                boxes=sample["instance_bbox"].numpy())
    axes[1].imshow(sample["multi_heatmap"][k], cmap="magma", vmin=0, vmax=1)
    yx = sample["instance_coord"].numpy()
    axes[1].scatter(yx[:, 1], yx[:, 0], s=12, facecolors="none", edgecolors="cyan")
    axes[1].set_title("center channel (+ instance coords)", fontsize=9)
    axes[2].imshow(sample["multi_heatmap"][:k].max(0).values, cmap="magma", vmin=0, vmax=1)
    axes[2].set_title(f"BUK: max of {k} channels", fontsize=9)
    axes[3].imshow(sample["multi_mask"][0], cmap="gray", vmin=0, vmax=1)
    axes[3].set_title("ignore mask (black = ignored)", fontsize=9)
    axes[4].imshow(np.zeros((sample["multi_mask"].shape[-1],) * 2), cmap="gray")
    draw_people(axes[4], sample["instance_keypoints"].numpy(), skeleton, 1.0, boxes=sample["instance_bbox"].numpy())
    axes[4].set_title("boxes + keypoints (output px)", fontsize=9)
    s_in, s_out = sample["image"].shape[-1], sample["multi_mask"].shape[-1]
    axes[0].set_xlim(0, s_in), axes[0].set_ylim(s_in, 0)
    axes[4].set_xlim(0, s_out), axes[4].set_ylim(s_out, 0)
    for i in range(min(n, 3)):
        ax = axes[5 + i]
        ax.imshow(sample["instance_heatmap"][i].max(0).values, cmap="magma", vmin=0, vmax=1)
        y, x = yx[i]
        ax.plot(x, y, "c+", ms=10)
        ax.set_title(f"instance {i}: {int(sample['instance_mask'][i].sum())}/{k} kpts labelled", fontsize=9)
    for ax in axes[1:]:
        ax.set_xticks([])
        ax.set_yticks([])
    plt.show()


s = train_ds[0]
show_targets(s, skel, "SynthCrowd, augmented")
for key, v in s.items():
    print(f"{key:<20s} {tuple(v.shape) if hasattr(v, 'shape') else v!r:<24} {getattr(v, 'dtype', type(v).__name__)}")

# %% [markdown]
# ### Batching
# `collate_train` stacks per-image maps and **concatenates** the instances of all images, adding
# `instance_imgid` (which image each instance belongs to). Images without people add no rows.

# %%
batch = collate_train([train_ds[i] for i in range(min(4, len(train_ds)))])
print({k: tuple(v.shape) for k, v in batch.items()})
print("instance_imgid:", batch["instance_imgid"].tolist())

# %% [markdown]
# ### How these targets are scored: the focal loss (docs/training.md#losses, paper §3.4)
# The center, BUK and instance heatmaps are all trained with CornerNet's **focal loss** on probabilities
# P = sigmoid(logit) (clamped to [1e-4, 1 − 1e-4]) against a target Y whose peaks are exactly 1:
#
# L = −1/N_pos · [ Σ_{Y=1} M·(1 − P)²·log P + Σ_{Y<1} M·(1 − Y)⁴·P²·log(1 − P) ],  N_pos = Σ_{Y=1} M
#
# (1 − P)² and P² down-weight pixels that are already right; (1 − Y)⁴ forgives confident pixels *near* a
# peak, where the Gaussian target is almost 1 (CornerNet's exponents 2 and 4); M is the ignore mask. One
# normaliser N_pos covers the whole call, and **center + BUK are one call** on the stacked [BUK ∥ center]
# maps: the center channel shares its normaliser with all K keypoint channels (it is not a separate mean). Below, the
# library against a five-line version on this batch, with a stand-in prediction (noisy logits that are
# higher on the targets; an untrained network predicts P = σ(−4.595) = 0.01 everywhere).

# %%
import torch

from boir_core.losses import focal_loss, instance_heatmap_loss, multi_heatmap_loss
from boir_core.ops import sigmoid_clamp


def focal_by_hand(P, Y, M):
    pos, neg = (Y == 1).double() * M, (Y < 1).double() * M
    pos_term = (pos * (1 - P) ** 2 * torch.log(P)).sum()
    neg_term = (neg * (1 - Y) ** 4 * P ** 2 * torch.log(1 - P)).sum()
    return -(pos_term + neg_term) / pos.sum() if pos.sum() > 0 else -neg_term


g = torch.Generator().manual_seed(seed)
Y, M = batch["multi_heatmap"].double(), batch["multi_mask"].double()
logits = 4 * Y - 3 + torch.randn(Y.shape, generator=g, dtype=torch.float64)
buk_logits, center_logits = logits[:, :-1], logits[:, -1:]
lib = multi_heatmap_loss(center_logits, buk_logits, Y, M)
hand = focal_by_hand(sigmoid_clamp(logits), Y, M)
separate = focal_loss(sigmoid_clamp(center_logits), Y[:, -1:], M) + focal_loss(sigmoid_clamp(buk_logits), Y[:, :-1], M)
n_center, n_buk = int((Y[:, -1:] == 1).sum()), int((Y[:, :-1] == 1).sum())
print(f"center + BUK focal loss: library {float(lib):.6f}, by hand {float(hand):.6f}")
print(f"positives: {n_center} center peaks, {n_buk} keypoint peaks share one normaliser; two separate means "
      f"would give {float(separate):.4f} instead")
assert torch.allclose(lib, hand, rtol=1e-10) and not torch.isclose(lib, separate)

inst_logits = 4 * batch["instance_heatmap"].double() - 3 + torch.randn(batch["instance_heatmap"].shape, generator=g,
                                                                        dtype=torch.float64)
inst_lib = instance_heatmap_loss(inst_logits, batch["instance_heatmap"], batch["instance_mask"])
inst_hand = focal_by_hand(sigmoid_clamp(inst_logits), batch["instance_heatmap"].double(),
                          batch["instance_mask"].double()[:, :, None, None])
prior = multi_heatmap_loss(torch.full_like(center_logits, -4.595), torch.full_like(buk_logits, -4.595), Y, M)
print(f"instance keypoint focal loss: library {float(inst_lib):.6f}, by hand {float(inst_hand):.6f} "
      f"(other people's joints are negatives here); untrained prior P = 0.01: {float(prior):.3f}")
assert torch.allclose(inst_lib, inst_hand, rtol=1e-10)

# %% [markdown]
# **Explorer: one pixel's focal loss.** Move the predicted p and the pixel's target Y (1 = the peak itself).
# The left panel is the loss of that one pixel (solid) beside plain cross-entropy (dashed); the right panel is
# the share of cross-entropy the focal loss keeps. Things to try: a peak predicted at p = 0.9 (almost nothing
# left to learn: (1 − p)² = 0.01); a pixel next to a peak (Y = 0.8) predicted at p = 0.8, which the (1 − Y)⁴
# factor all but forgives; the same p far from any person (Y = 0). Switch the loss axis to log to see how many
# orders of magnitude apart they are. (`boir_core.viz.formula_explorers.FocalLossExplorer`; every number is the
# library's `focal_loss` on a one-pixel map.)

# %%
from boir_core.viz.explorers import place
from boir_core.viz.formula_explorers import FocalLossExplorer

focal_explorer = place(FocalLossExplorer(p=0.8, target=0.8))

# %% [markdown]
# The boxes of the batch (`instance_bbox`) are not scored by the focal loss: they train the bbox head and, in
# notebook 03, the Bbox Mask Loss. How a box that reaches past the map edge is clipped is another place where the
# kit and the release differ ([Going deeper C](#going-deeper-c-box-clipping)).

# %% [markdown]
# ## 5 · Real images: COCO, CrowdPose, OCHuman
# The same loader reads the real files (a handful of fixture images). COCO's crowd regions and
# unlabelled people show up in its ignore mask; CrowdPose has 14 keypoints and no area test.

# %%
real = paths.existing(real_fixtures, "real_fixtures") if real_fixtures else paths.real_fixtures_dir()
files = {"coco": "test_coco.json", "crowdpose": "test_crowdpose.json", "ochuman": "test_ochuman.json"}
if real is not None:
    print(f"real fixtures: {real}")
    for name, fname in files.items():
        ds = KeypointDataset(real / name, name, "test", settings=SampleSettings(input_size=input_size, seed=seed),
                             files=DataFiles(ann_file=real / name / fname, image_dir=real / name))
        show_targets(ds[len(ds) - 1], get_profile(name).skeleton, f"{name} ({len(ds)} images)")
else:
    print(f"real fixtures not found at {paths.repo_root().parent / 'shared' / 'fixtures' / 'real'}; "
          "set real_fixtures (or BOIR_REAL_FIXTURES) to shared/fixtures/real")

# %% [markdown]
# ## 6 · Test-time resize (docs/inference.md#test-time-resize)
# At test time the short side becomes S_in and the long side is padded up to a multiple of 64; the
# image center maps to the canvas center. `meta["trans_inv"]` maps canvas pixels back to the original
# image, which is how predicted keypoints return to original coordinates.

# %%
test_ds = KeypointDataset(data_root, "synthcrowd", "val", train=False, settings=SampleSettings(input_size=input_size))
t = test_ds[0]
print("canvas", tuple(t["image"].shape), "meta:", {k: np.round(v, 3).tolist() for k, v in t["meta"].items()})
w, h = t["meta"]["size"]
gt = np.array([a["keypoints"] for a in test_ds.coco.loadAnns(test_ds.coco.getAnnIds(imgIds=[t["image_id"]]))],
              float).reshape(-1, 3)
on_canvas = apply_affine(gt[:, :2], eval_resize(w, h, input_size).matrix)
back = apply_affine(on_canvas, t["meta"]["trans_inv"])
print(f"round trip original -> canvas -> original: max error {np.abs(back - gt[:, :2]).max():.2e} px")
fig, ax = plt.subplots(figsize=(4, 4))
show_image(ax, t["image"], "test canvas with GT keypoints")
ax.scatter(on_canvas[gt[:, 2] > 0, 0], on_canvas[gt[:, 2] > 0, 1], s=6, c="yellow")
plt.show()


# %% [markdown]
# ## Exercises
#
# Each exercise has a worked solution in the cell below it, collapsed (click the "⋯" or the bar on its left
# to open it). Try first; the solutions end with an `assert` against an independent computation, so they
# also check the library.
#
# **Exercise 1 · Predict before you run.** A person's box is 50 × 20 output pixels (h × w). Guess its
# Gaussian radius r and σ from "about a tenth of h + w", then compute r with `gaussian_radius` and check it
# against your own implementation of the smallest of CornerNet's three roots (as the release computes it:
# r3 = (−2o(h + w) + √(4o²(h + w)² + 16·o(1 − o)·h·w)) / 2, o = 0.7, truncated).

# %% tags=["solution"] jupyter={"source_hidden": true}
h_ex, w_ex, o = 50, 20, 0.7
r_lib = int(gaussian_radius(h_ex, w_ex))
r3 = (-2 * o * (h_ex + w_ex) + np.sqrt(4 * o ** 2 * (h_ex + w_ex) ** 2 + 16 * o * (1 - o) * h_ex * w_ex)) / 2
print(f"50×20 box: r = {r_lib} (r3 = {r3:.2f} before truncation; a tenth of h + w would be {(h_ex + w_ex) / 10:.0f}),"
      f" σ = {float(gaussian_sigma(r_lib)):.2f}, drawn square {2 * r_lib + 1} px")
assert r_lib == int(r3) == 7 and abs(float(gaussian_sigma(r_lib)) - 15 / 6) < 1e-12

# %% [markdown]
# **Exercise 2 · Predict before you run.** An image holds two people with boxes; person 0 has labelled
# keypoints, person 1 has a box but *no* labelled keypoint (`num_keypoints` 0, every v = 0), as many COCO
# people do. How many training instances does `build_targets` make, and does person 1 get a center? Predict,
# then check. (Notebook 03 comes back to person 1: the Bbox Mask Loss still pushes its pixels away.)

# %% tags=["solution"] jupyter={"source_hidden": true}
from boir_core.data.targets import TargetRules, build_targets

kpts = np.zeros((2, 17, 3))
kpts[0, :, :2] = np.random.default_rng(seed).uniform(8, 24, size=(17, 2))
kpts[0, :, 2] = 2  # person 0: every keypoint labelled and visible; person 1: nothing labelled
corners = np.array([[[6, 6], [26, 6], [26, 26], [6, 26]], [[30, 8], [50, 8], [50, 40], [30, 40]]], float)
areas = np.array([80.0 ** 2, 80.0 ** 2])  # input pixels², above the 32² small-person rule
tg = build_targets(kpts, corners, areas, output_size=64, rules=TargetRules(center_jitter=False))
labelled = (kpts[..., 2] > 0).any(1) & (areas >= 32 ** 2)  # the rule, written independently
print(f"instances: {len(tg.instance_coord)}; center valid per person: {tg.center_valid.tolist()}; "
      f"the instance is person {tg.person_index.tolist()}")
assert tg.center_valid.tolist() == labelled.tolist() == [True, False]
assert len(tg.instance_bbox) == 1 and tg.person_index.tolist() == [0]

# %% [markdown]
# **Exercise 3.** The batch above concatenates the instances of its images. Recompute `instance_imgid` from
# the per-image samples alone (how many instances each has) and compare.

# %% tags=["solution"] jupyter={"source_hidden": true}
per_image = [len(train_ds[i]["instance_coord"]) for i in range(len(batch["multi_mask"]))]
expected = torch.repeat_interleave(torch.arange(len(per_image)), torch.tensor(per_image))
print("instances per image:", per_image, "-> instance_imgid", expected.tolist())
assert torch.equal(batch["instance_imgid"], expected)

# %% [markdown]
# ## Going deeper: what the release does
#
# Three details where the released code and the paper's description (or exact geometry) part ways. The kit
# does the exact thing by default and reproduces the release behind a switch
# (docs/release_vs_paper.md). Nothing later in the course depends on these sections.

# %% [markdown]
# <a id="going-deeper-a-the-flip"></a>
# ### Going deeper A · The flip: release vs. exact labels
# The input image is S_in = 4·S_out pixels wide, and mirroring it maps x_in → S_in − 1 − x_in, i.e.
# x_out → S_out − 0.25 − x_out in output coordinates. The release labels flipped samples with
# x_out → S_out − 1 − x_out: **0.75 output px (3 input px) off**. `flip_alignment="paper"` (default)
# builds the mirror into the affine so image, mask and labels agree exactly; `"release"` reproduces
# the original behaviour.

# %%
no_aug = SampleSettings(input_size=input_size, min_scale=1.0, max_scale=1.0, max_rotation=0.0, max_translate=0.0,
                        center_jitter=False, seed=seed)
plain = KeypointDataset(data_root, "synthcrowd", "train", settings=replace(no_aug, flip=0.0))[0]
fi = list(get_profile("synthcrowd").flip_index)
for mode in ("paper", "release"):
    f = KeypointDataset(data_root, "synthcrowd", "train", settings=replace(no_aug, flip=1.0, flip_alignment=mode))[0]
    # where the mirrored image puts each labelled point, in output px: S_out - 0.25 - x
    truth = output_size - 0.25 - plain["instance_keypoints"][:, fi, 0]
    err = (f["instance_keypoints"][:, :, 0] - truth)[f["instance_keypoints"][:, :, 2] > 0]
    print(f"{mode:>8s}: label − true mirrored position = {err.mean():+.2f} output px")

# %% [markdown]
# <a id="going-deeper-b-the-radius"></a>
# ### Going deeper B · Where the constants come from
# * **min_overlap = 0.7** is CornerNet's rule: pick the largest r such that a box whose corners each move
#   by up to r still has IoU ≥ 0.7 with the true box (three cases: the box shifted diagonally, shrunk, or
#   grown by r per side). The release copies CornerNet's code, whose quadratic roots are not divided by 2a,
#   so its r is **2 to 3.5 times the bound it meant**: boxes moved by that r keep IoU ≈ 0.2–0.4 (the table below
#   asserts both ranges).
# * The smallest root is the third, and r3 / (h + w) depends only on the box's aspect ratio: at most
#   **0.137** (square boxes), 0.123 at 2:1, 0.090 at 4:1 (computed below). In
#   practice min_overlap just sets a Gaussian whose radius is about a tenth of h + w.
# * **σ = (2r + 1)/6**: the drawn kernel is d = 2r + 1 pixels wide and d = 6σ covers ±3σ, so at the edge of
#   its support the Gaussian has fallen to exp(−r²/2σ²) = exp(−18r²/(2r+1)²) (→ e^−4.5 ≈ 0.011) and is cut
#   to 0 beyond it.
# Both are computed below from the kit's target code.

# %%
from boir_core.data.targets import gaussian_maps


def worst_iou(h, w, r):
    """Lowest IoU with an h×w box when its corners move by r: shifted diagonally, shrunk, grown."""
    shifted = (h - r) * (w - r) / (2 * h * w - (h - r) * (w - r))
    shrunk = max(h - 2 * r, 0) * max(w - 2 * r, 0) / (h * w)
    grown = h * w / ((h + 2 * r) * (w + 2 * r))
    return min(shifted, shrunk, grown)


def intended_radius(h, w, overlap=0.7):
    lo, hi = 0.0, min(h, w) / 2  # bisection on the monotone worst IoU
    for _ in range(60):
        lo, hi = ((lo + hi) / 2, hi) if worst_iou(h, w, (lo + hi) / 2) >= overlap else (lo, (lo + hi) / 2)
    return lo


print(" h×w    release r  IoU at r   CornerNet's intended r (IoU = 0.7)   release r / intended r")
for h, w in [(16, 8), (32, 16), (64, 32), (100, 60)]:
    r = int(gaussian_radius(h, w))
    r0 = intended_radius(h, w)
    print(f"{h:>3d}×{w:<3d}  {r:>6d}     {worst_iou(h, w, r):6.2f}     {r0:6.2f}   {r / r0:32.1f}")
    assert abs(worst_iou(h, w, r0) - 0.7) < 1e-6 and 0.2 <= worst_iou(h, w, r) < 0.5 and 2 * r0 < r < 3.5 * r0


def radius_coefficient(aspect, overlap=0.7):
    """r3 / (h + w) for h = aspect · w: the third root of the release's formula, before the int()."""
    a, o = aspect + 1, overlap
    return (np.sqrt(4 * o ** 2 * a ** 2 + 16 * o * (1 - o) * aspect) - 2 * o * a) / (2 * a)


big = 1e7  # sides large enough that the int() does not matter
print("\nh : w    r / (h + w): closed form   gaussian_radius")
for aspect in (1, 2, 4):
    lib = float(gaussian_radius(aspect * big, big)) / (big * (aspect + 1))
    print(f"{aspect} : 1   {radius_coefficient(aspect):22.4f}   {lib:15.4f}")
    assert abs(lib - radius_coefficient(aspect)) < 1e-6
assert round(radius_coefficient(1), 3) == 0.137 and round(radius_coefficient(2), 3) == 0.123
assert round(radius_coefficient(4), 3) == 0.090 and radius_coefficient(1) < 0.18
sides = np.arange(1, 161)
assert (gaussian_radius(sides[:, None], sides[None, :]) / (sides[:, None] + sides[None, :])).max() <= 0.137

r = 5
peak = gaussian_maps(np.array([[10.0, 10.0]]), np.array([True]), np.array([r]), 32)[0]
edge = float(np.exp(-r ** 2 / (2 * float(gaussian_sigma(r)) ** 2)))
print(f"r = {r}: value at the support edge {peak[10, 10 + r]:.4f} (closed form {edge:.4f}), one pixel further "
      f"{peak[10, 11 + r]:.1f}")
assert abs(peak[10, 10 + r] - edge) < 1e-6 and peak[10, 11 + r] == 0 and peak[10, 10] == 1.0


# %% [markdown]
# <a id="going-deeper-c-box-clipping"></a>
# ### Going deeper C · Box clipping: release vs. corner clipping
# The release clips x, y, w and h *separately* to [0, S_out − 1], so a box that starts left of the map
# keeps its full width. `box_clipping="paper"` (default) clips the corners and recomputes w and h.

# %%
zoom = SampleSettings(input_size=input_size, min_scale=0.75, max_scale=0.75, max_rotation=0.0, max_translate=0.0,
                      flip=0.0, seed=seed)
for mode in ("paper", "release"):
    b = KeypointDataset(data_root, "synthcrowd", "train", settings=replace(zoom, box_clipping=mode))[0]["instance_bbox"]
    over = (b[:, 0] + b[:, 2] > output_size - 1) | (b[:, 1] + b[:, 3] > output_size - 1)
    print(f"{mode:>8s}: {int(over.sum())} of {len(b)} boxes reach past the map edge")


# %% [markdown]
# ## Recap
#
# 1. BoIR is CID's single-stage pipeline (center heatmap → the backbone vector at each center → that person's
#    keypoints) plus training-only heads; its embedding head learns from boxes alone (notebook 03).
# 2. Every person with labelled keypoints (and, on COCO, big enough) becomes an *instance*: a jittered center, its own
#    K heatmaps and mask, and a box; people without labelled keypoints get no center (on COCO the ignore mask
#    hides them from the heatmap losses).
# 3. Heatmap targets are Gaussians of radius r ≈ a tenth of h + w (CornerNet's rule as the release computes it),
#    scored by the focal loss with one normaliser for center and BUK channels together.
#
# **Next**: [02 · Backbone, ASPP neck and heads](02_backbone_aspp_heads.ipynb): the network that turns an image
# into these maps.
