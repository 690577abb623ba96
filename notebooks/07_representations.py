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
# # 07 · What the representations look like (Figures 1, 3–6)
#
# BoIR's claim is about the *backbone features*: box supervision (Bbox Mask Loss, bbox head) makes the
# feature at a person's center similar to the rest of that person and dissimilar to everyone else. The
# paper shows this three ways, all reproduced here for any pair of checkpoints, BoIR beside CID:
#
# * **Figure 1 (b–f)**: the similarity of the feature at a box center to the whole feature map, for two
#   overlapping people A and B;
# * **Figure 3**: a t-SNE of every pixel's backbone feature to 3 dimensions (250 iterations), shown as RGB —
#   people with distinct, consistent colours are disentangled;
# * **Figures 4–6**: predictions, center heatmap, t-SNE and the similarity of the top-1 instance parameter
#   (L2 distance + Gaussian kernel), and failure cases.
#
# By default the models are the kit's default trained weights (`boir_core.paths.default_checkpoint`: the
# demo BoIR and CID shipped inside the package, `boir_core/weights/`, trained alike for 3,000 steps on
# SynthCrowd), else a tiny BoIR and CID trained for a few iterations. Such models have not
# learnt much: the maps show the method, not the paper's result. Pass released checkpoints
# (`boir_config="coco_w32"`, `cid_config="cid_coco_w32"`) and real `images` to see the paper's pictures.

# %% tags=["parameters"]
boir_config = None  # config of the BoIR weights (e.g. coco_w32 for the released W32); None: the one saved with them
boir_checkpoint = None  # None: the default weights (make demo's); a tiny BoIR is trained briefly when there are none
cid_config = None  # config of the CID weights (e.g. cid_coco_w32); None: the one saved with them
cid_checkpoint = None  # e.g. checkpoints/cid_coco_w32.pth; None: the default CID weights, else a tiny CID
images = []  # real image paths; empty: SynthCrowd val images
data_root = None  # SynthCrowd; None: data/synthcrowd if generated, else a small set under work_dir
search_images = 8  # SynthCrowd val images searched for the most overlapping pair and for a failure case
train_iters = 6  # iterations of the fallback tiny models (0: random weights)
work_dir = "runs/notebooks/07"  # where fallback models are trained
tsne_points = 1024  # pixels embedded by t-SNE (a regular grid; colours upsampled to the map)
tsne_iterations = 250  # as in the paper
bandwidth = "median"  # Gaussian kernel width h in exp(-d²/h): "median" of d² over the map, or a number
device = "cpu"
backend = None  # None: each config's test.backend (torch); onnxruntime / openvino decode the poses with the ONNX graphs
num_threads = 1  # torch CPU threads (0: torch's default)
annotations = ""  # COCO-format JSON with the ground truth of `images` (Figure 1 then pairs its most overlapping people)

# %%
import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from boir_core import paths
from boir_core.config import load_config
from boir_core.data import get_profile
from boir_core.data.annotations import read_image
from boir_core.engine.backends import make_runner
from boir_core.engine.decode import decode, decode_kwargs_from_config
from boir_core.engine.runner import checkpoint_config, load_inference_model
from boir_core.viz import figures as fg

# %matplotlib inline

if int(num_threads) > 0:
    torch.set_num_threads(int(num_threads))


def show(fig):
    """Display a figure whatever the matplotlib backend (inline or Agg under papermill), then close it."""
    import io

    from IPython.display import Image, display

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    display(Image(buf.getvalue()))

