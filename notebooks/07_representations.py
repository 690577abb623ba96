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
# Do BoIR's features separate people better than CID's, in pictures and in a number?

# %%
from boir_core.course import show_course_map

show_course_map("07")

# %% [markdown]
# **After this notebook you can**
# 1. draw the similarity of a person's center feature f^p to a whole feature map, with a kernel whose values
#    compare across models, and measure how much of it leaks onto another person;
# 2. score how well people separate in a feature map with the silhouette, and read a t-SNE without
#    over-reading it;
# 3. compare two checkpoints (BoIR and CID, shipped or released) on the paper's Figures 1, 3–6.
#
# **Prerequisites**: [02 · Backbone, ASPP neck and heads](02_backbone_aspp_heads.ipynb) (the backbone map F),
# [03 · The Bbox Mask Loss](03_bbox_mask_loss.ipynb) (the kernel ψ and β) and
# [05 · Inference and evaluation](05_inference_and_evaluation.ipynb) (decoding the poses drawn here).
#
# **Symbols**: f^p is the backbone feature vector at a person's center (the paper's "center feature", which the
# instance head is conditioned on); p stays the instance *embedding* of notebooks 01 and 03, read from the
# separate embedding map; β is only the bandwidth of the embedding kernel ψ.

# %% [markdown]
# ## What this notebook compares
# BoIR's claim is about the *backbone features*: box supervision (Bbox Mask Loss, bbox head) makes the
# feature at a person's center similar to the rest of that person and dissimilar to everyone else. The
# paper shows this three ways, all reproduced here for any pair of checkpoints, BoIR beside CID:
#
# * **Figure 1 (b–f)**: the similarity of the feature at a box center to the whole feature map, for two
#   overlapping people A and B, and how much of it leaks onto the other person;
# * **Figure 3**: a t-SNE of backbone features — here of pixels sampled inside each person's box, coloured by
#   person, with a number that says how well the people separate (the paper's per-pixel RGB version is in
#   *Going deeper* at the end);
# * **Figures 4–6**: predictions, center heatmap, t-SNE and the similarity of the top-1 instance parameter
#   (L2 distance + Gaussian kernel), and failure cases.
#
# By default the models are the kit's default trained weights (`boir_core.paths.default_checkpoint`: the
# demo BoIR and CID shipped inside the package, `boir_core/weights/`, trained alike on SynthCrowd with one
# recipe; the cell that loads them prints their training steps and AP). Only when there are none does a tiny
# BoIR and CID, trained for a few iterations, stand in, and the output says so: such models have learnt
# almost nothing, and their maps show the method, not a result. Pass released checkpoints
# (`boir_config="coco_w32"`, `cid_config="cid_coco_w32"`) and real `images` to see the paper's pictures.

# %% tags=["parameters"]
boir_config = None  # config of the BoIR weights (e.g. coco_w32 for the released W32); None: the one saved with them
boir_checkpoint = None  # None: the default weights (make demo's); a tiny BoIR is trained briefly when there are none
cid_config = None  # config of the CID weights (e.g. cid_coco_w32); None: the one saved with them
cid_checkpoint = None  # e.g. checkpoints/cid_coco_w32.pth; None: the default CID weights, else a tiny CID
images = []  # real image paths; empty: SynthCrowd val images
data_root = None  # SynthCrowd; None: data/synthcrowd if generated, else a small set under work_dir
search_images = 8  # SynthCrowd val images searched for Figure 1's pair, the separation scores and a failure case
train_iters = 6  # iterations of the fallback tiny models (0: random weights)
work_dir = "runs/notebooks/07"  # where fallback models are trained
tsne_points = 256  # the paper's per-pixel t-SNE (as RGB): pixels of a regular grid, colours upsampled to the map
tsne_iterations = 250  # the per-pixel t-SNE's iterations, as in the paper (shown beside 1000)
bandwidth = "median"  # Gaussian kernel width h in exp(-d²/h): "median" of d² over the map, or a number
fixed_beta = None  # β of Figure 1's fixed-kernel panels, exp(-β/D·‖e - e^p‖²) on unit vectors; None: β = D
tsne_per_person = 16  # Figure 3: pixels sampled inside each person's box (people with fewer own pixels are left out)
seed = 0  # seeds Figure 3's pixel samples and its t-SNE
device = "cpu"
backend = None  # None: each config's test.backend (unset: exact); torch is faster, onnxruntime / openvino run ONNX
num_threads = 1  # torch CPU threads (0: torch's default)
annotations = ""  # COCO-format JSON with the ground truth of `images` (Figures 1 and 3 then use its boxes)

