"""The paper's figures as functions: t-SNE of features as RGB (Fig. 3), feature-similarity maps from box
centers (Fig. 1 b-f) and comparative / failure-case panels (Figs. 4-6).

* :func:`tsne_rgb` — t-SNE (3 components, 250 iterations as in the paper) of the per-pixel feature vectors,
  each component min-max normalised to [0, 1] and used as R, G, B. Pixels are subsampled on a regular grid
  (``max_points``) for CPU speed and the colours upsampled back to the map size.
* :func:`gaussian_similarity` — ψ(d(f(x, y), p)) = exp(−‖f(x, y) − p‖² / h): the L2 distance of every
  feature vector to one vector p (an instance parameter: the feature at a center), through the Gaussian
  kernel of the Bbox Mask Loss (:func:`boir_core.losses.psi`), as the supplementary describes for Figs. 4-5.
  ``bandwidth="median"`` sets h to the median squared distance (so half the map lies below e⁻¹, whatever the
  feature scale of the checkpoint); ``bandwidth=D/β`` is the kernel of the Bbox Mask Loss, exp(−β/D·‖·‖²).
  :func:`fixed_beta_similarity` is that loss kernel on the L2-normalised features, with one β for every
  model (comparable across checkpoints, unlike the median bandwidth).
* :func:`separated_overlapping_pair` — Fig. 1's pair: two boxes that overlap but whose centers are apart.
* :func:`instance_tsne` — a 2-D t-SNE of per-person embedding samples (:mod:`.similarity`), drawn by
  :func:`instance_tsne_figure` coloured by person.
* :func:`model_maps` — backbone features and the center heatmap of any BoIR / CID model on one image.
* :func:`comparison_figure`, :func:`similarity_figure`, :func:`similarity_grid_figure` — matplotlib figures
  in the layout of the paper.

Inputs are torch tensors or numpy arrays; outputs are numpy.
"""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence, Union

import cv2
import matplotlib
import matplotlib.patches as patches
import matplotlib.pyplot as plt
import numpy as np
import torch

from ..data.transforms import eval_input
from ..losses import psi
from ..ops import sigmoid_clamp
from .draw import draw_poses
from .similarity import similarity_map

__all__ = [
    "tsne_iteration_argument", "tsne_exaggeration_iterations", "grid_stride", "TsneSettings", "tsne_rgb",
    "feature_at",
    "gaussian_similarity", "similarity_from_point", "fixed_beta_similarity", "box_center", "box_iou",
    "most_overlapping_pair", "PAIR_IOU_RANGE", "PAIR_MIN_CENTER_DISTANCE", "separated_overlapping_pair", "overlay",
    "model_maps", "prepare_image", "to_canvas", "boxes_to_canvas", "similarity_figure", "similarity_grid_figure",
    "comparison_figure", "instance_tsne", "instance_tsne_figure", "PERSON_COLOURS",
]

ArrayLike = Any  # np.ndarray or torch.Tensor


def _np(x: ArrayLike) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x)


def tsne_iteration_argument() -> str:
    """``max_iter`` (scikit-learn >= 1.5) or ``n_iter`` (older) — the name of TSNE's iteration count."""
    from sklearn.manifold import TSNE  # local: a slow import (~1 s), only t-SNE needs it

    params = inspect.signature(TSNE.__init__).parameters
    return "max_iter" if "max_iter" in params else "n_iter"


def tsne_exaggeration_iterations() -> int:
    """How many of scikit-learn's t-SNE iterations run with early exaggeration (P × 12, momentum 0.5) before
    the actual optimisation starts (250 in every release so far)."""
    from sklearn.manifold import TSNE  # local: a slow import (~1 s), only t-SNE needs it

    return int(getattr(TSNE, "_EXPLORATION_MAX_ITER", 250))