# %% [markdown]
# ## CID, the baseline
# **CID** (*Contextual Instance Decoupling*, Wang & Zhang, CVPR 2022) is the single-stage method BoIR is built
# on. It predicts a center heatmap (one 1×1 conv on the backbone map F, together with the keypoint heatmaps:
# its "IIA" module), reads the backbone vector at each center and decodes that person's keypoints from F
# with channel and spatial attention conditioned on it ("GFD", the instance head of notebook 02). Its only
# instance-embedding loss is InfoNCE on those center vectors, so the supervision is **sparse**: one vector
# per person. BoIR keeps the instance head and replaces the rest: an ASPP neck with center, bottom-up
# keypoint, box and embedding heads, and the Bbox Mask Loss on a separate embedding map, which supervises
# every pixel (notebook 03). Both networks expose the same backbone map F, which is what this notebook
# compares. (Terms: [glossary in notebook 01](01_data_and_targets.ipynb#glossary).)

# %% [markdown]
# ## Two models: BoIR and CID (guarded: load if present, else train a tiny one briefly)

# %%
from boir_core.data.synthetic import ensure_synthcrowd

# relative paths are read from the kit's root (the kernel may start in notebooks/); a path you set must exist
work_dir = paths.resolve(work_dir)
images = [paths.existing(p, "image") for p in images]
boir_checkpoint = (paths.existing(boir_checkpoint, "boir_checkpoint") if boir_checkpoint
                   else paths.default_checkpoint("boir"))
cid_checkpoint = paths.existing(cid_checkpoint, "cid_checkpoint") if cid_checkpoint else paths.default_checkpoint("cid")
if data_root:
    data_root = paths.existing(data_root, "data_root")
elif (paths.resolve("data/synthcrowd") / "annotations" / "person_keypoints_val.json").is_file():
    data_root = paths.resolve("data/synthcrowd")
else:  # no SynthCrowd generated yet: a small set of our own (never overwrite someone's full set)
    data_root = work_dir / "synthcrowd"
    ensure_synthcrowd(data_root, num_train=16, num_val=max(int(search_images), 1))
print(f"SynthCrowd: {data_root}")


def get_model(arch, config, checkpoint):
    """(cfg, model, source) for ``checkpoint`` with ``config``; a tiny model trained ``train_iters`` iterations
    when there is no checkpoint (said in the output)."""
    chosen = [f"train.device={device}"] + ([f"test.backend={backend}"] if backend else [])
    if checkpoint is not None:
        cfg = checkpoint_config(checkpoint, config, chosen)
        return cfg, load_inference_model(cfg, checkpoint, device)[0], f"{checkpoint}"
    print(f"no trained {arch.upper()} weights (`make demo` trains a BoIR into {paths.resolve(paths.DEMO_WEIGHTS)}): "
          f"a tiny {arch.upper()} trained for {train_iters} iterations stands in")
    ov = [f"data.root={data_root}", *chosen, "train.epochs=1",
          f"train.max_iters_per_epoch={max(int(train_iters), 1)}", "train.log_every=1000", f"name={arch}_tiny"]
    if arch == "cid":
        ov += ["model.arch=cid", "model.bbox_head=false", "loss.bbox_mask=false"]
    cfg = load_config("tiny", ov)
    if int(train_iters) <= 0:
        return cfg, load_inference_model(cfg, None, device)[0], "random weights"
    from boir_core.engine.train import train

    weights = train(cfg, work_dir / f"{arch}_tiny_it{train_iters}", resume="or-restart",
                    progress=False).final_weights
    return cfg, load_inference_model(cfg, weights, device)[0], f"tiny, {train_iters} iterations"


models, runners = {}, {}
for name, arch, config, ckpt in (("CID", "cid", cid_config, cid_checkpoint),
                                 ("BoIR", "boir", boir_config, boir_checkpoint)):
    cfg, model, source = get_model(arch, config, ckpt)
    models[name] = (cfg, model)
    runners[name] = make_runner(cfg.test.backend, model)  # decodes the poses; the maps below read the model
    print(f"{name}: {cfg.model.arch} {cfg.model.backbone}, input {cfg.data.input_size} px, {cfg.num_keypoints} "
          f"keypoints ({source}); poses through test.backend={cfg.test.backend} ({runners[name].variant})")