# %%
import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from boir_core import paths
from boir_core.config import load_config
from boir_core.data.annotations import read_image
from boir_core.engine.evaluation.runner import checkpoint_config, load_inference_model
from boir_core.engine.inference.predictor import Predictor
from boir_core.viz import figures as fg
from boir_core.viz import similarity as vs
from boir_core.viz.training import shipped_description

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
from boir_core.viz.scenes import synthcrowd_root, val_pictures

# relative paths are read from the kit's root (the kernel may start in notebooks/); a path you set must exist
work_dir = paths.resolve(work_dir)
images = [paths.existing(p, "image") for p in images]
boir_checkpoint = (paths.existing(boir_checkpoint, "boir_checkpoint") if boir_checkpoint
                   else paths.default_checkpoint("boir"))
cid_checkpoint = paths.existing(cid_checkpoint, "cid_checkpoint") if cid_checkpoint else paths.default_checkpoint("cid")
# SynthCrowd: data/synthcrowd if generated, else a small set of its first images under work_dir (never
# overwriting someone's full set)
data_root = paths.existing(data_root, "data_root") if data_root else synthcrowd_root(work_dir, int(search_images))
print(f"SynthCrowd: {data_root}")


def get_model(arch, config, checkpoint):
    """(cfg, model, source) for ``checkpoint`` with ``config``; a tiny model trained ``train_iters`` iterations
    when there is no checkpoint (said in the output)."""
    chosen = [f"train.device={device}", f"test.device={device}"] + ([f"test.backend={backend}"] if backend else [])
    if checkpoint is not None:
        cfg = checkpoint_config(checkpoint, config, chosen)
        source = shipped_description(checkpoint) or f"{checkpoint}"
        return cfg, load_inference_model(cfg, checkpoint, device)[0], source
    print(f"no trained {arch.upper()} weights (`make demo` trains a BoIR into {paths.resolve(paths.DEMO_WEIGHTS)}): "
          f"a tiny {arch.upper()} trained for {train_iters} iterations stands in")
    ov = [f"data.root={data_root}", *chosen, "train.epochs=1",
          f"train.max_steps_per_epoch={max(int(train_iters), 1)}", "train.log_every=1000", f"name={arch}_tiny"]
    if arch == "cid":
        ov += ["model.arch=cid", "model.bbox_head=false", "loss.bbox_mask=false"]
    cfg = load_config("tiny", ov)
    if int(train_iters) <= 0:
        return cfg, load_inference_model(cfg, None, device)[0], "random weights"
    from boir_core.engine.training.train import train

    weights = train(cfg, work_dir / f"{arch}_tiny_it{train_iters}", resume="or-restart",
                    progress=False).final_weights
    return cfg, load_inference_model(cfg, weights, device)[0], f"tiny, {train_iters} iterations"


models, predictors = {}, {}
for name, arch, config, ckpt in (("CID", "cid", cid_config, cid_checkpoint),
                                 ("BoIR", "boir", boir_config, boir_checkpoint)):
    cfg, model, source = get_model(arch, config, ckpt)
    models[name] = (cfg, model)
    predictors[name] = Predictor(cfg, model=model)  # decodes the poses; the maps below read the model
    print(f"{name}: {cfg.model.arch} {cfg.model.backbone}, input {cfg.data.input_size} px, {model.num_keypoints} "
          f"keypoints ({source}); poses through test.backend={predictors[name].backend} "
          f"({predictors[name].variant})")
names = list(models)
input_size = min(c.data.input_size for c, _ in models.values())
# each model decodes and draws with its own data set's keypoints (flip index, OKS sigmas, skeleton)
profiles = {name: p.profile for name, p in predictors.items()}  # profile_for(cfg): a custom set's too
for name, (cfg, net) in models.items():
    assert profiles[name].num_keypoints == net.num_keypoints, (name, cfg.data.dataset)
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
    pictures = [(pic.name, pic.image, {"boxes": pic.boxes, "count": len(pic.people)})
                for pic in val_pictures(data_root, int(search_images))]
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
    res = predictors[name](prep["image"], prep["meta"], return_intermediates=True)
    maps = fg.model_maps(model, prep["image"])
    peaks = res.intermediates["peaks_yx"]
    top = tuple(int(v) for v in peaks[0]) if len(peaks) else None
    out = {"prep": prep, "poses": fg.to_canvas(res.poses, prep["matrix"]), "features": maps["features"],
           "center": maps["center"], "top_yx": top}
    _cache[key] = out
    return out