def grid_stride(height: int, width: int, max_points: int) -> int:
    """The smallest stride s such that a regular s-grid over H×W has at most ``max_points`` points."""
    if max_points < 1:
        raise ValueError(f"max_points must be >= 1, got {max_points}")
    s = max(1, math.ceil(math.sqrt(height * width / max_points)))
    while math.ceil(height / s) * math.ceil(width / s) > max_points:
        s += 1
    return s


@dataclass(frozen=True)
class TsneSettings:
    """The t-SNE of :func:`tsne_rgb`: at most ``max_points`` pixels of a regular grid, ``n_iter`` iterations (the
    paper: 250), scikit-learn's ``perplexity`` (capped at (n − 1)/3) and ``seed`` (its random_state)."""

    max_points: int = 1024
    n_iter: int = 250
    perplexity: float = 30.0
    seed: int = 0


def tsne_rgb(features: ArrayLike, settings: TsneSettings = TsneSettings(), *,
             out_size: Optional[tuple[int, int]] = None, info: Optional[dict] = None) -> np.ndarray:
    """t-SNE of a feature map [C, H, W] as an RGB image [H, W, 3] (or ``out_size`` = (H', W')) in [0, 1].

    The feature vectors of a regular grid (at most ``settings.max_points`` pixels) are embedded in 3 dimensions
    with ``settings.n_iter`` iterations (:class:`TsneSettings`); each dimension is min-max normalised to [0, 1]
    and the colour image is upsampled bilinearly to the map (or ``out_size``). A dict passed as ``info`` receives
    ``n_iter`` (iterations run), ``kl_divergence`` (None when scikit-learn reports none: a run that stops at
    the end of early exaggeration), ``spread`` (standard deviation of the raw embedding) and
    ``trustworthiness`` (how well 5-nearest-neighbourhoods survive, in [0, 1]).
    """
    max_points, n_iter, perplexity, seed = settings.max_points, settings.n_iter, settings.perplexity, settings.seed
    from sklearn.manifold import TSNE  # local: a slow import (~1 s), only t-SNE needs it

    f = _np(features).astype(np.float32)
    if f.ndim != 3:
        raise ValueError(f"features must be [C, H, W], got shape {f.shape}")
    c, h, w = f.shape
    s = grid_stride(h, w, max_points)
    sub = f[:, ::s, ::s]
    gh, gw = sub.shape[1:]
    x = sub.reshape(c, -1).T
    n = x.shape[0]
    if n < 5:
        raise ValueError(f"t-SNE needs at least 5 pixels, the {h}x{w} map gives {n} at max_points={max_points}")
    tsne = TSNE(n_components=3, perplexity=float(min(perplexity, (n - 1) / 3)), init="pca",
                random_state=seed, **{tsne_iteration_argument(): int(n_iter)})
    y = tsne.fit_transform(x.astype(np.float64))
    if info is not None:
        from sklearn.manifold import trustworthiness  # local: slow import (see above)

        kl = float(tsne.kl_divergence_)
        info.update(n_iter=int(getattr(tsne, "n_iter_", n_iter)) + 1, kl_divergence=kl if kl < 1e300 else None,
                    spread=float(y.std()), trustworthiness=float(trustworthiness(x, y, n_neighbors=5)))
    lo, hi = y.min(axis=0), y.max(axis=0)
    y = (y - lo) / np.where(hi - lo > 0, hi - lo, 1.0)
    rgb = y.reshape(gh, gw, 3).astype(np.float32)
    th, tw = out_size if out_size is not None else (h, w)
    if (gh, gw) != (th, tw):
        rgb = cv2.resize(rgb, (int(tw), int(th)), interpolation=cv2.INTER_LINEAR)
    return np.clip(rgb, 0.0, 1.0)


def feature_at(features: ArrayLike, yx: Sequence[float]) -> np.ndarray:
    """The feature vector [C] at map position (y, x) (rounded, clipped to the map)."""
    f = _np(features)
    h, w = f.shape[1:]
    y = int(np.clip(round(float(yx[0])), 0, h - 1))
    x = int(np.clip(round(float(yx[1])), 0, w - 1))
    return f[:, y, x].copy()


