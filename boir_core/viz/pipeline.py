"""The BoIR pipeline as one picture (notebook 01 opens with it): image → backbone → neck and heads → centers →
instance head → poses, with the heads that exist only in training marked.

:data:`STAGES` lists the boxes (the test and the notebook read it); :func:`draw_pipeline` draws them with
matplotlib.
"""
from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

__all__ = ["Stage", "STAGES", "draw_pipeline"]


@dataclass(frozen=True)
class Stage:
    name: str
    text: str  # what it computes, in a few words
    column: int  # left to right
    row: float  # 0 = the inference path; > 0 above it; < 0 below it
    train_only: bool = False


STAGES: tuple[Stage, ...] = (
    Stage("image", "image\nS_in × S_in", 0, 0),
    Stage("backbone", "HRNet backbone\nmap F (stride 4)", 1, 0),
    Stage("neck", "ASPP neck", 2, 0),
    Stage("center", "center head\nheatmap c", 3, 0),
    Stage("buk", "BUK head\n(all joints)", 3, 1.15, train_only=True),
    Stage("emb", "embedding head e\n(Bbox Mask Loss)", 3, 2.3, train_only=True),
    Stage("bbox", "bbox head\n(l, t, r, b)", 3, -1.15, train_only=True),
    Stage("centers", "peaks of c\n= people", 4, 0),
    Stage("instance", "instance head\nK heatmaps\nper person", 5, 0),
    Stage("poses", "poses\nK keypoints each", 6, 0),
)

_EDGES = (("image", "backbone"), ("backbone", "neck"), ("neck", "center"), ("neck", "buk"), ("neck", "emb"),
          ("neck", "bbox"), ("center", "centers"), ("centers", "instance"), ("instance", "poses"))


def draw_pipeline(ax=None):
    """Draw :data:`STAGES` (train-only heads dashed and grey) with the backbone map F feeding the instance head;
    returns the figure."""
    if ax is None:
        _, ax = plt.subplots(figsize=(15, 4.4))
    at = {s.name: (s.column * 2.2, s.row) for s in STAGES}
    w, h = 1.9, 0.9
    for s in STAGES:
        x, y = at[s.name]
        ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.03",
                                    fc="#eeeeee" if s.train_only else "#d8e8ff",
                                    ec="grey" if s.train_only else "#1f4e99",
                                    ls="--" if s.train_only else "-", lw=1.5))
        ax.text(x, y, s.text, ha="center", va="center", fontsize=8.5,
                color="dimgrey" if s.train_only else "black")
    for a, b in _EDGES:
        (xa, ya), (xb, yb) = at[a], at[b]
        ax.add_patch(FancyArrowPatch((xa + w / 2, ya), (xb - w / 2, yb), arrowstyle="-|>", mutation_scale=12,
                                     color="grey" if b in ("buk", "emb", "bbox") else "black", lw=1.2))
    (xb, yb), (xi, yi) = at["backbone"], at["instance"]  # F goes to the instance head as well
    ax.add_patch(FancyArrowPatch((xb, yb - h / 2), (xi, yi - h / 2), connectionstyle="arc3,rad=0.4",
                                 arrowstyle="-|>", mutation_scale=12, color="#1f4e99", lw=1.2))
    ax.text((xb + xi) / 2, -2.45, "the backbone map F, read at each center", ha="center", fontsize=8,
            color="#1f4e99")
    ax.text(at["buk"][0] + w / 2 + 0.15, 2.3, "dashed: training only\n(auxiliary heads, dropped\nat inference)",
            fontsize=8, color="dimgrey", va="center")
    ax.set_xlim(-1.1, 15.6)
    ax.set_ylim(-2.6, 2.9)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title("BoIR: one network, centers first, then each person's keypoints", fontsize=10)
    return ax.figure
