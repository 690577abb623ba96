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
# # 02 · Backbone, ASPP neck and heads
#
# This notebook opens up the BoIR network (docs/model.md) with `boir_core.model`:
#
# 1. the **HRNet backbone** and its four branches, concatenated into one stride-4 map F;
# 2. the **ASPP neck** and the receptive fields of its five branches;
# 3. the four **dense heads** (center, bottom-up keypoints, embedding, bbox) and their raw outputs;
# 4. the **instance keypoint head**: how the backbone vector at a person's center steers a channel
#    attention and a spatial attention, shown for two overlapping people;
# 5. the **parameter counts** of Table 5, measured live, with and without the training-only heads.
#
# By default the network is the kit's trained demo BoIR (`boir_core.paths.default_checkpoint("boir")`: the
# weights shipped in `boir_core/weights/`, trained on SynthCrowd; the output names them) on a SynthCrowd val
# image, so the heads and the attention show learned behaviour. Set `checkpoint` (and `config`) to a
# released BoIR file (COCO, K = 17) for the paper's network. `untrained=True` builds the paper's network with
# its initial weights instead: then the pictures show only the *plumbing* (shapes, where information flows),
# and the text says what an untrained network looks like. Without any trained weights (a trimmed install)
# the notebook says so and falls back to that.
#
# Terms and symbols: [glossary and notation in notebook 01](01_data_and_targets.ipynb#glossary).

# %%
from boir_core.course import show_course_map

show_course_map("02")

# %% [markdown]
# **After this notebook you can**
# - trace an image through the backbone (four branches → one stride-4 map F), the ASPP neck and the four dense heads,
#   and say which of them survive at inference;
# - explain how the instance head turns one vector f^p, read from F at a person's center, into that person's keypoint
#   heatmaps (channel and spatial attention);
# - count a network's parameters from its modules, and check Table 5 and the "50 %" claim about the neck.
#
# **Prerequisites**: [notebook 01](01_data_and_targets.ipynb) (the pipeline picture, centers in output pixels
# (y, x), stride 4); convolutions, dilation, BatchNorm and attention at the level of a first deep-learning course.

# %% tags=["parameters"]
checkpoint = None  # BoIR weights (a released file or one of ours); None: the kit's default trained BoIR
config = None  # config of those weights (e.g. coco_w32 for a released W32); None: the one saved with them
untrained = False  # True: the paper's network with its initial weights (the plumbing only, no learned behaviour)
backbone = None  # None: the config's model.backbone (untrained: hrnet_w32, the paper's; hrnet_w18_small is fastest)
inst_channels = None  # None: the config's model.inst_channels (untrained: 64, the W32 width)
input_size = None  # S_in, None: the config's data.input_size (untrained: 256; the paper uses 512); maps are S_in / 4
image_path = None  # a real image; None: a SynthCrowd val image for a SynthCrowd model, else the COCO fixture
annotations = None  # COCO keypoint JSON for the two people's centers; None: the default image's own
search_images = 8  # SynthCrowd val images searched for two overlapping people whose centers are apart
work_dir = "runs/notebooks/02"  # where a small SynthCrowd is generated when data/synthcrowd is missing
device = "cpu"
num_threads = 1  # CPU threads for PyTorch (1 is fastest on a busy shared machine; 0 keeps the default)
seed = 0

# %%
import json
import os

import cv2
import matplotlib.pyplot as plt
import numpy as np
import torch

from boir_core import paths
from boir_core.data.transforms import normalize_image
from boir_core.engine.evaluation.runner import checkpoint_config
from boir_core.model import BoIR, build_model, count_parameters, load_weights, parameter_table
from boir_core.ops import sigmoid_clamp
from boir_core.viz import figures as fg
from boir_core.viz.scenes import keypoint_center, synthcrowd_root, val_pictures
from boir_core.viz.training import shipped_description

if num_threads:
    torch.set_num_threads(num_threads)
torch.manual_seed(seed)
# %matplotlib inline

# relative paths are read from the kit's root; a path you set must exist
checkpoint = paths.existing(checkpoint, "checkpoint") if checkpoint else None
if checkpoint is None and not untrained:
    checkpoint = paths.default_checkpoint("boir")
    if checkpoint is None:
        print("no trained BoIR weights in this kit (`make demo` trains some): the untrained network stands in")