# %% [markdown]
# ## Figure 1 (b–f): similarity from the centers of two overlapping people
# Figure 1 needs two people who overlap *and* stand apart: for two nearly identical boxes "from A" and
# "from B" are one picture. The rule (`boir_core.viz.figures.separated_overlapping_pair`): the two boxes'
# IoU lies in `fg.PAIR_IOU_RANGE` and their centers are at least `fg.PAIR_MIN_CENTER_DISTANCE` times the
# shortest side of the two boxes apart; of the pairs that pass, the one with the largest IoU, in the first
# image that has it (the cell prints the values). The boxes are the ground truth (SynthCrowd, or `images`
# with `annotations`); without ground truth, the boxes of confident BoIR predictions, and the cell says so.
#
# The backbone feature at each box center, f^p (the paper's "center feature"; not the embedding p of
# notebook 03), is compared with every pixel's feature f in two ways:
#
# * **median h**: exp(−‖f − f^p‖²/h) on the raw features, h = the median of ‖f − f^p‖² over the map
#   (`bandwidth`): every map gets the same spread, so it shows the *shape* of each model's similarity, not
#   its size;
# * **fixed β**: the Bbox Mask Loss's kernel ψ = exp(−β/D·‖e − e^p‖²) (`boir_core.losses.psi`) on the
#   L2-normalised features e = f/‖f‖ and e^p = f^p/‖f^p‖, with the same β/D for both models (`fixed_beta`;
#   by default β = D, i.e. exp(−‖e − e^p‖²)), so the two models' values can be compared.
#
# A disentangled representation lights up its own person and stays dark on the other. The number under
# each panel measures the leak: the mean similarity over the pixels of the **other** person's box that the
# query's own box does not cover (B∖A for a map from A, A∖B for a map from B; pixel sets as the loss's
# B_i). Lower is better. The overlap A∩B holds both people, so it cannot tell a leak from a hit and is left
# out.

# %%
RULE = (f"box IoU in [{fg.PAIR_IOU_RANGE[0]}, {fg.PAIR_IOU_RANGE[1]}], centers at least "
        f"{fg.PAIR_MIN_CENTER_DISTANCE} x the shortest side of the two boxes apart")


def people_boxes(index):
    """(xywh boxes in original pixels, where they come from) of picture ``index``: the ground truth, else the
    boxes around the keypoints of BoIR's confident predictions."""
    info = pictures[index][2]
    if info is not None:
        return info["boxes"], "ground-truth"
    a = analyse(index, "BoIR")
    inv = np.linalg.inv(np.vstack([a["prep"]["matrix"], [0, 0, 1]]))[:2]
    predicted = []
    for p in [p for p in a["poses"] if p["score"] >= 0.1]:
        kp = np.asarray(p["keypoints"]).reshape(-1, 3)[:, :2] @ inv[:, :2].T + inv[:, 2]
        predicted.append([*kp.min(0), *(kp.max(0) - kp.min(0))])
    return predicted, "predicted (confident BoIR poses; no ground truth)"


def map_boxes(index, name, boxes_orig):
    """The boxes in the canvas pixels and in the feature-map pixels of model ``name`` on picture ``index``."""
    a = analyse(index, name)
    canvas_boxes = fg.boxes_to_canvas(boxes_orig, a["prep"]["matrix"])
    stride = a["prep"]["canvas"].shape[0] / a["features"].shape[1]
    return canvas_boxes, [[v / stride for v in b] for b in canvas_boxes]