def gaussian_similarity(features: ArrayLike, vector: ArrayLike,
                        bandwidth: Union[str, float] = "median") -> np.ndarray:
    """exp(−‖f(x, y) − p‖² / h) for every pixel of ``features`` [C, H, W]; p = ``vector`` [C]; in (0, 1].

    ``bandwidth``: h itself (a number > 0; D/β gives the Bbox Mask Loss kernel exp(−β/D·‖·‖²)), or
    ``"median"``: the median of the squared distances over the map (``"mean"``: their mean).
    """
    f = _np(features).astype(np.float64)
    p = _np(vector).astype(np.float64).reshape(-1)
    if f.ndim != 3 or f.shape[0] != p.shape[0]:
        raise ValueError(f"features [C, H, W] and vector [C] do not match: {f.shape} vs {p.shape}")
    d2 = ((f - p[:, None, None]) ** 2).sum(axis=0)
    if isinstance(bandwidth, str):
        if bandwidth not in ("median", "mean"):
            raise ValueError(f"bandwidth must be a number, 'median' or 'mean', got {bandwidth!r}")
        h = float(np.median(d2) if bandwidth == "median" else d2.mean())
        h = h if h > 0 else 1.0
    else:
        h = float(bandwidth)
        if not h > 0:
            raise ValueError(f"bandwidth must be > 0, got {bandwidth}")
    return psi(torch.from_numpy(d2), 1.0, h).numpy()  # exp(−d²/h): the loss's ψ with β/D = 1/h


def similarity_from_point(features: ArrayLike, yx: Sequence[float],
                          bandwidth: Union[str, float] = "median") -> np.ndarray:
    """:func:`gaussian_similarity` to the feature at map position (y, x) (1 there)."""
    return gaussian_similarity(features, feature_at(features, yx), bandwidth)


def fixed_beta_similarity(features: ArrayLike, yx: Sequence[float], beta: float) -> np.ndarray:
    """The Bbox Mask Loss's kernel ψ = exp(−β/D·‖e(x, y) − e(y₀, x₀)‖²) on the L2-normalised features e of a
    [C, H, W] map (D = C), from the pixel (y₀, x₀) = ``yx`` (rounded, clipped to the map); in (0, 1].

    Unlike the median bandwidth of :func:`similarity_from_point`, which rescales every map to the same
    spread, one ``beta`` for every checkpoint keeps the maps of two models on one scale: on unit vectors
    ‖·‖² ∈ [0, 4], so ψ ≥ exp(−4β/D)."""
    f = _np(features)
    if f.ndim != 3:
        raise ValueError(f"features must be [C, H, W], got shape {f.shape}")
    h, w = f.shape[1:]
    y = int(np.clip(round(float(yx[0])), 0, h - 1))
    x = int(np.clip(round(float(yx[1])), 0, w - 1))
    return similarity_map(torch.from_numpy(f.astype(np.float64)), point=(y, x), beta=float(beta),
                          kernel="gaussian").numpy()