mirrors = {"model.backbone": backbone, "model.inst_channels": inst_channels, "data.input_size": input_size}
set_here = [f"{k}={v}" for k, v in mirrors.items() if v is not None]
cfg = None if untrained or checkpoint is None else checkpoint_config(checkpoint, config, set_here)
if cfg is not None:  # the trained network's own sizes
    backbone, inst_channels, input_size = cfg.model.backbone, cfg.model.inst_channels, cfg.data.input_size
    print(f"weights: {shipped_description(checkpoint) or checkpoint} ({cfg.model.arch}, {cfg.model.backbone}, "
          f"{cfg.data.dataset}, {cfg.num_keypoints} keypoints, input {input_size} px)")
else:  # untrained: the paper's network at a CPU-sized input
    backbone, inst_channels, input_size = backbone or "hrnet_w32", inst_channels or 64, input_size or 256
    print(f"untrained {backbone} (initial weights): the pictures show the plumbing, not learned behaviour")
synthcrowd_model = cfg is not None and cfg.data.dataset.startswith("synthcrowd")
fixtures = paths.real_fixtures_dir()
if image_path is None and not synthcrowd_model and fixtures is not None:
    image_path = fixtures / "coco" / "000000197388.jpg"
    annotations = annotations or fixtures / "coco" / "test_coco.json"
image_path = paths.existing(image_path, "image_path") if image_path else None
annotations = paths.existing(annotations, "annotations") if annotations else None

# %% [markdown]
# ## The input image
#
# For a model trained on SynthCrowd, a SynthCrowd val image: the first of `search_images` with two people
# whose boxes overlap but whose centers are apart (the rule of notebook 07's Figure 1,
# `boir_core.viz.figures.separated_overlapping_pair`). Otherwise a real COCO image when the fixture is
# present, or two overlapping drawn "people". The image is resized so its long side is `input_size`, padded
# to a square and ImageNet-normalised. We also need the centers of the two people (their keypoint means), in
# output-map pixels (stride 4), written `(y, x)` as `instance_coord` is.

# %%


def drawn_people(size):
    img = np.full((size, size, 3), 235, np.uint8)
    centers = []
    for cx, colour in ((0.42, (200, 60, 60)), (0.58, (60, 60, 200))):
        x, y = int(cx * size), int(0.5 * size)
        cv2.circle(img, (x, int(y - 0.28 * size)), int(0.07 * size), colour, -1)  # head
        cv2.rectangle(img, (x - int(0.08 * size), int(y - 0.2 * size)), (x + int(0.08 * size), int(y + 0.1 * size)),
                      colour, -1)
        cv2.line(img, (x, int(y + 0.1 * size)), (x - int(0.06 * size), int(y + 0.4 * size)), colour, 6)
        cv2.line(img, (x, int(y + 0.1 * size)), (x + int(0.06 * size), int(y + 0.4 * size)), colour, 6)
        centers.append((x, y))
    return img, centers


def two_overlapping_people(anns):
    """Keypoint-mean centers (original pixels) of two overlapping annotated people: the pair notebook 07's
    Figure 1 rule picks, else (no pair passes it) the two whose boxes overlap most."""
    people = [a for a in anns if a.get("num_keypoints", 0) > 0 and keypoint_center(a) is not None]
    boxes = [a["bbox"] for a in people]
    i, j, _ = fg.separated_overlapping_pair(boxes) or fg.most_overlapping_pair(boxes)
    return [keypoint_center(people[i]), keypoint_center(people[j])]


def letterbox(rgb, size):
    """``rgb`` scaled so its long side is ``size``, on a black ``size`` x ``size`` canvas; and the scale."""
    scale = size / max(rgb.shape[:2])
    out = np.zeros((size, size, 3), np.uint8)
    resized = cv2.resize(rgb, (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale)))
    out[: resized.shape[0], : resized.shape[1]] = resized
    return out, scale


if image_path is None and synthcrowd_model:
    root = synthcrowd_root(paths.resolve(work_dir), int(search_images))
    pics = val_pictures(root, int(search_images))
    pic = next((p for p in pics if fg.separated_overlapping_pair(p.boxes) is not None),
               next(p for p in pics if len(p.people) >= 2))
    canvas, scale = letterbox(pic.image, input_size)
    centers = [(x * scale, y * scale) for x, y in two_overlapping_people(pic.people)]
    source = f"SynthCrowd val {pic.name} from {root} (scaled by {scale:.3f})"