names = list(models)
input_size = min(c.data.input_size for c, _ in models.values())
# each model decodes and draws with its own data set's keypoints (flip index, OKS sigmas, skeleton)
profiles = {name: get_profile(cfg.data.dataset) for name, (cfg, _) in models.items()}
for name, (cfg, _) in models.items():
    assert profiles[name].num_keypoints == cfg.num_keypoints, (name, cfg.data.dataset)
    print(f"{name}: profile {profiles[name].name} ({profiles[name].num_keypoints} keypoints)")
prof = profiles["BoIR"]

# %% [markdown]
# ## Images
# SynthCrowd val images by default (their boxes are known); otherwise your `images`.

# %%
if images:
    truth = {}
    if annotations:  # ground-truth boxes of the given images, matched by file name
        gt = json.loads(Path(annotations).read_text())
        names_by_id = {im["id"]: Path(im["file_name"]).name for im in gt["images"]}
        for a in gt["annotations"]:
            if not a.get("iscrowd", 0) and a.get("num_keypoints", 1) > 0:
                truth.setdefault(names_by_id.get(a["image_id"]), []).append(a["bbox"])
    pictures = [(Path(p).name, read_image(p), {"boxes": truth[Path(p).name], "count": len(truth[Path(p).name])}
                 if Path(p).name in truth else None) for p in images]