def box_center(box_xywh: Sequence[float], scale: float = 1.0) -> tuple[float, float]:
    """(y, x) of the center of an ``xywh`` box, times ``scale`` (e.g. 1/4: image pixels → map pixels)."""
    x, y, w, h = (float(v) for v in box_xywh)
    return (y + h / 2) * scale, (x + w / 2) * scale


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two ``xywh`` boxes."""
    ax0, ay0, aw, ah = (float(v) for v in a)
    bx0, by0, bw, bh = (float(v) for v in b)
    iw = max(0.0, min(ax0 + aw, bx0 + bw) - max(ax0, bx0))
    ih = max(0.0, min(ay0 + ah, by0 + bh) - max(ay0, by0))
    inter = iw * ih
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


def most_overlapping_pair(boxes: Sequence[Sequence[float]]) -> Optional[tuple[int, int, float]]:
    """(i, j, IoU) of the two ``xywh`` boxes that overlap most (i < j); None for fewer than two boxes."""
    best = None
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            v = box_iou(boxes[i], boxes[j])
            if best is None or v > best[2]:
                best = (i, j, v)
    return best


#: Fig. 1's pair rule: box IoU within this range ...
PAIR_IOU_RANGE = (0.2, 0.6)
#: ... and box centers at least this fraction of the shortest side of the two boxes apart.
PAIR_MIN_CENTER_DISTANCE = 0.5


def separated_overlapping_pair(boxes: Sequence[Sequence[float]],
                               iou_range: tuple[float, float] = PAIR_IOU_RANGE,
                               min_center_distance: float = PAIR_MIN_CENTER_DISTANCE,
                               ) -> Optional[tuple[int, int, float]]:
    """(i, j, IoU), i < j, of the two ``xywh`` boxes that overlap but whose centers are apart; None if none.

    The rule (Fig. 1 needs two people whose similarity maps can differ): the boxes' IoU lies in
    ``iou_range`` (both ends included; default 0.2 to 0.6), and the distance between the two box centers is
    at least ``min_center_distance`` (default 0.5) times the shortest side of the two boxes. Among the pairs
    that pass, the one with the largest IoU; equal IoUs go to the first pair in (i, j) order. (The most
    overlapping pair, :func:`most_overlapping_pair`, is often two nearly identical boxes: the same center,
    the same map.)"""
    lo, hi = (float(v) for v in iou_range)
    if not 0.0 <= lo <= hi <= 1.0:
        raise ValueError(f"iou_range must be 0 <= low <= high <= 1, got {iou_range}")
    if not min_center_distance >= 0:
        raise ValueError(f"min_center_distance must be >= 0, got {min_center_distance}")
    best = None
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            v = box_iou(boxes[i], boxes[j])
            (yi, xi), (yj, xj) = box_center(boxes[i]), box_center(boxes[j])
            side = min(float(boxes[i][2]), float(boxes[i][3]), float(boxes[j][2]), float(boxes[j][3]))
            if lo <= v <= hi and math.hypot(yi - yj, xi - xj) >= min_center_distance * side:
                if best is None or v > best[2]:
                    best = (i, j, v)
    return best


def overlay(image: np.ndarray, heat: ArrayLike, alpha: float = 0.55, cmap: str = "jet") -> np.ndarray:
    """Blend a [h, w] map in [0, 1] (resized to the image) over an RGB uint8 image; returns uint8 RGB."""
    m = np.clip(_np(heat).astype(np.float32), 0, 1)
    m = cv2.resize(m, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR)
    colour = (matplotlib.colormaps[cmap](m)[..., :3] * 255).astype(np.float32)
    out = (1 - alpha) * image.astype(np.float32) + alpha * colour
    return np.clip(out, 0, 255).astype(np.uint8)


def model_maps(model, image: ArrayLike) -> dict[str, np.ndarray]:
    """Backbone features [C, H, W] and the center heatmap [H, W] (probabilities) of ``model`` on one
    normalised input canvas [3, H', W'] (a test sample's ``image``)."""
    x = image if isinstance(image, torch.Tensor) else torch.as_tensor(np.asarray(image))
    device = next(model.parameters()).device
    model.eval()
    with torch.no_grad():
        feats = model.features(x[None].float().to(device))
        center = sigmoid_clamp(model.center_logits(feats))[0, 0]
    return {"features": feats[0].float().cpu().numpy(), "center": center.cpu().numpy()}


def prepare_image(image: np.ndarray, input_size: int) -> dict[str, Any]:
    """The test-time resize of an RGB image (docs/inference.md#test-time-resize): ``image``
    (normalised tensor [3, H', W'] for the model), ``canvas`` (RGB uint8 as the model sees it), ``matrix``
    (original → canvas) and ``meta`` (``trans_inv``: canvas → original, what
    :func:`boir_core.engine.inference.decode.decode` needs)."""
    x = eval_input(image, input_size)
    return {"image": torch.from_numpy(x.image), "canvas": x.canvas, "matrix": x.resize.matrix,
            "meta": {"trans_inv": x.resize.trans_inv}}


def to_canvas(poses: Sequence[Mapping[str, Any]], matrix: ArrayLike) -> list[dict[str, Any]]:
    """COCO-format poses in original pixels → the same poses in canvas pixels (2×3 affine ``matrix``)."""
    m = _np(matrix).astype(np.float64)
    out = []
    for p in poses:
        kp = np.asarray(p["keypoints"], np.float64).reshape(-1, 3).copy()
        kp[:, :2] = kp[:, :2] @ m[:, :2].T + m[:, 2]
        out.append({**p, "keypoints": kp.reshape(-1).tolist()})
    return out


def boxes_to_canvas(boxes: Sequence[Sequence[float]], matrix: ArrayLike) -> list[list[float]]:
    """``xywh`` boxes in original pixels → canvas pixels (scale + translation affine)."""
    m = _np(matrix).astype(np.float64)
    return [[m[0, 0] * x + m[0, 2], m[1, 1] * y + m[1, 2], m[0, 0] * w, m[1, 1] * h] for x, y, w, h in boxes]


# ---------------------------------------------------------------------------------------------------
# figures

def _draw_box(ax, box_xywh, colour: str, label: str) -> None:
    x, y, w, h = box_xywh
    ax.add_patch(patches.Rectangle((x, y), w, h, fill=False, edgecolor=colour, linewidth=2))
    cy, cx = box_center(box_xywh)
    ax.plot(cx, cy, "o", color=colour, ms=6)
    ax.text(x, y - 2, label, color=colour, fontsize=11, weight="bold", va="bottom")


def similarity_figure(canvas: np.ndarray, boxes: Sequence[Sequence[float]],
                      similarities: Mapping[str, Sequence[np.ndarray]], labels: Sequence[str] = ("A", "B")):
    """Fig. 1 (b)-(f): the canvas with the boxes (b), then per model one panel per box: the similarity of
    the feature at that box's center to the whole map, over the canvas. ``boxes`` are ``xywh`` in canvas
    pixels; ``similarities`` = ``{model name: [map for box A, map for box B]}``."""
    colours = ("tab:blue", "tab:red", "tab:green", "tab:orange")
    n = 1 + sum(len(v) for v in similarities.values())
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 3.4))
    axes = np.atleast_1d(axes)
    axes[0].imshow(canvas)
    for b, lab, col in zip(boxes, labels, colours):
        _draw_box(axes[0], b, col, lab)
    axes[0].set_title("(b) boxes and their centers")
    letters = iter("cdefghijklmnop")
    k = 1
    for name, maps in similarities.items():
        for m, b, lab, col in zip(maps, boxes, labels, colours):
            axes[k].imshow(overlay(canvas, m))
            cy, cx = box_center(b)
            axes[k].plot(cx, cy, "o", color="white", ms=7, mec=col, mew=2)
            axes[k].set_title(f"({next(letters)}) {name}: from {lab}")
            k += 1
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    return fig