elif image_path is not None:
    rgb = cv2.cvtColor(cv2.imread(str(image_path)), cv2.COLOR_BGR2RGB)
    canvas, scale = letterbox(rgb, input_size)
    centers = [(input_size * 0.4, input_size * 0.5), (input_size * 0.6, input_size * 0.5)]
    if annotations is not None:
        coco = json.loads(annotations.read_text())
        name = os.path.basename(image_path)
        ids = [im["id"] for im in coco["images"] if im["file_name"] == name]
        anns = [a for a in coco["annotations"] if ids and a["image_id"] == ids[0]]
        if sum(a.get("num_keypoints", 0) > 0 for a in anns) >= 2:
            centers = [(x * scale, y * scale) for x, y in two_overlapping_people(anns)]
    source = f"{image_path} (scaled by {scale:.3f})"
else:
    canvas, centers = drawn_people(input_size)
    source = "drawn shapes (no real fixtures found: set image_path, or BOIR_REAL_FIXTURES to shared/fixtures/real)"

images = torch.from_numpy(normalize_image(canvas))[None].to(device)
instance_coord = torch.tensor([[int(y / 4), int(x / 4)] for x, y in centers], device=device)  # (y, x)
instance_imgid = torch.zeros(len(centers), dtype=torch.long, device=device)
print("image:", source, "| input", tuple(images.shape), "| centers (y, x) at stride 4:", instance_coord.tolist())
plt.figure(figsize=(4, 4))
plt.imshow(canvas)
for (x, y), c in zip(centers, ("r", "b")):
    plt.plot(x, y, "o", color=c, ms=8, mec="w")
plt.title("input and the two people's centers")
plt.axis("off")
plt.show()

# %% [markdown]
# ## Build the network
#
# `BoIR(..., train_heads=True)` builds every head; the inference model (`train_heads=False`) keeps only
# backbone, neck, center head and instance head. With weights, the network is built from their config
# (`build_model`, which sizes the neck and heads as the config says) and runs in eval mode. The release
# initialises every conv with N(0, 0.001²) (docs/model.md#backbone-hrnet, docs/model.md#task-heads). With such
# tiny weights an *untrained* network in eval mode passes almost nothing through its BatchNorms, so the
# untrained network runs in training mode (batch statistics re-scale every layer), purely to get visible
# pictures.

# %%
if cfg is not None:
    model = build_model(cfg, train=True, initialise=False).to(device)
    report = load_weights(model, checkpoint, allow_missing_aux_heads=True)
    print(report.summary())
    model.eval()
else:
    model = BoIR(17, backbone, inst_channels=inst_channels, train_heads=True).to(device)
    model.train()
print(f"{backbone}: branch channels {model.backbone.branch_channels} -> C_b = {model.backbone.out_channels}")

# %% [markdown]
# ## 1 · The backbone: four branches, one map
#
# HRNet keeps four resolutions in parallel (strides 4, 8, 16, 32, widths W, 2W, 4W, 8W) and repeatedly
# exchanges information between them. BoIR upsamples the three coarse branches bilinearly to stride 4 and
# concatenates everything into F. Below, each branch's mean absolute activation.

# %%
with torch.no_grad():
    branches = model.backbone.branches(images)
    feats = model.features(images)
fig, axes = plt.subplots(1, 5, figsize=(17, 3.4))
for ax, b, s in zip(axes, branches, (4, 8, 16, 32)):
    ax.imshow(b[0].abs().mean(0).cpu(), cmap="magma")
    ax.set_title(f"branch stride {s}: {tuple(b.shape[1:])}")
    ax.axis("off")
axes[4].imshow(feats[0].abs().mean(0).cpu(), cmap="magma")
axes[4].set_title(f"F = concat: {tuple(feats.shape[1:])}")
axes[4].axis("off")
plt.show()

# %% [markdown]
# ## 2 · The ASPP neck and its receptive fields
#
# Five parallel branches read F: a 1×1 conv, three 3×3 convs with dilations 12, 24 and 36 in the paper's
# network (the demo network's are smaller, for its smaller map: the cell prints this network's), and a global
# average pool. A dilated 3×3 conv samples 9 points spaced `r` map pixels apart, i.e. `4r` input pixels:
# one layer sees a (2r+1)-pixel window of the map. The picture shows the sample points of each branch
# around the first person's center (the pooled branch sees the whole image).

