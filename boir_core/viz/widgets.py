"""Interactive explorers for notebook 03 (ipywidgets + matplotlib).

- :class:`LossExplorer`: two or more boxes on a toy embedding map; sliders move and resize them (overlap
  by moving one onto the other) and set β, D, the variant and the kernel. Shows pull_in, push_out,
  push_inst and the soft mask of every box.
- :class:`SimilarityViewer`: pick a pixel of an embedding map and see its similarity to every pixel.

The numbers come from plain functions (:func:`toy_embedding`, :func:`explore_terms`), and each widget's
callback is a plain method (``update``) that returns what it drew, so everything can be tested headless.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import Rectangle

from ..config import LossConfig
from ..losses.bbox_mask import PAPER, VARIANTS, BboxMaskSettings, bbox_mask_terms, box_masks, instance_pixels
from .png import figure_png
from .similarity import similarity_map

__all__ = ["ToyMap", "toy_embedding", "explore_terms", "LossExplorer", "SimilarityViewer", "loss_explorer",
           "similarity_viewer"]

DEFAULT_BOXES = ((4.0, 6.0, 12.0, 18.0), (12.0, 8.0, 12.0, 16.0))
#: τ of the contrastive kernel (soft mask exp(−‖·‖²/(2τ))): the config's default ``loss.temperature``, 0.05, CID's
#: InfoNCE temperature (also the default of :class:`boir_core.losses.BboxMaskSettings`)
TEMPERATURE = LossConfig().temperature


def toy_embedding(boxes: Sequence[Sequence[float]], size: int = 32, dim: int = 16, noise: float = 0.3,
                  seed: int = 0) -> torch.Tensor:
    """A [D, size, size] map where the pixels of box k share one random direction (later boxes in front),
    the background another, plus Gaussian noise of std ``noise``. A stand-in for a trained embedding."""
    if dim < 1 or size < 2:
        raise ValueError(f"need dim >= 1 and size >= 2, got dim={dim}, size={size}")
    g = torch.Generator().manual_seed(seed)
    protos = torch.nn.functional.normalize(torch.randn(len(boxes) + 1, dim, generator=g, dtype=torch.float64), dim=1)
    owner = torch.zeros(size, size, dtype=torch.long)  # 0 = background
    if len(boxes):
        masks = box_masks(torch.tensor(boxes, dtype=torch.float64), size, size)
        for k in range(len(boxes)):  # a handful of boxes: drawing order matters (occlusion)
            owner[masks[k]] = k + 1
    emb = protos[owner].permute(2, 0, 1) + noise * torch.randn(dim, size, size, generator=g, dtype=torch.float64)
    return emb


@dataclass(frozen=True)
class ToyMap:
    """The toy embedding map of :func:`toy_embedding`: ``size`` × ``size`` pixels, D = ``dim``, noise of std
    ``noise``, drawn with ``seed``."""

    size: int = 32
    dim: int = 16
    noise: float = 0.3
    seed: int = 0

    def embedding(self, boxes: Sequence[Sequence[float]]) -> torch.Tensor:
        """The map [D, size, size] for ``boxes`` (:func:`toy_embedding`)."""
        return toy_embedding(boxes, self.size, self.dim, self.noise, self.seed)


def explore_terms(boxes: Sequence[Sequence[float]], settings: BboxMaskSettings = PAPER,
                  emb: Optional[torch.Tensor] = None, toy: ToyMap = ToyMap()) -> dict:
    """Bbox Mask Loss terms and soft masks for ``boxes`` (xywh in map pixels) under ``settings`` (variant, kernel,
    distance, β and τ; :class:`~boir_core.losses.BboxMaskSettings`, default the paper's) on the map ``emb``
    [D, H, W] (default: the toy map ``toy.embedding(boxes)``, :class:`ToyMap`).

    Returns ``pull_in``, ``push_out``, ``push_inst``, ``total`` (floats, after the variant's normalisation),
    ``per_instance`` (dict of lists), ``soft_masks`` [K, H, W] (numpy; the weights s_i inside B_i as the
    variant defines them), ``points`` (row, col) of the p_i and ``emb`` [D, H, W].
    """
    if emb is None:
        emb = toy.embedding(boxes)
    d, h, w = emb.shape
    bbox = torch.tensor(boxes, dtype=torch.float64).reshape(-1, 4)
    centers = bbox[:, :2] + bbox[:, 2:] / 2
    imgid = torch.zeros(len(bbox), dtype=torch.long)
    t = bbox_mask_terms(emb[None].double(), bbox, imgid, centers, settings)
    variant, kernel, beta = settings.variant, settings.kernel, settings.beta
    points = instance_pixels(bbox, h, w, variant, "center", centers)
    masks = box_masks(bbox, h, w, variant).double()
    if variant == "paper" and kernel == "ae":
        kern, b = "gaussian", beta
    elif variant == "paper":  # contrastive: exp(−‖·‖²/(2τ)) = the Gaussian with β/D = 1/(2τ)
        kern, b = "gaussian", d / (2 * settings.temperature)
    else:
        kern, b = "release", beta
    soft = torch.stack([similarity_map(emb, point=tuple(pt.tolist()), beta=b, kernel=kern) for pt in points]) \
        if len(bbox) else torch.zeros(0, h, w, dtype=torch.float64)
    return {
        "pull_in": float(t.loss_pull_in), "push_out": float(t.loss_push_out), "push_inst": float(t.loss_push_inst),
        "total": float(t.loss),
        "per_instance": {k: getattr(t, k).tolist() for k in ("pull_in", "push_out", "push_inst")},
        "soft_masks": (soft * masks).numpy(), "points": [tuple(p) for p in points.tolist()], "emb": emb,
    }


def _widgets():
    import ipywidgets  # imported on use: the rest of the kit does not need it

    return ipywidgets


class LossExplorer:
    """Sliders for two or more boxes, β, D, variant and kernel; ``update()`` recomputes and redraws."""

    def __init__(self, boxes: Sequence[Sequence[float]] = DEFAULT_BOXES, size: int = 32, beta: float = 10.0,
                 dim: int = 16, noise: float = 0.3, seed: int = 0):
        if len(boxes) < 2:
            raise ValueError(f"the loss explorer needs at least two boxes, got {len(boxes)}")
        w = _widgets()
        self.size, self.noise, self.seed = size, noise, seed
        self.box_sliders = []
        for k, (x, y, bw, bh) in enumerate(boxes):
            row = [w.FloatSlider(value=v, min=lo, max=hi, step=0.5, description=f"{name}{k}", continuous_update=False)
                   for v, name, lo, hi in ((x, "x", -4, size), (y, "y", -4, size), (bw, "w", 0.2, size),
                                           (bh, "h", 0.2, size))]
            self.box_sliders.append(row)
        self.beta = w.FloatLogSlider(value=beta, base=10, min=-1, max=2, step=0.05, description="β",
                                     continuous_update=False)
        self.dim = w.Dropdown(options=[1, 8, 16, 32, 64, 128], value=dim, description="D")
        self.variant = w.Dropdown(options=list(VARIANTS), value="paper", description="variant")
        self.kernel = w.Dropdown(options=["ae", "contrastive"], value="ae", description="kernel")
        self.image = w.Image(format="png")
        self.text = w.HTML()
        for c in self.controls:
            c.observe(lambda change: self.update(), names="value")
        self.widget = w.VBox([*(w.HBox(r) for r in self.box_sliders), w.HBox([self.beta, self.dim]),
                              w.HBox([self.variant, self.kernel]), self.text, self.image])
        self.widget.add_class("boir-explorer")  # how the browser test finds every explorer on the page
        self.last: dict = {}
        self.png = b""

    @property
    def controls(self):
        return [s for row in self.box_sliders for s in row] + [self.beta, self.dim, self.variant, self.kernel]

    @property
    def boxes(self) -> list[tuple[float, float, float, float]]:
        return [tuple(float(s.value) for s in row) for row in self.box_sliders]

    def update(self, draw: bool = True) -> dict:
        """Recompute the terms for the current slider values; redraw when ``draw``. Returns the result."""
        kernel = self.kernel.value if self.variant.value == "paper" else "ae"
        settings = BboxMaskSettings(variant=self.variant.value, kernel=kernel, beta=float(self.beta.value))
        res = explore_terms(self.boxes, settings, toy=ToyMap(self.size, int(self.dim.value), self.noise, self.seed))
        self.last = res
        self.text.value = (f"<b>{self.variant.value}</b> ({kernel}): pull_in = {res['pull_in']:.4f}, "
                           f"push_out = {res['push_out']:.4f}, push_inst = {res['push_inst']:.4f}, "
                           f"total = {res['total']:.4f}")
        if draw:
            self.png = figure_png(draw_soft_masks(res, self.boxes))
            self.image.value = self.png
        return res


def draw_soft_masks(res: dict, boxes: Sequence[Sequence[float]]):
    """One panel per box: its soft mask s_i inside B_i, the box outline and p_i (red dot)."""
    k = len(res["soft_masks"])
    fig, axes = plt.subplots(1, k, figsize=(3 * k, 3), squeeze=False)
    for i, ax in enumerate(axes[0]):
        ax.imshow(res["soft_masks"][i], vmin=0, vmax=1, cmap="viridis")
        x, y, w, h = boxes[i]
        ax.add_patch(Rectangle((x - 0.5, y - 0.5), w, h, fill=False, ec="w", lw=1.5))  # pixel u spans u−½…u+½ in imshow
        r, c = res["points"][i]
        ax.plot(c, r, "ro", ms=4)
        ax.set_title(f"box {i}: soft mask s_{i}")
        ax.set_axis_off()
    fig.tight_layout()
    return fig


class SimilarityViewer:
    """Pick a pixel (row / column sliders) of a [D, H, W] map and see its similarity to every pixel."""

    def __init__(self, emb: torch.Tensor, beta: float = 10.0, kernel: str = "gaussian",
                 image: Optional[np.ndarray] = None):
        emb = torch.as_tensor(emb)
        if emb.dim() != 3:
            raise ValueError(f"emb must be [D, H, W], got shape {tuple(emb.shape)}")
        w = _widgets()
        self.emb, self.picture = emb, image
        _, h, wd = emb.shape
        self.row = w.IntSlider(value=h // 2, min=0, max=h - 1, description="row", continuous_update=False)
        self.col = w.IntSlider(value=wd // 2, min=0, max=wd - 1, description="column", continuous_update=False)
        self.beta = w.FloatLogSlider(value=beta, base=10, min=-1, max=2, step=0.05, description="β",
                                     continuous_update=False)
        self.kernel = w.Dropdown(options=["gaussian", "release", "cosine"], value=kernel, description="kernel")
        self.image = w.Image(format="png")
        for c in (self.row, self.col, self.beta, self.kernel):
            c.observe(lambda change: self.update(), names="value")
        self.widget = w.VBox([w.HBox([self.row, self.col]), w.HBox([self.beta, self.kernel]), self.image])
        self.widget.add_class("boir-explorer")
        self.png = b""

    def update(self, draw: bool = True) -> torch.Tensor:
        sim = similarity_map(self.emb, point=(self.row.value, self.col.value), beta=float(self.beta.value),
                             kernel=self.kernel.value)
        if draw:
            panels = 2 if self.picture is not None else 1
            fig, axes = plt.subplots(1, panels, figsize=(3.5 * panels, 3.5), squeeze=False)
            if self.picture is not None:
                axes[0, 0].imshow(self.picture)
                axes[0, 0].set_axis_off()
            ax = axes[0, -1]
            ax.imshow(sim.numpy(), cmap="magma", vmin=-1 if self.kernel.value == "cosine" else 0, vmax=1)
            ax.plot(self.col.value, self.row.value, "c+", ms=10)
            ax.set_title(f"{self.kernel.value} similarity to ({self.row.value}, {self.col.value})")
            ax.set_axis_off()
            self.png = figure_png(fig)
            self.image.value = self.png
        return sim


def loss_explorer(**kwargs) -> LossExplorer:
    """Build a :class:`LossExplorer`, draw it once and return it (``display(ex.widget)`` in a notebook)."""
    ex = LossExplorer(**kwargs)
    ex.update()
    return ex


def similarity_viewer(emb: torch.Tensor, **kwargs) -> SimilarityViewer:
    """Build a :class:`SimilarityViewer`, draw it once and return it."""
    v = SimilarityViewer(emb, **kwargs)
    v.update()
    return v
