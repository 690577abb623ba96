"""Explorers: a knob a student turns, a drawing that follows (ipywidgets + matplotlib).

Every explorer has the same shape: ``controls`` (sliders and dropdowns), ``compute()`` (plain numbers from
the current control values), ``draw(result)`` (a matplotlib ``Figure``), and ``update()`` which runs both,
keeps the PNG bytes of the drawing in ``png`` and shows them in the widget's ``Image``. The notebooks only
place them with :func:`place`, which also leaves the first drawing as an ordinary output so that static
renders (GitHub, nbviewer, an executed notebook opened without a kernel) show it. The widget carries the CSS
class ``boir-explorer`` (the browser test finds explorers by it).

- :class:`AugmentationExplorer` (notebook 01): scale, rotation, translation and flip → the sample and its
  targets redrawn;
- :class:`FrozenEmbeddingExplorer` (notebook 03): a fixed embedding map, one box moved → the Bbox Mask Loss
  terms of that box (a misplaced box is punished), with distance, kernel and seed controls;
- :class:`DecodingExplorer` (notebook 05): center threshold, pooling kernel, proposals, OKS-NMS threshold,
  flip → the decoded poses redrawn, with counts;
- :class:`SimilarityPairExplorer` (notebook 07): a query pixel → the similarity maps of two models (BoIR and
  CID) side by side.

The explorers of a single formula (the kernel ψ, OKS, the focal loss) are in :mod:`boir_core.viz.formula_explorers`.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from ..data.transforms import AffineParams, denormalize_image
from ..engine.inference.decode import DecodeSettings, decode
from ..losses.bbox_mask import BboxMaskSettings, bbox_mask_terms
from .draw import draw_poses
from .figures import feature_at, similarity_from_point
from .png import figure_png
from .widgets import explore_terms

__all__ = ["Explorer", "AugmentationExplorer", "FrozenEmbeddingExplorer", "DecodingExplorer",
           "SimilarityPairExplorer", "place", "figure_png", "fit_embedding"]


def _widgets():
    import ipywidgets  # imported on use: the rest of the kit does not need it

    return ipywidgets


def _figure(*args, **kwargs):
    """A figure that pyplot does not track (nothing is shown twice by the inline backend)."""
    fig = Figure(*args, **kwargs)
    return fig


class Explorer:
    """Base class: rows of controls, a caption, an output; subclasses implement ``compute`` and ``draw``."""

    def __init__(self, rows: Sequence[Sequence[Any]]):
        w = _widgets()
        self.rows = [list(r) for r in rows]
        self.caption = w.HTML()
        self.image = w.Image(format="png")  # the drawing (an Image widget: no output capture, renders anywhere)
        for c in self.controls:
            c.observe(lambda change: self.update(), names="value")
        self.widget = w.VBox([*(w.HBox(r) for r in self.rows), self.caption, self.image])
        self.widget.add_class("boir-explorer")
        self.last: Any = None
        self.png: bytes = b""

    @property
    def controls(self) -> list:
        return [c for r in self.rows for c in r]

    def compute(self) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def draw(self, result: Any):  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self, result: Any) -> str:
        return ""

    def update(self, draw: bool = True) -> Any:
        """Recompute for the current control values; redraw when ``draw``. Returns the result."""
        res = self.compute()
        self.last = res
        self.caption.value = self.describe(res)
        if draw:
            self.png = figure_png(self.draw(res))
            self.image.value = self.png
        return res


def place(explorer: Explorer) -> Explorer:
    """Show ``explorer`` in a notebook: its first drawing as an ordinary output, then the live widget."""
    from IPython.display import HTML, Image, display  # local: optional, only a notebook shows explorers

    if not explorer.png:
        explorer.update()
    display(Image(explorer.png))
    display(HTML("<i>Above: the first drawing (what a static render shows). Below: the explorer; move its "
                 "controls with a live kernel.</i>"))
    display(explorer.widget)
    return explorer


def _slider(kind: str, value, lo, hi, step, description: str):
    w = _widgets()
    cls = {"float": w.FloatSlider, "int": w.IntSlider}[kind]
    return cls(value=value, min=lo, max=hi, step=step, description=description, continuous_update=False,
               style={"description_width": "initial"})


def _dropdown(options, value, description: str):
    return _widgets().Dropdown(options=options, value=value, description=description,
                               style={"description_width": "initial"})


# ---------------------------------------------------------------- notebook 01: augmentation
class AugmentationExplorer(Explorer):
    """One training sample of ``dataset`` (a train-mode :class:`boir_core.data.KeypointDataset`) under a
    pinned augmentation: scale (× the base crop, the short image side), rotation (degrees), translation
    (original pixels) and flip; the drawing shows the augmented input with its people and one target map."""

    VIEWS = ("center heatmap", "keypoint heatmaps (BUK)", "instance heatmaps", "ignore mask")

    def __init__(self, dataset, index: int = 0, skeleton: Sequence[tuple[int, int]] = ()):
        self.dataset, self.skeleton = dataset, list(skeleton)
        self.index = int(index)
        h, w = dataset.read(self.index).shape[:2]
        self.size = (w, h)
        shift = int(0.3 * min(w, h))
        self.scale = _slider("float", 1.0, 0.5, 2.0, 0.05, "scale")
        self.rotation = _slider("float", 0.0, -45.0, 45.0, 1.0, "rotation °")
        self.dx = _slider("int", 0, -shift, shift, 1, "shift x px")
        self.dy = _slider("int", 0, -shift, shift, 1, "shift y px")
        self.flip = _dropdown(["no flip", "flip"], "no flip", "flip")
        self.view = _dropdown(list(self.VIEWS), self.VIEWS[0], "target")
        super().__init__([[self.scale, self.rotation], [self.dx, self.dy], [self.flip, self.view]])

    def params(self):
        w, h = self.size
        return AffineParams(center=(w / 2.0 + float(self.dx.value), h / 2.0 + float(self.dy.value)),
                            scale=min(w, h) / 200.0 * float(self.scale.value), rotation=float(self.rotation.value),
                            flip=self.flip.value == "flip")

    def compute(self) -> dict:
        return self.dataset.load_train(self.index, params=self.params())

    def describe(self, s: dict) -> str:
        n = len(s["instance_coord"])
        k = int((s["instance_keypoints"][..., 2] > 0).sum()) if n else 0
        return f"{n} people with a center, {k} labelled keypoints on the map"

    def draw(self, s: dict):
        fig = _figure(figsize=(9, 4.6))
        ax0, ax1 = fig.subplots(1, 2)
        s_in = s["image"].shape[-1]
        s_out = s["multi_mask"].shape[-1]
        ax0.imshow(denormalize_image(s["image"]))
        kp = s["instance_keypoints"].numpy() * (s_in / s_out)
        for i, person in enumerate(kp):
            c = f"C{i % 10}"
            vis = person[:, 2] > 0
            for a, b in self.skeleton:
                if vis[a] and vis[b]:
                    ax0.plot(person[[a, b], 0], person[[a, b], 1], "-", color=c, lw=1.2)
            ax0.scatter(person[vis, 0], person[vis, 1], s=6, color=c)
        for i, (x, y, bw, bh) in enumerate(s["instance_bbox"].numpy() * (s_in / s_out)):
            ax0.add_patch(__import__("matplotlib.patches", fromlist=["Rectangle"]).Rectangle(
                (x, y), bw, bh, fill=False, ec=f"C{i % 10}", lw=1))
        ax0.set_xlim(0, s_in), ax0.set_ylim(s_in, 0)
        p = self.params()
        ax0.set_title(f"scale {self.scale.value:.2f}, rotation {p.rotation:.0f}°\nshift ({self.dx.value}, "
                      f"{self.dy.value}) px, {'flipped' if p.flip else 'not flipped'}", fontsize=8)
        k = s["multi_heatmap"].shape[0] - 1
        view = self.view.value
        if view == self.VIEWS[0]:
            m = s["multi_heatmap"][k]
        elif view == self.VIEWS[1]:
            m = s["multi_heatmap"][:k].amax(0)
        elif view == self.VIEWS[2]:
            m = s["instance_heatmap"].amax((0, 1)) if len(s["instance_heatmap"]) else torch.zeros(s_out, s_out)
        else:
            m = s["multi_mask"][0]
        ax1.imshow(m.numpy(), cmap="gray" if view == self.VIEWS[3] else "magma", vmin=0, vmax=1)
        if view != self.VIEWS[3] and len(s["instance_coord"]):
            yx = s["instance_coord"].numpy()
            ax1.scatter(yx[:, 1], yx[:, 0], s=14, facecolors="none", edgecolors="cyan")
        ax1.set_title(f"{view} ({s_out}×{s_out})\n{self.describe(s)}", fontsize=8)
        for ax in (ax0, ax1):
            ax.set_axis_off()
        return fig


# ---------------------------------------------------------------- notebook 03: freeze the embedding, move a box
#: Adam's learning rate in :func:`fit_embedding`
FIT_LR = 0.1


def fit_embedding(boxes: Sequence[Sequence[float]], size: int = 32, dim: int = 16, beta: float = 10.0,
                  steps: int = 60, seed: int = 0) -> torch.Tensor:
    """An embedding map [D, size, size] *trained* with the Bbox Mask Loss (paper variant) for ``boxes``: the map
    itself is the parameter, started from small noise and moved by Adam (learning rate :data:`FIT_LR`) for
    ``steps`` steps. A trained map for the explorers, free of any network. Cached: the same arguments return
    the same (shared) tensor."""
    key = (tuple(tuple(float(v) for v in b) for b in boxes), int(size), int(dim), float(beta), int(steps), int(seed))
    if key not in _FITTED:
        _FITTED[key] = _fit_embedding(*key)
    return _FITTED[key]


_FITTED: dict = {}


def _fit_embedding(boxes, size, dim, beta, steps, seed) -> torch.Tensor:
    g = torch.Generator().manual_seed(int(seed))
    emb = (0.1 * torch.randn(dim, size, size, generator=g, dtype=torch.float64)).requires_grad_(True)
    bbox = torch.tensor(boxes, dtype=torch.float64).reshape(-1, 4)
    centers = bbox[:, :2] + bbox[:, 2:] / 2
    imgid = torch.zeros(len(bbox), dtype=torch.long)
    opt = torch.optim.Adam([emb], lr=FIT_LR)
    settings = BboxMaskSettings(beta=beta)
    for _ in range(int(steps)):
        opt.zero_grad()
        bbox_mask_terms(emb[None], bbox, imgid, centers, settings).loss.backward()
        opt.step()
    return emb.detach()


class FrozenEmbeddingExplorer(Explorer):
    """The embedding map is frozen (trained for the true boxes, :func:`fit_embedding`); the student moves one
    box away from its person and sees the Bbox Mask Loss terms of the frozen map rise: a misplaced box is
    punished. Controls: which box, its x / y, the distance, the kernel and the seed of the trained map."""

    def __init__(self, boxes: Sequence[Sequence[float]], size: int = 32, dim: int = 16, beta: float = 10.0,
                 seed: int = 0, steps: int = 60):
        if len(boxes) < 2:
            raise ValueError(f"the explorer needs at least two boxes, got {len(boxes)}")
        self.true_boxes = [tuple(float(v) for v in b) for b in boxes]
        self.size, self.dim, self.beta, self.steps = size, dim, beta, steps
        self._maps: dict[int, torch.Tensor] = {}
        self.dx = _slider("float", 0.0, -size / 2, size / 2, 0.5, "move x")
        self.dy = _slider("float", 0.0, -size / 2, size / 2, 0.5, "move y")
        self.box = _dropdown(list(range(len(boxes))), 0, "box")
        self.distance = _dropdown(["l2", "cosine"], "l2", "distance")
        self.kernel = _dropdown(["ae", "contrastive"], "ae", "kernel")
        self.seed = _slider("int", int(seed), 0, 9, 1, "seed")
        super().__init__([[self.dx, self.dy], [self.box, self.distance, self.kernel], [self.seed]])

    def embedding(self) -> torch.Tensor:
        s = int(self.seed.value)
        if s not in self._maps:
            self._maps[s] = fit_embedding(self.true_boxes, self.size, self.dim, self.beta, self.steps, seed=s)
        return self._maps[s]

    def moved_boxes(self) -> list[tuple[float, float, float, float]]:
        out = list(self.true_boxes)
        x, y, w, h = out[int(self.box.value)]
        out[int(self.box.value)] = (x + float(self.dx.value), y + float(self.dy.value), w, h)
        return out

    def compute(self) -> dict:
        emb = self.embedding()
        settings = BboxMaskSettings(kernel=self.kernel.value, distance=self.distance.value, beta=self.beta)
        return {"true": explore_terms(self.true_boxes, settings, emb),
                "moved": explore_terms(self.moved_boxes(), settings, emb), "emb": emb}

    def describe(self, r: dict) -> str:
        k = int(self.box.value)
        t, m = r["true"]["per_instance"], r["moved"]["per_instance"]
        parts = ", ".join(f"{name} {t[name][k]:.4f} → {m[name][k]:.4f}"
                          for name in ("pull_in", "push_out", "push_inst"))
        return f"box {k} (true → moved): {parts}; total {r['true']['total']:.4f} → {r['moved']['total']:.4f}"

    def draw(self, r: dict):
        k = int(self.box.value)
        e = torch.nn.functional.normalize(r["emb"], dim=0)[:3]
        rgb = ((e - e.min()) / (e.max() - e.min() + 1e-12)).permute(1, 2, 0).numpy()
        fig = _figure(figsize=(10, 3.4))
        axes = fig.subplots(1, 3)
        axes[0].imshow(rgb)
        for i, (b, mb) in enumerate(zip(self.true_boxes, self.moved_boxes())):
            axes[0].add_patch(Rectangle((b[0] - 0.5, b[1] - 0.5), b[2], b[3], fill=False, ec="w", ls="--", lw=1))
            if i == k:
                axes[0].add_patch(Rectangle((mb[0] - 0.5, mb[1] - 0.5), mb[2], mb[3], fill=False, ec="r", lw=2))
        axes[0].set_title(f"frozen map (seed {self.seed.value}), box {k} moved by ({self.dx.value:+.1f}, "
                          f"{self.dy.value:+.1f})", fontsize=8)
        axes[1].imshow(r["moved"]["soft_masks"][k], vmin=0, vmax=1)
        pr, pc = r["moved"]["points"][k]
        axes[1].plot(pc, pr, "ro", ms=4)
        axes[1].set_title(f"soft mask of the moved box ({self.distance.value}, {self.kernel.value})", fontsize=8)
        names = ["pull_in", "push_out", "push_inst"]
        x = np.arange(3)
        axes[2].bar(x - 0.2, [r["true"]["per_instance"][n][k] for n in names], 0.4, label="true box")
        axes[2].bar(x + 0.2, [r["moved"]["per_instance"][n][k] for n in names], 0.4, label="moved box")
        axes[2].set_xticks(x, names)
        axes[2].legend(fontsize=7)
        axes[2].set_title(f"box {k}'s terms", fontsize=8)
        for ax in axes[:2]:
            ax.set_axis_off()
        fig.tight_layout()
        return fig


# ---------------------------------------------------------------- notebook 05: decoding knobs
class DecodingExplorer(Explorer):
    """Decode one test sample with the knobs of docs/inference.md#decoding-steps and draw the poses on the
    original image, with counts (center peaks kept → people after OKS-NMS → people drawn above ``min_score``)."""

    def __init__(self, model, sample: Mapping[str, Any], original: np.ndarray, settings: DecodeSettings,
                 skeleton: Sequence[tuple[int, int]], min_score: float = 0.05):
        self.model, self.sample, self.original = model, sample, original
        self.settings, self.skeleton, self.min_score = settings, list(skeleton), min_score
        self.threshold = _slider("float", float(settings.center_threshold), 0.0, 0.5, 0.01, "center threshold")
        self.proposals = _slider("int", int(settings.max_proposals), 1, 60, 1, "proposals")
        self.nms = _slider("float", float(settings.oks_nms_threshold), 0.1, 1.0, 0.05, "OKS-NMS")
        kernels = sorted({3, 5, 7, 11, int(settings.center_pool_kernel)})
        self.flip = _dropdown(["flip test", "no flip"], "flip test" if settings.flip_test else "no flip", "flip")
        self.kernel = _dropdown(kernels, int(settings.center_pool_kernel), "pooling kernel")
        super().__init__([[self.threshold, self.proposals, self.nms], [self.flip, self.kernel]])

    def compute(self):
        settings = dataclasses.replace(
            self.settings, center_threshold=float(self.threshold.value), max_proposals=int(self.proposals.value),
            oks_nms_threshold=float(self.nms.value), center_pool_kernel=int(self.kernel.value),
            flip_test=self.flip.value == "flip test")
        return decode(self.model, self.sample["image"], self.sample["meta"], settings, return_intermediates=True)

    def counts(self, res) -> tuple[int, int, int]:
        peaks = len(res.intermediates["peaks_yx"])
        return peaks, len(res.poses), sum(p["score"] >= self.min_score for p in res.poses)

    def describe(self, res) -> str:
        peaks, kept, shown = self.counts(res)
        return f"{peaks} center peaks → {kept} people after OKS-NMS → {shown} drawn (score ≥ {self.min_score})"

    def draw(self, res):
        fig = _figure(figsize=(5.5, 5))
        ax = fig.subplots()
        ax.imshow(draw_poses(self.original, res.poses, self.skeleton, min_score=self.min_score))
        ax.set_title(f"threshold {self.threshold.value:.2f}, kernel {self.kernel.value}, {self.proposals.value} "
                     f"proposals, OKS-NMS {self.nms.value:.2f}, {self.flip.value}\n{self.describe(res)}", fontsize=8)
        ax.set_axis_off()
        return fig


# ---------------------------------------------------------------- notebook 07: a query pixel, two models
class SimilarityPairExplorer(Explorer):
    """A query pixel (row / column sliders, map pixels) → its Gaussian-kernel similarity to every pixel, for
    each model's backbone features side by side (BoIR beside CID)."""

    BANDWIDTHS = {"median": "median", "median / 4": 0.25, "median × 4": 4.0}

    def __init__(self, canvas: np.ndarray, features: Mapping[str, Any], similarity: Optional[Callable] = None):
        self.canvas = canvas
        self.features = {k: (v.detach().cpu().numpy() if torch.is_tensor(v) else np.asarray(v))
                         for k, v in features.items()}
        shapes = {v.shape[-2:] for v in self.features.values()}
        if len(shapes) != 1:
            raise ValueError(f"the models' feature maps differ in size: {shapes}")
        h, w = shapes.pop()
        self._sim = similarity or similarity_from_point
        self.row = _slider("int", h // 2, 0, h - 1, 1, "row")
        self.col = _slider("int", w // 2, 0, w - 1, 1, "column")
        self.bandwidth = _dropdown(list(self.BANDWIDTHS), "median", "bandwidth h")
        super().__init__([[self.row, self.col], [self.bandwidth]])

    def _h(self, feats: np.ndarray, yx) -> Any:
        choice = self.BANDWIDTHS[self.bandwidth.value]
        if choice == "median":
            return "median"
        d2 = ((feats - feature_at(feats, yx)[:, None, None]) ** 2).sum(0)
        return float(np.median(d2) * choice) + 1e-12

    def compute(self) -> dict:
        yx = (int(self.row.value), int(self.col.value))
        return {name: self._sim(f, yx, self._h(f, yx)) for name, f in self.features.items()}

    def describe(self, maps: dict) -> str:
        return "; ".join(f"{n}: mean similarity {float(np.mean(m)):.3f}" for n, m in maps.items())

    def draw(self, maps: dict):
        n = len(maps)
        fig = _figure(figsize=(3.6 * (n + 1), 3.6))
        axes = fig.subplots(1, n + 1)
        stride = self.canvas.shape[0] / next(iter(maps.values())).shape[0]
        y, x = (int(self.row.value) + 0.5) * stride, (int(self.col.value) + 0.5) * stride
        axes[0].imshow(self.canvas)
        axes[0].plot(x, y, "c+", ms=14, mew=2)
        axes[0].set_title(f"query pixel (row {self.row.value}, column {self.col.value})", fontsize=8)
        for ax, (name, m) in zip(axes[1:], maps.items()):
            ax.imshow(m, cmap="magma", vmin=0, vmax=1)
            ax.plot(int(self.col.value), int(self.row.value), "c+", ms=12, mew=2)
            ax.set_title(f"{name}: similarity (h = {self.bandwidth.value})", fontsize=8)
        for ax in axes:
            ax.set_axis_off()
        fig.tight_layout()
        return fig