# %%
aspp = model.multihead.neck[0]
print("single-layer receptive field of each branch (map px, 0 = global):", aspp.receptive_fields())
cy, cx = [4 * v for v in instance_coord[0].tolist()]
plt.figure(figsize=(5, 5))
plt.imshow(canvas)
for r, colour in zip(aspp.atrous_rates, ("yellow", "orange", "red")):
    pts = [(cx + 4 * r * dx, cy + 4 * r * dy) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    plt.scatter(*zip(*pts), s=30, color=colour, label=f"dilation {r}: {2 * r + 1} map px = {4 * (2 * r + 1)} input px")
    plt.gca().add_patch(plt.Rectangle((cx - 4 * r, cy - 4 * r), 8 * r, 8 * r, fill=False, ec=colour))
plt.xlim(0, input_size)
plt.ylim(input_size, 0)
plt.legend(loc="lower left", fontsize=7)
plt.title("ASPP sample points (points outside the image read zero padding)")
plt.axis("off")
plt.show()

# %% [markdown]
# ### Two claims about the neck, checked
# **"This design reduces the number of trainable parameters of ASPP by 50 %"** (paper §3.3). The paper
# compares with its ASPP squeezed from 256 to 128 channels per branch; the released neck is DeepLabV3's
# ASPP (a 1×1, three dilated 3×3 and an image-pool branch, then a 1×1 projection), not DeepLab v2's
# "ASPPv2" the paper cites, so we count against the same module with 256-channel branches. Per branch a
# k×k conv from C_b channels costs k²·C_b·m weights plus 2m BatchNorm parameters; the projection
# 5m·256 + 2·256. The count below comes from the modules themselves and from that closed form.
#
# **The dilations 12 / 24 / 36 are sized for a 128² map** (512 px input). A dilated 3×3 conv has one center
# tap and 8 taps r pixels away; a tap that falls outside the map reads zero padding. Per axis, the share
# of pixels whose +r (or −r) neighbour is inside an S-pixel map is (S − r)/S, so on average
# (4·(S − r)/S + 4·((S − r)/S)²)/8 of the off-center taps see the image. At this notebook's smaller map the
# dilation-36 branch mostly reads padding, i.e. it degenerates towards a 1×1 conv; the demo config scales
# the rates down (3, 6, 9 at 32²) for that reason.

# %%
from boir_core.model.neck import ASPP


def n_params(module):
    return sum(p.numel() for p in module.parameters())


def aspp_closed_form(c_b, out=256, m=128, n_atrous=3):
    branches = (1 + 9 * n_atrous + 1) * c_b * m + 2 * m * (n_atrous + 2)
    return branches + (n_atrous + 2) * m * out + 2 * out


with torch.device("meta"):
    counts = {m: n_params(ASPP(480, 256, m)) for m in (128, 256)}
for m, n in counts.items():
    assert n == aspp_closed_form(480, m=m)
print(f"ASPP on HRNet-W32 (C_b = 480): {counts[128]:,} parameters with 128-channel branches, {counts[256]:,} "
      f"with 256: {100 * (1 - counts[128] / counts[256]):.1f} % fewer")
assert abs(counts[128] / counts[256] - 0.5) < 0.001  # the paper's "50 %" holds for this comparison


def tap_coverage(size, r):
    inside = max(size - r, 0) / size
    return (4 * inside + 4 * inside ** 2) / 8


s_map = images.shape[-1] // 4
print("\nshare of the 8 off-center taps that read the image (not padding), averaged over the map:")
print("dilation   128² map (512 px)   " + f"{s_map}² map (this notebook)")
for r in aspp.atrous_rates:
    ones = torch.ones(1, 1, s_map, s_map)
    taps = torch.nn.functional.conv2d(ones, torch.ones(1, 1, 3, 3), padding=r, dilation=r)  # taps inside, per pixel
    measured = float((taps - 1).mean() / 8)
    assert abs(measured - tap_coverage(s_map, r)) < 1e-6
    print(f"{r:>8d}   {tap_coverage(128, r):17.2f}   {measured:17.2f}")

# %% [markdown]
# ## 3 · The dense heads
#
# Each head is a BasicBlock (256→128 in the paper's network, 1×1 conv shortcut) and a 3×3 output conv,
# producing raw values: center logits (1 channel), BUK logits (K), embedding (D = 128 in the paper) and bbox
# distances (l, t, r, b); the cell prints this network's shapes. Only the center head is used at inference.
# Trained, the center map should peak at the people's centers and the bbox width follow their sizes; the cell
# prints the center probability at the two people's centers against the map's median, and the box width
# predicted there. Untrained (`untrained=True`), the center and BUK heads sit at the focal prior
# σ(−4.595) = 0.01 and the bbox head outputs exactly 1.0 everywhere (its output conv starts at zero).

# %%
with torch.no_grad():
    out = model.multihead(feats)
emb = out["emb"][0].flatten(1).T.cpu()
emb = emb - emb.mean(0)
_, _, v = torch.pca_lowrank(emb, q=3)
emb_rgb = (emb @ v[:, :3]).reshape(*out["emb"].shape[2:], 3)
emb_rgb = (emb_rgb - emb_rgb.amin((0, 1))) / (emb_rgb.amax((0, 1)) - emb_rgb.amin((0, 1)) + 1e-12)
panels = [
    ("center: sigmoid", sigmoid_clamp(out["center"])[0, 0]),
    ("BUK: max over K of sigmoid", sigmoid_clamp(out["buk"])[0].amax(0)),
    ("emb: first 3 principal components", emb_rgb),
    ("bbox: width l + r", (out["bbox"][0, 0] + out["bbox"][0, 2])),
]
fig, axes = plt.subplots(1, 4, figsize=(16, 3.8))
for ax, (title, img) in zip(axes, panels):
    im = ax.imshow(img.cpu())
    if img.dim() == 2:
        fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set_title(title)
    ax.axis("off")
plt.show()
print({k: tuple(v.shape) for k, v in out.items()})
center_p = sigmoid_clamp(out["center"])[0, 0]
for i, (y, x) in enumerate(instance_coord.tolist()):
    width = float(out["bbox"][0, 0, y, x] + out["bbox"][0, 2, y, x])
    print(f"person {i} at (y, x) = ({y}, {x}): center probability {float(center_p[y, x]):.3f} (map median "
          f"{float(center_p.median()):.3f}, max {float(center_p.max()):.3f}); predicted box width l + r = "
          f"{width:.1f} map px")

# %% [markdown]
# ### The shortcut is 1×1, not 3×3
# The appendix says "all convolution layers in the auxiliary task head have a 3×3 kernel size". The
# released code (and the released checkpoints: `multihead.center_head.head.0.downsample.conv.weight` is
# [128, 256, 1, 1]) uses a **1×1 projection shortcut** in each head's BasicBlock, because the block changes
# 256 to 128 channels. The kit follows the release (otherwise the official weights would not load); the
# kernel sizes below are read from the built heads.

# %%
for name in ("center_head", "buk_head", "emb_head", "bbox_head"):
    head = getattr(model.multihead, name)
    kernels = {n: tuple(m.kernel_size) for n, m in head.named_modules() if isinstance(m, torch.nn.Conv2d)}
    print(f"{name:12s}", kernels)
    assert sorted(kernels.values()).count((1, 1)) == 1 and all(k in ((1, 1), (3, 3)) for k in kernels.values())

# %% [markdown]
# ## 4 · The instance keypoint head: channel and spatial attention
#
# For each person, the backbone vector at the center, f^p = F[:, y, x], goes through two Linear + LayerNorm layers.
# (We write f^p, not p: in the paper and in notebook 03, p is the *embedding* at the center, a different vector from a
# different head. CID's instance head is conditioned on f^p, and BoIR keeps that; BoIR's loss shapes F through the
# embedding head during training.) The first gives a **channel attention** a (one weight per channel of G =
# conv1×1(F)); the second is dotted with G at every pixel and stacked with relative-coordinate maps ((x_i − x)/32,
# (y_i − y)/32) before a 5×5 conv and InstanceNorm: the **spatial attention** m. For two overlapping people the two
# spatial maps should light up different bodies once trained; untrained, m is mostly a smooth ramp from the
# relative-coordinate maps plus image texture, almost the same for both people. The cell measures how different the
# two people's maps are (their correlation) and where each person's keypoint heatmaps peak: near its own center or the
# other's.

# %%
with torch.no_grad():
    att = model.kpt_head.attention_maps(feats, instance_coord, instance_imgid)
    inst = sigmoid_clamp(model.instance_heatmaps(feats, instance_coord, instance_imgid))
fig, axes = plt.subplots(1, 5, figsize=(19, 3.6))
for i, c in enumerate(("r", "b")):
    axes[0].bar(np.arange(att["channel"].shape[1]) + 0.4 * i, att["channel"][i].cpu(), width=0.4, color=c,
                label=f"person {i}")
    axes[1 + i].imshow(att["spatial"][i, 0].cpu(), cmap="coolwarm")
    axes[1 + i].plot(instance_coord[i, 1].item(), instance_coord[i, 0].item(), "k*", ms=12)
    axes[1 + i].set_title(f"spatial attention m, person {i}")
    axes[3 + i].imshow(inst[i].amax(0).cpu(), cmap="magma")
    axes[3 + i].set_title(f"heatmaps (max over K), person {i}")
axes[0].set_title("channel attention a")
axes[0].legend()
for ax in axes[1:]:
    ax.axis("off")
plt.show()
cos = torch.nn.functional.cosine_similarity(att["channel"][0], att["channel"][1], dim=0)
print(f"cosine similarity of the two people's channel attention: {cos:.3f}")
corr = np.corrcoef(att["spatial"][0, 0].flatten().cpu(), att["spatial"][1, 0].flatten().cpu())[0, 1]
print(f"correlation of the two people's spatial attention maps: {corr:.3f}")
yx = instance_coord.cpu().float()
for i in range(2):
    peaks = [divmod(int(inst[i, k].argmax()), inst.shape[-1]) for k in range(inst.shape[1])]  # (y, x) per keypoint
    peaks = torch.tensor(peaks, dtype=torch.float32)
    d_own, d_other = ((peaks - yx[i]).norm(dim=1).median(), (peaks - yx[1 - i]).norm(dim=1).median())
    print(f"person {i}: its {inst.shape[1]} keypoint heatmaps peak a median {d_own:.1f} map px from its own center, "
          f"{d_other:.1f} px from the other person's")

# %% [markdown]
# ### The /32 of the relative coordinates
# The spatial attention's 5×5 conv reads three maps: the dot product s and the offsets (x_i − x)/32 and
# (y_i − y)/32 from the person's center. Dividing by the constant 32 (CID's choice) keeps the offsets at a
# few units — ±4 on a 128² map (512 px input), ±5 at 160² (W48) — so they sit on a scale comparable to s
# rather than ±127. It does not adapt to the map size: on a smaller map the same offset in *pixels* gives
# the same value, so the ramps are simply shorter.

# %%
from boir_core.model.instance_head import RELATIVE_COORD_SCALE, relative_coordinate_maps

rel = relative_coordinate_maps(instance_coord, feats.shape[-2], feats.shape[-1])
y0, x0 = instance_coord[0].tolist()
xs = torch.arange(feats.shape[-1], dtype=torch.float32)
assert RELATIVE_COORD_SCALE == 32 and torch.allclose(rel[0, 0, 0], (x0 - xs) / 32)
print(f"this map ({feats.shape[-1]}²): x-offset channel of person 0 spans "
      f"{rel[0, 0].min():.2f} … {rel[0, 0].max():.2f}; on a 128² map the range can reach ±{127 / 32:.2f}")

# %% [markdown]
# ## 5 · Table 5: parameter counts, measured
#
# `parameter_table` builds every network on PyTorch's `meta` device (no memory, no weights) and counts
# parameters per part. Table 5 of the paper counts the *inference* model: backbone + neck + center head +
# instance head. The training-only heads (BUK, emb, bbox) add the difference between the "training" and the
# "inference" rows; the cell computes it.

# %%
from boir_core.paper import TABLES

paper = {("BoIR (inference)" if t.method == "BoIR" else t.method, t.backbone.lower().replace("-", "_")):
         t.values["params_M"] for t in TABLES["5"].rows if t.method in ("BoIR", "CID")}  # the paper's Table 5, in M
rows = parameter_table(("hrnet_w32", "hrnet_w48"))
parts = ("backbone", "neck", "center_head", "buk_head", "emb_head", "bbox_head", "heatmap_head", "kpt_head")
header = (f"{'model':18s} {'backbone':10s}" + "".join(f"{p:>13s}" for p in parts)
          + f"{'inference':>13s}{'total':>13s}{'paper (M)':>10s}")
print(header)
for r in rows:
    cells = "".join(f"{r.get(p, 0):>13,d}" for p in parts)
    ref = paper.get((r["model"], r["backbone_name"]), "")
    print(f"{r['model']:18s} {r['backbone_name']:10s}{cells}{r['inference']:>13,d}{r['total']:>13,d}{ref!s:>10s}")
print("\nthis notebook's model:", {k: f"{v:,d}" for k, v in count_parameters(model).items()})
by_name = {(r["model"], r["backbone_name"]): r for r in rows}
for bb in ("hrnet_w32", "hrnet_w48"):
    train_row, inf_row = by_name[("BoIR (training)", bb)], by_name[("BoIR (inference)", bb)]
    extra = train_row["total"] - inf_row["inference"]
    assert extra == sum(train_row[h] for h in ("buk_head", "emb_head", "bbox_head"))
    assert abs(inf_row["inference"] / 1e6 - paper[("BoIR (inference)", bb)]) < 0.05  # Table 5, to its rounding
    print(f"{bb}: the training-only heads add {extra / 1e6:.2f} M parameters "
          f"({100 * extra / inf_row['inference']:.1f} % of the inference model), dropped at inference")


# %% [markdown]
# ## Exercises
#
# Solutions are in the collapsed cells (click the bar on their left to open them); each ends with an `assert`.
#
# **Exercise 1 · Predict before you run.** In the paper's network each dense head is a BasicBlock from the neck's
# 256 channels to 128 (two 3×3 convs without bias, each followed by a BatchNorm with a weight and a bias, and a 1×1
# projection shortcut with its BatchNorm) and a 3×3 output conv with bias. How many parameters does the *center*
# head have (one output channel)? Write the count as a formula, evaluate it, then compare with the module.

# %% tags=["solution"] jupyter={"source_hidden": true}
def head_parameters(c_in=256, c_mid=128, c_out=1):
    block = 9 * c_in * c_mid + 2 * c_mid + 9 * c_mid * c_mid + 2 * c_mid  # conv1 + BN, conv2 + BN
    shortcut = c_in * c_mid + 2 * c_mid  # 1×1 projection + BN
    return block + shortcut + 9 * c_mid * c_out + c_out  # output conv with bias


from boir_core.model import MultiHead

with torch.device("meta"):  # the paper's W32 neck and heads (C_b = 480), counted without allocating them
    paper_heads = MultiHead(480, 17, train_heads=True)
for name, c_out in (("center_head", 1), ("buk_head", 17), ("bbox_head", 4), ("emb_head", 128)):
    counted = n_params(getattr(paper_heads, name))
    print(f"{name:12s}: formula {head_parameters(c_out=c_out):,d}, module {counted:,d}")
    assert counted == head_parameters(c_out=c_out)
assert head_parameters(c_out=1) == by_name[("BoIR (inference)", "hrnet_w32")]["center_head"]

# %% [markdown]
# **Exercise 2 · Predict before you run.** A 3×3 conv with dilation 24 on the 128² map of a 512-pixel input: how
# wide a window of the *input image* does one output pixel see? Predict, then measure it: convolve an image that is
# zero except for one pixel and see how far the response spreads.

# %% tags=["solution"] jupyter={"source_hidden": true}
delta = torch.zeros(1, 1, 128, 128)
delta[0, 0, 64, 64] = 1.0
response = torch.nn.functional.conv2d(delta, torch.ones(1, 1, 3, 3), padding=24, dilation=24)[0, 0]
cols = torch.nonzero(response.sum(0)).flatten()
window = int(cols.max() - cols.min()) + 1  # map pixels from the first to the last tap
print(f"dilation 24: taps span {window} map px = {4 * window} input px (the formula: 2r + 1 = {2 * 24 + 1} map px)")
assert window == 2 * 24 + 1 and 4 * window == 196

# %% [markdown]
# ## Recap
#
# 1. HRNet's four branches are upsampled and concatenated into one stride-4 map F (C_b channels); an ASPP neck with
#    dilated convs and a global pool feeds four dense heads, of which only the center head is kept at inference.
# 2. The instance head reads one vector f^p = F[:, y, x] per detected center and turns it into a channel attention
#    and a spatial attention over F: the same map F yields a different person for each center.
# 3. Parameter counts come from the modules: Table 5's inference counts match, and the training-only heads are
#    a few percent extra that cost nothing at inference.
#
# **Next**: [03 · The Bbox Mask Loss](03_bbox_mask_loss.ipynb): how boxes alone train the embedding head.