found = [(i, fg.separated_overlapping_pair(people_boxes(i)[0])) for i in range(len(pictures))]
found = [(i, pair) for i, pair in found if pair is not None]
boxes_orig = []
if found:
    fig1_index, (ia, ib, iou) = max(found, key=lambda t: t[1][2])  # max keeps the first of equal IoUs
    all_boxes, box_source = people_boxes(fig1_index)
    boxes_orig = [all_boxes[ia], all_boxes[ib]]
    (ya, xa), (yb, xb) = fg.box_center(boxes_orig[0]), fg.box_center(boxes_orig[1])
    side = min(min(b[2], b[3]) for b in boxes_orig)
    print(f"rule: {RULE}; {len(found)} of {len(pictures)} images have such a pair")
    print(f"Figure 1: image {pictures[fig1_index][0]}, {box_source} people {ia} (A) and {ib} (B): box IoU {iou:.2f}, "
          f"centers {np.hypot(ya - yb, xa - xb):.0f} px apart = {np.hypot(ya - yb, xa - xb) / side:.2f} x the "
          f"shortest side")
else:
    fig1_index = 0
    print(f"no pair of people in these {len(pictures)} images passes the rule ({RULE}): no Figure 1")
if len(boxes_orig) == 2:
    canvas = analyse(fig1_index, "BoIR")["prep"]["canvas"]
    kernels = {}
    sims, leaks, own = {}, {}, {}
    for name in names:
        feats = analyse(fig1_index, name)["features"]
        boxes, boxes_m = map_boxes(fig1_index, name, boxes_orig)
        beta = float(fixed_beta) if fixed_beta is not None else float(feats.shape[0])
        label_median = "median h" if bandwidth == "median" else f"h = {bandwidth}"
        label_fixed = "ψ, β = D" if fixed_beta is None else f"ψ, β = {float(fixed_beta):g}"
        centers = [fg.box_center(b) for b in boxes_m]
        sims[name] = {label_median: [fg.similarity_from_point(feats, c, bandwidth) for c in centers],
                      label_fixed: [fg.fixed_beta_similarity(feats, c, beta) for c in centers]}
        h, w = feats.shape[1:]
        only_b = vs.difference_pixels(boxes_m[1], boxes_m[0], h, w)  # B∖A
        only_a = vs.difference_pixels(boxes_m[0], boxes_m[1], h, w)  # A∖B
        leaks[name] = {k: [vs.region_mean(m[0], only_b), vs.region_mean(m[1], only_a)] for k, m in sims[name].items()}
        own[name] = {k: [vs.region_mean(m[0], only_a), vs.region_mean(m[1], only_b)] for k, m in sims[name].items()}
        print(f"{name}: D = {feats.shape[0]} channels; fixed-kernel β = {beta:g} (β/D = {beta / feats.shape[0]:.3g}; "
              f"on unit vectors ψ ≥ {np.exp(-4 * beta / feats.shape[0]):.3f}); B∖A {int(only_b.sum())} px, "
              f"A∖B {int(only_a.sum())} px of the {h}x{w} map")
    show(fg.similarity_grid_figure(canvas, boxes, sims, scores=leaks, score_label="leak onto the other: "))
    print(f"{'model':6s} {'kernel':10s} {'A over B∖A':>11s} {'B over A∖B':>11s} {'leak (mean)':>12s} "
          f"{'own (A∖B, B∖A)':>16s}")
    for name in names:
        for k in sims[name]:
            lk, ow = leaks[name][k], own[name][k]
            print(f"{name:6s} {k:10s} {lk[0]:11.3f} {lk[1]:11.3f} {np.mean(lk):12.3f} {ow[0]:8.3f} {ow[1]:7.3f}")
    for k in sims["BoIR"]:
        b_leak, c_leak = np.mean(leaks["BoIR"][k]), np.mean(leaks["CID"][k])
        lower = "BoIR" if b_leak < c_leak else "CID"
        print(f"{k}: {lower} leaks less onto the other person ({b_leak:.3f} BoIR vs {c_leak:.3f} CID, "
              f"difference {abs(b_leak - c_leak):.3f}); own region: BoIR {np.mean(own['BoIR'][k]):.3f}, "
              f"CID {np.mean(own['CID'][k]):.3f}")
    print("(one pair of people in one image: Figure 3 below scores every searched image)")

# %% [markdown]
# **Explorer**: pick any query pixel (row / column of the stride-4 map) and compare BoIR's and CID's
# similarity maps side by side, on the same image.

# %%
from boir_core.viz.explorers import SimilarityPairExplorer, place

pair_explorer = place(SimilarityPairExplorer(analyse(fig1_index, "BoIR")["prep"]["canvas"],
                                             {name: analyse(fig1_index, name)["features"] for name in ("BoIR", "CID")}))