def _outline(ax, box_xywh, colour: str, scale: float = 1.0) -> None:
    x, y, w, h = (float(v) * scale for v in box_xywh)
    ax.add_patch(patches.Rectangle((x, y), w, h, fill=False, edgecolor=colour, linewidth=1.5, linestyle="--"))


def similarity_grid_figure(canvas: np.ndarray, boxes: Sequence[Sequence[float]],
                           maps: Mapping[str, Mapping[str, Sequence[np.ndarray]]],
                           scores: Optional[Mapping[str, Mapping[str, Sequence[float]]]] = None,
                           labels: Sequence[str] = ("A", "B"), score_label: str = ""):
    """Fig. 1 with several kernels: one row per model; the canvas with both boxes, then for each box and each
    kernel the similarity of the feature at that box's center to the map, over the canvas, with both boxes
    outlined. ``boxes`` are ``xywh`` in canvas pixels; ``maps`` = ``{model: {kernel label: [map from A, map
    from B]}}`` (maps at any stride, drawn stretched over the canvas); ``scores`` (same keys, optional): a
    number per map, written under its panel after ``score_label`` (e.g. the mean over the other box's own
    pixels)."""
    colours = ("tab:blue", "tab:red")
    models = list(maps)
    kernels = list(maps[models[0]])
    cols = 1 + len(labels) * len(kernels)
    fig, axes = plt.subplots(len(models), cols, figsize=(2.7 * cols, 3.1 * len(models)), squeeze=False)
    for r, name in enumerate(models):
        axes[r, 0].imshow(canvas)
        for b, lab, col in zip(boxes, labels, colours):
            _draw_box(axes[r, 0], b, col, lab)
        axes[r, 0].set_title(f"{name}: boxes and centers", fontsize=9)
        c = 1
        for k, (b, lab, col) in enumerate(zip(boxes, labels, colours)):
            for kern in kernels:
                ax = axes[r, c]
                ax.imshow(overlay(canvas, maps[name][kern][k]))
                for bb, cc in zip(boxes, colours):
                    _outline(ax, bb, cc)
                cy, cx = box_center(b)
                ax.plot(cx, cy, "o", color="white", ms=6, mec=col, mew=2)
                ax.set_title(f"{name}: from {lab}, {kern}", fontsize=9)
                if scores is not None:
                    ax.set_xlabel(f"{score_label}{scores[name][kern][k]:.2f}", fontsize=9)
                c += 1
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
    fig.tight_layout()
    return fig