else:
    ann = json.loads((Path(data_root) / "annotations" / "person_keypoints_val.json").read_text())
    by_image = {}
    for a in ann["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    pictures = []
    for im in ann["images"][: int(search_images)]:
        people = by_image.get(im["id"], [])
        pictures.append((im["file_name"], read_image(data_root / "images" / "val" / im["file_name"]),
                         {"boxes": [a["bbox"] for a in people], "count": len(people)}))
print(f"{len(pictures)} images")

_cache = {}


def analyse(index, name):
    """Decode picture ``index`` with model ``name``: canvas, poses (canvas pixels), maps, top-1 center."""
    key = (index, name)
    if key in _cache:
        return _cache[key]
    cfg, model = models[name]
    _, image, _ = pictures[index]
    prep = fg.prepare_image(image, input_size)
    kwargs = decode_kwargs_from_config(cfg.test, profiles[name].flip_index, profiles[name].sigmas)
    res = decode(runners[name], prep["image"], prep["meta"], return_intermediates=True, **kwargs)
    maps = fg.model_maps(model, prep["image"])
    peaks = res.intermediates["peaks_yx"]
    top = tuple(int(v) for v in peaks[0]) if len(peaks) else None
    out = {"prep": prep, "poses": fg.to_canvas(res.poses, prep["matrix"]), "features": maps["features"],
           "center": maps["center"], "top_yx": top}
    _cache[key] = out
    return out


def tsne_of(index, name):
    a = analyse(index, name)
    if "tsne" not in a:
        h, w = a["prep"]["canvas"].shape[:2]
        a["tsne"] = fg.tsne_rgb(a["features"], max_points=tsne_points, n_iter=tsne_iterations, out_size=(h, w))
    return a["tsne"]


# %% [markdown]
# ## Figure 1 (b–f): similarity from the centers of two overlapping boxes
# We pick the pair of ground-truth people whose boxes overlap most (SynthCrowd, or `images` with
# `annotations`; without ground truth, the most overlapping pair of confident BoIR predictions, and we say
# so). The feature at each box center (the paper's
# "center feature", the instance parameter p) is compared with every pixel's feature by
# exp(−‖f − p‖² / h). A disentangled representation lights up its own person and stays dark on the other.

# %%
pairs = [(i, fg.most_overlapping_pair(info["boxes"])) for i, (_, _, info) in enumerate(pictures) if info is not None]
pairs = [(i, p) for i, p in pairs if p is not None]
if pairs:  # ground truth: the most overlapping pair over all images
    fig1_index, (ia, ib, iou) = max(pairs, key=lambda t: t[1][2])
    boxes_orig = [pictures[fig1_index][2]["boxes"][ia], pictures[fig1_index][2]["boxes"][ib]]
    all_boxes = pictures[fig1_index][2]["boxes"]
    assert iou == max(fg.box_iou(a, b) for k, a in enumerate(all_boxes) for b in all_boxes[k + 1:])
    print(f"image {pictures[fig1_index][0]}: ground-truth people {ia} and {ib}, box IoU {iou:.2f} (the largest)")
else:  # no ground truth: the most overlapping pair of confident BoIR predictions, boxes from their keypoints
    fig1_index = 0
    inv = np.linalg.inv(np.vstack([analyse(0, "BoIR")["prep"]["matrix"], [0, 0, 1]]))[:2]
    predicted = []
    for p in [p for p in analyse(0, "BoIR")["poses"] if p["score"] >= 0.1]:
        kp = np.asarray(p["keypoints"]).reshape(-1, 3)[:, :2] @ inv[:, :2].T + inv[:, 2]
        predicted.append([*kp.min(0), *(kp.max(0) - kp.min(0))])
    best = fg.most_overlapping_pair(predicted)
    boxes_orig = [predicted[best[0]], predicted[best[1]]] if best else []
    print("no ground truth for these images (pass `annotations`): using the most overlapping pair of confident "
          "BoIR predictions" + (f", box IoU {best[2]:.2f}" if best else ""))
if len(boxes_orig) == 2:
    canvas = analyse(fig1_index, "BoIR")["prep"]["canvas"]
    boxes = fg.boxes_to_canvas(boxes_orig, analyse(fig1_index, "BoIR")["prep"]["matrix"])
    sims = {}
    for name in names:
        feats = analyse(fig1_index, name)["features"]
        sims[name] = [fg.similarity_from_point(feats, fg.box_center(b, 0.25), bandwidth) for b in boxes]
    show(fg.similarity_figure(canvas, boxes, sims))
    for name in names:  # how much of A's similarity mass falls inside B's box, and vice versa
        inside = []
        for m, other in zip(sims[name], boxes[::-1]):
            x, y, w, h = (np.array(other) / 4).round().astype(int)
            inside.append(m[max(y, 0):y + h, max(x, 0):x + w].mean())
        print(f"{name}: mean similarity of A's center inside B's box {inside[0]:.2f}, "
              f"of B's inside A's {inside[1]:.2f}")
else:
    print("fewer than two people found: no Figure 1 panel")

# %% [markdown]
# **Explorer**: pick any query pixel (row / column of the stride-4 map) and compare BoIR's and CID's
# similarity maps side by side, on the same image.

# %%
from boir_core.viz.explorers import SimilarityPairExplorer, place

pair_explorer = place(SimilarityPairExplorer(analyse(fig1_index, "BoIR")["prep"]["canvas"],
                                             {name: analyse(fig1_index, name)["features"] for name in ("BoIR", "CID")}))

# %% [markdown]
# ## Figure 3: t-SNE of the backbone features as RGB
# Every pixel's feature vector (C channels at stride 4) is embedded in 3-D by t-SNE (250 iterations), each
# axis normalised to [0, 1] and read as R, G, B. Pixels are subsampled on a grid (`tsne_points`) and the
# colours upsampled, so this runs on a CPU.

# %%
fig3_images = sorted({0, fig1_index})
fig, axes = plt.subplots(len(fig3_images), 1 + len(names), figsize=(4 * (1 + len(names)), 3.6 * len(fig3_images)),
                         squeeze=False)
for r, idx in enumerate(fig3_images):
    axes[r, 0].imshow(analyse(idx, names[0])["prep"]["canvas"])
    axes[r, 0].set_title(pictures[idx][0])
    for c, name in enumerate(names, start=1):
        axes[r, c].imshow(tsne_of(idx, name))
        axes[r, c].set_title(f"{name}: t-SNE (3-D as RGB)")
for ax in axes.flat:
    ax.axis("off")
fig.tight_layout()
show(fig)

# %% [markdown]
# ### 250 iterations is only t-SNE's early-exaggeration phase
# scikit-learn's t-SNE (and the reference implementation) first runs 250 iterations with the affinities P
# multiplied by 12 ("early exaggeration", momentum 0.5), which lets clusters form and move apart; only then
# does it minimise the actual KL divergence. Stopped at 250 — the paper's setting, reproduced above — the
# embedding has not started the real optimisation, and scikit-learn reports no KL divergence for it.
# Beside it, the same pixels run to 1000 iterations. (On 256 pixels, to stay cheap on a CPU;
# `trustworthiness` measures how many of each pixel's 5 nearest neighbours in feature space stay neighbours
# in the embedding: compare the two runs' values.)

# %%
exaggeration = fg.tsne_exaggeration_iterations()
print(f"scikit-learn: {exaggeration} early-exaggeration iterations; this notebook (and the paper) run "
      f"{tsne_iterations}" + (": exaggeration only" if int(tsne_iterations) <= exaggeration else ""))
side_points = 256
a = analyse(fig1_index, "BoIR")
h, w = a["prep"]["canvas"].shape[:2]
runs = {}
for n_it in (int(tsne_iterations), 1000):
    info = {}
    runs[n_it] = (fg.tsne_rgb(a["features"], max_points=side_points, n_iter=n_it, out_size=(h, w), info=info), info)
    kl = "none reported" if info["kl_divergence"] is None else f"{info['kl_divergence']:.3f}"
    print(f"{n_it:5d} iterations: ran {info['n_iter']}, KL {kl}, spread {info['spread']:.3g}, "
          f"trustworthiness {info['trustworthiness']:.3f}")
assert runs[1000][1]["n_iter"] > exaggeration and runs[1000][1]["kl_divergence"] is not None
fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
axes[0].imshow(a["prep"]["canvas"])
for ax, (n_it, (rgb, info)) in zip(axes[1:], runs.items()):
    ax.imshow(rgb)
    ax.set_title(f"BoIR t-SNE, {n_it} iterations ({side_points} px)")
for ax in axes:
    ax.axis("off")
show(fig)

# %% [markdown]
# ## Figures 4 and 5: comparative panels
# Per model: predictions, the center heatmap, the t-SNE colours and the similarity of the top-1 instance
# parameter (the feature at the highest center peak) to the whole map.


# %%
def panel(idx, title):
    entries = {}
    for name in names:
        a = analyse(idx, name)
        sim = None if a["top_yx"] is None else fg.similarity_from_point(a["features"], a["top_yx"], bandwidth)
        entries[name] = {"poses": a["poses"], "center": a["center"], "tsne": tsne_of(idx, name),
                         "similarity": sim, "top_yx": a["top_yx"], "skeleton": profiles[name].skeleton}
    fig = fg.comparison_figure(analyse(idx, names[0])["prep"]["canvas"], entries, title=title,
                               skeleton=prof.skeleton)
    show(fig)
    return entries


_ = panel(fig1_index, f"Figure 4/5 style: {pictures[fig1_index][0]}")

# %% [markdown]
# ## Figure 6: a failure case
# With ground truth (SynthCrowd), the image where BoIR's count of confident people is furthest from the
# true count: duplicates (a wide center activation) or misses. Without ground truth: the image with the
# most overlapping BoIR predictions.

# %%
def confident(poses, thr=0.1):
    return [p for p in poses if p["score"] >= thr]


errors = []
for i, (_, _, info) in enumerate(pictures):
    found = len(confident(analyse(i, "BoIR")["poses"]))
    errors.append(abs(found - info["count"]) if info is not None else found)
fail = int(np.argmax(errors))
info = pictures[fail][2]
print(f"{pictures[fail][0]}: BoIR finds {len(confident(analyse(fail, 'BoIR')['poses']))} confident people"
      + (f", ground truth has {info['count']}" if info else ""))
_ = panel(fail, f"Figure 6 style (failure case): {pictures[fail][0]}")