# %% [markdown]
# ## Figure 3: do people separate in the feature map?
# The paper colours every pixel by a 3-D t-SNE of its feature (the RGB picture in *Going deeper* at the end).
# On these small maps that picture mostly shows *where* a pixel is (a smooth gradient across the image), not
# *whose* it is. Here the question is asked directly: `tsne_per_person` pixels are drawn (seeded by `seed`)
# inside each person's box, leaving out pixels that two boxes share (their owner is ambiguous) and the people
# with fewer pixels of their own. Their backbone features, L2-normalised as the Bbox Mask Loss sees an embedding, are
# embedded in 2-D by t-SNE (1,000 iterations, perplexity min(30, (n − 1)/3), PCA start, seeded by `seed`) and
# coloured by person
# (`boir_core.viz.similarity.instance_embeddings`, `boir_core.viz.figures.instance_tsne`).
#
# The number is the **silhouette score** of the same samples grouped by person, computed in the feature space
# itself, not in the t-SNE plane (`boir_core.viz.similarity.separation_score`): near 1 when each person's
# pixels sit together and away from the others', near 0 when people are mixed. One image is drawn; the score
# is computed on every searched image with at least two such people.

# %%
def separation(index, name):
    """(samples, person labels, silhouette) of model ``name``'s backbone features on picture ``index``."""
    _, boxes_m = map_boxes(index, name, people_boxes(index)[0])
    x, labels = vs.instance_embeddings(analyse(index, name)["features"], boxes_m, per_person=int(tsne_per_person),
                                       seed=int(seed))
    return x, labels, vs.separation_score(x, labels)


_tsne_cache = {}


def person_tsne(index, name):
    """(2-D t-SNE points or None, person labels, silhouette) of :func:`separation`'s samples (cached)."""
    if (index, name) not in _tsne_cache:
        x, labels, score = separation(index, name)
        enough = len(np.unique(labels)) >= 2 and len(x) >= 5
        _tsne_cache[index, name] = (fg.instance_tsne(x, seed=int(seed)) if enough else None, labels, score)
    return _tsne_cache[index, name]


scores = {name: [separation(i, name)[2] for i in range(len(pictures))] for name in names}
scored = [i for i in range(len(pictures)) if all(np.isfinite(scores[n][i]) for n in names)]
print(f"{'image':12s} {'people':>6s} " + " ".join(f"{n:>6s}" for n in names))
for i in scored:
    print(f"{pictures[i][0]:12s} {len(np.unique(separation(i, names[0])[1])):6d} "
          + " ".join(f"{scores[n][i]:6.3f}" for n in names))
tsne_index = fig1_index if fig1_index in scored else (scored[0] if scored else None)
if tsne_index is None:
    print(f"no searched image has two people with {tsne_per_person} pixels of their own: no Figure 3")
else:
    entries = {}
    for name in names:
        points, labels, score = person_tsne(tsne_index, name)
        entries[name] = {"points": points, "labels": labels, "score": score}
    canvas_boxes, _ = map_boxes(tsne_index, names[0], people_boxes(tsne_index)[0])
    show(fg.instance_tsne_figure(analyse(tsne_index, names[0])["prep"]["canvas"], canvas_boxes, entries,
                                 title=f"{pictures[tsne_index][0]}: people (gray: too few pixels of their own)"))
    b, c = np.array([scores["BoIR"][i] for i in scored]), np.array([scores["CID"][i] for i in scored])
    diff = b - c
    se = diff.std(ddof=1) / np.sqrt(len(diff)) if len(diff) > 1 else float("nan")
    print(f"{pictures[tsne_index][0]}: silhouette BoIR {entries['BoIR']['score']:.3f}, "
          f"CID {entries['CID']['score']:.3f}")
    print(f"over the {len(scored)} scored images: mean silhouette BoIR {b.mean():.3f}, CID {c.mean():.3f}; "
          f"BoIR - CID {diff.mean():+.3f} (standard error {se:.3f}, from {diff.min():+.3f} to {diff.max():+.3f}); "
          f"BoIR higher on {int((diff > 0).sum())} of {len(scored)} images")
    verdict = ("BoIR" if diff.mean() > 0 else "CID") + " separates people better on these images"
    if not abs(diff.mean()) > 2 * se:
        verdict = ("the difference is within twice its standard error: these images do not tell the two "
                   "models apart")
    print(f"-> {verdict}")

# %% [markdown]
# ## Figures 4 and 5: comparative panels
# Per model: predictions, the center heatmap, the per-person t-SNE of Figure 3 (with its silhouette score) and
# the similarity of the top-1 instance parameter (the feature at the highest center peak) to the whole map.


# %%
def panel(idx, title):
    entries = {}
    for name in names:
        a = analyse(idx, name)
        sim = None if a["top_yx"] is None else fg.similarity_from_point(a["features"], a["top_yx"], bandwidth)
        points, labels, score = person_tsne(idx, name)
        entries[name] = {"poses": a["poses"], "center": a["center"], "tsne_points": points, "tsne_labels": labels,
                         "tsne_score": score, "similarity": sim, "top_yx": a["top_yx"],
                         "skeleton": profiles[name].skeleton}
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


# %% [markdown]
# ## Exercises
# Each solution is in the hidden cell below its question (click the cell's "…" to show it); running it checks
# the answer with an independent computation.
#
# **Predict before you run.** Six feature vectors of two people: person 0 at (0, 0), (0, 1), (1, 0), person 1 at
# (10, 10), (10, 11), (11, 10). Is their silhouette near 1, near 0 or negative? And if you swap the labels of
# one point of each person?

# %% tags=["solution"] jupyter={"source_hidden": true}
toy_x = np.array([[0, 0], [0, 1], [1, 0], [10, 10], [10, 11], [11, 10]], dtype=float)


def silhouette_by_hand(x, labels):
    """Mean over points of (b − a) / max(a, b): a = mean distance to its own group, b = to the nearest other."""
    x, labels = np.asarray(x, float), np.asarray(labels)
    d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
    out = []
    for i in range(len(x)):
        own = (labels == labels[i]) & (np.arange(len(x)) != i)
        a_i = d[i, own].mean()
        b_i = min(d[i, labels == g].mean() for g in np.unique(labels) if g != labels[i])
        out.append((b_i - a_i) / max(a_i, b_i))
    return float(np.mean(out))


for toy_labels in ([0, 0, 0, 1, 1, 1], [0, 0, 1, 0, 1, 1]):
    score = vs.separation_score(toy_x, toy_labels)
    print(f"labels {toy_labels}: silhouette {score:.3f}")
    assert abs(score - silhouette_by_hand(toy_x, toy_labels)) < 1e-12
assert vs.separation_score(toy_x, [0, 0, 0, 1, 1, 1]) > 0.9 > 0 > vs.separation_score(toy_x, [0, 0, 1, 0, 1, 1])

# %% [markdown]
# **Exercise 1.** With Figure 1's fixed kernel at β = D, ψ = exp(−‖e − e^p‖²) on unit vectors. What is ψ for a
# pixel whose feature points the same way as f^p (but is twice as long), for one orthogonal to it, and for one
# opposite to it? What is the smallest value ψ can take, whatever the model?

# %% tags=["solution"] jupyter={"source_hidden": true}
f_p = np.array([3.0, 4.0, 0.0])
toy_map = np.stack([f_p, 2 * f_p, np.array([0.0, 0.0, 5.0]), -f_p], axis=1)[:, None, :]  # [C=3, H=1, W=4]
psi_map = fg.fixed_beta_similarity(toy_map, (0, 0), beta=3.0)[0]  # β = D = 3
print("ψ at f^p, 2·f^p, orthogonal, −f^p:", np.round(psi_map, 4).tolist())
# by hand: ‖e − e^p‖² = 2 − 2·cos(angle): 0, 0, 2, 4
assert np.allclose(psi_map, np.exp(-np.array([0.0, 0.0, 2.0, 4.0])), atol=1e-12)
print(f"smallest possible ψ at β = D: exp(−4) = {np.exp(-4):.4f}: a map of this kernel is never darker")

# %% [markdown]
# **Exercise 2.** Recompute the BoIR silhouette of Figure 3's image (or, without one, of the first scored
# image) from its samples by hand, with the definition of the predict question, in the features' own space.

# %% tags=["solution"] jupyter={"source_hidden": true}
if scored:
    i_ex = tsne_index
    x_ex, labels_ex, score_ex = separation(i_ex, "BoIR")
    by_hand = silhouette_by_hand(x_ex, labels_ex)
    print(f"{pictures[i_ex][0]}: {len(x_ex)} samples of {len(np.unique(labels_ex))} people, silhouette "
          f"{score_ex:.4f} (by hand {by_hand:.4f})")
    assert abs(score_ex - by_hand) < 1e-9 and abs(score_ex - scores["BoIR"][i_ex]) < 1e-12
else:
    print("no image with two scored people among the searched ones: nothing to recompute")


# %% [markdown]
# ## Going deeper: the paper's per-pixel t-SNE, and why 250 of scikit-learn's iterations are only early exaggeration
# The paper's Figure 3 embeds the feature of every pixel in 3-D by t-SNE (250 iterations) and reads the three
# axes as R, G, B (`boir_core.viz.figures.tsne_rgb`, here on `tsne_points` pixels of a regular grid, colours
# upsampled). The kit calls scikit-learn's `TSNE` with n_components = 3, perplexity min(30, (n − 1)/3),
# init = "pca", a fixed random_state and the iteration count; everything else is scikit-learn's default, which
# the cell prints (early_exaggeration, learning_rate, metric). scikit-learn's t-SNE (like the reference
# implementation) first runs 250 iterations with the affinities P multiplied by early_exaggeration ("early
# exaggeration", momentum 0.5), which lets clusters form and move apart; only then does it minimise the actual
# KL divergence. Stopped at 250 — the paper's setting; the paper names no other parameter, so whether its run
# matched these is unknown — the embedding has not started the real optimisation, and scikit-learn reports no
# KL divergence for it. Beside it, the same
# pixels run to 1000 iterations. (`trustworthiness` measures how many of each pixel's 5 nearest neighbours in
# feature space stay neighbours in the embedding: compare the two runs' values.) Colours that change smoothly
# across the image say where a pixel is; the per-person view above says whose it is.

# %%
from sklearn.manifold import TSNE

exaggeration = fg.tsne_exaggeration_iterations()
defaults = {k: v for k, v in TSNE().get_params().items() if k in ("early_exaggeration", "learning_rate", "metric")}
print(f"scikit-learn's defaults the kit keeps: {defaults}")
print(f"scikit-learn: {exaggeration} early-exaggeration iterations; this notebook (and the paper) run "
      f"{tsne_iterations}" + (": exaggeration only" if int(tsne_iterations) <= exaggeration else ""))
a = analyse(fig1_index, "BoIR")
h, w = a["prep"]["canvas"].shape[:2]
runs = {}
for n_it in (int(tsne_iterations), 1000):
    info = {}
    tsne = fg.TsneSettings(max_points=int(tsne_points), n_iter=n_it)
    runs[n_it] = (fg.tsne_rgb(a["features"], tsne, out_size=(h, w), info=info), info)
    kl = "none reported" if info["kl_divergence"] is None else f"{info['kl_divergence']:.3f}"
    print(f"{n_it:5d} iterations: ran {info['n_iter']}, KL {kl}, spread {info['spread']:.3g}, "
          f"trustworthiness {info['trustworthiness']:.3f}")
assert runs[1000][1]["n_iter"] > exaggeration and runs[1000][1]["kl_divergence"] is not None
fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
axes[0].imshow(a["prep"]["canvas"])
for ax, (n_it, (rgb, info)) in zip(axes[1:], runs.items()):
    ax.imshow(rgb)
    ax.set_title(f"BoIR t-SNE, {n_it} iterations ({int(tsne_points)} px)")
for ax in axes:
    ax.axis("off")
show(fig)

# %% [markdown]
# ## Recap
# 1. BoIR's claim is about the backbone features: the similarity of a person's center feature f^p to the map
#    should stay on that person; a fixed kernel (ψ at one β/D) compares two models on one scale, a median
#    bandwidth only their shapes.
# 2. Whether people separate is a number, the silhouette of per-person samples in feature space; a t-SNE
#    picture illustrates it but depends on its parameters (and at 250 iterations has not left early exaggeration).
# 3. One image proves little: the scores are compared over every searched image, with a standard error.
#
# **Where next**: this is the last notebook of the course. The [README](../README.md) lists the commands for real
# data and released weights; the reference pages in [docs/](../docs/) hold the details (e.g.
# [docs/release_vs_paper.md](../docs/release_vs_paper.md) for every way the release differs from the paper).