def comparison_figure(canvas: np.ndarray, entries: Mapping[str, Mapping[str, Any]], *, title: str = "",
                      skeleton: Sequence[tuple[int, int]] = (), min_score: float = 0.05):
    """Figs. 4-6: one row per model with predictions, center heatmap, t-SNE of the backbone features and
    the similarity of the top-1 instance parameter to the feature map.

    ``entries`` = ``{model name: {"poses": [...] in canvas pixels, "center": [H, W], "tsne": [H, W, 3],
    "skeleton": that model's skeleton (optional, default ``skeleton``),
    "similarity": [H, W] or None, "top_yx": (y, x) map position of the top center or None}}``; the maps are
    at stride 4 and drawn over / beside ``canvas`` (RGB uint8). In place of the per-pixel ``"tsne"`` image an
    entry may give a per-person t-SNE (:func:`instance_tsne`): ``"tsne_points"`` [n, 2], ``"tsne_labels"`` [n]
    (person indices, coloured by :data:`PERSON_COLOURS`) and optionally ``"tsne_score"`` (a silhouette, in the
    title); ``"tsne_points": None`` says there was no such sample.
    """
    rows = len(entries)
    fig, axes = plt.subplots(rows, 4, figsize=(13, 3.3 * rows), squeeze=False)
    for r, (name, e) in enumerate(entries.items()):
        ax = axes[r]
        ax[0].imshow(draw_poses(canvas, e.get("poses", []), e.get("skeleton", skeleton), min_score=min_score))
        n_people = sum(p.get("score", 1.0) >= min_score for p in e.get("poses", []))
        ax[0].set_title(f"{name}: {n_people} people")
        ax[1].imshow(overlay(canvas, e["center"] / max(float(np.max(e["center"])), 1e-6)))
        ax[1].set_title(f"center heatmap (max {float(np.max(e['center'])):.2f})")
        if "tsne_points" in e:
            _tsne_scatter(ax[2], e["tsne_points"], e.get("tsne_labels"), e.get("tsne_score"))
        else:
            ax[2].imshow(e["tsne"])
            ax[2].set_title("t-SNE of backbone features")
        if e.get("similarity") is not None:
            ax[3].imshow(overlay(canvas, e["similarity"]))
            if e.get("top_yx") is not None:
                y, x = e["top_yx"]
                ax[3].plot(4 * x + 2, 4 * y + 2, "o", color="white", ms=7, mec="k")
            ax[3].set_title("similarity to the top-1 instance")
        else:
            ax[3].set_title("no instance found")
        for a in ax:
            a.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------------
# t-SNE of per-person embedding samples

#: one colour per person (matplotlib's tab10, then tab20's lighter shades)
PERSON_COLOURS = tuple(matplotlib.colormaps["tab10"].colors) + tuple(matplotlib.colormaps["tab20"].colors[1::2])


def instance_tsne(x: ArrayLike, *, n_iter: int = 1000, perplexity: float = 30.0, seed: int = 0) -> np.ndarray:
    """A 2-D t-SNE [n, 2] of the vectors ``x`` [n, C] (PCA start, ``seed``; the perplexity is capped at
    (n − 1)/3 for small samples). 1000 iterations by default: past the 250 of early exaggeration."""
    from sklearn.manifold import TSNE  # local: a slow import (~1 s), only t-SNE needs it

    x = _np(x).astype(np.float64)
    if x.ndim != 2 or len(x) < 5:
        raise ValueError(f"instance_tsne needs [n >= 5, C] vectors, got shape {x.shape}")
    tsne = TSNE(n_components=2, perplexity=float(min(perplexity, (len(x) - 1) / 3)), init="pca",
                random_state=int(seed), **{tsne_iteration_argument(): int(n_iter)})
    return tsne.fit_transform(x)


def _tsne_scatter(ax, points, labels, score=None) -> None:
    """A per-person t-SNE scatter on ``ax`` (axes kept, ticks off); a note when there is no sample."""
    if points is None or len(points) == 0:
        ax.text(0.5, 0.5, "fewer than two people\nwith pixels of their own", ha="center", va="center",
                transform=ax.transAxes, fontsize=9)
        ax.set_title("t-SNE by person: no sample", fontsize=10)
        return
    pts, lab = np.asarray(points), np.asarray(labels)
    for i in sorted({int(v) for v in lab}):
        sel = lab == i
        ax.scatter(pts[sel, 0], pts[sel, 1], s=8, color=PERSON_COLOURS[i % len(PERSON_COLOURS)], label=str(i))
    has_score = score is not None and np.isfinite(score)
    ax.set_title("t-SNE by person" + (f", silhouette {score:.2f}" if has_score else ""), fontsize=10)
    ax.legend(title="person", fontsize=7, title_fontsize=7, markerscale=1.5, loc="best")


def instance_tsne_figure(canvas: np.ndarray, boxes: Sequence[Sequence[float]],
                         entries: Mapping[str, Mapping[str, Any]], title: str = ""):
    """The canvas with every person's box in its colour, then per model a scatter of its t-SNE points coloured
    by person. ``boxes``: ``xywh`` in canvas pixels, person i = ``boxes[i]``; ``entries`` = ``{model:
    {"points": [n, 2], "labels": [n] box indices, "score": silhouette (written in the title)}}``."""
    fig, axes = plt.subplots(1, 1 + len(entries), figsize=(4 * (1 + len(entries)), 3.8), squeeze=False)
    axes = axes[0]
    axes[0].imshow(canvas)
    shown = sorted({int(v) for e in entries.values() for v in np.asarray(e["labels"])})
    for i, b in enumerate(boxes):
        colour = PERSON_COLOURS[i % len(PERSON_COLOURS)] if i in shown else "lightgray"
        _outline(axes[0], b, colour)
        axes[0].text(float(b[0]) + 1, float(b[1]) + 1, str(i), color="black", fontsize=9, weight="bold",
                     va="top", bbox={"facecolor": colour, "edgecolor": "none", "pad": 1.0})
    axes[0].set_title(title or "people (gray: too few pixels of their own)", fontsize=9)
    axes[0].axis("off")
    for ax, (name, e) in zip(axes[1:], entries.items()):
        _tsne_scatter(ax, e["points"], e["labels"], e.get("score"))
        ax.set_title(f"{name}: {ax.get_title()}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig
