"""Explorers of one formula each: a knob on a number of the formula, its curve redrawn.

Same shape as :mod:`boir_core.viz.explorers` (``compute`` → plain numbers, ``draw`` → a figure; place them with
:func:`boir_core.viz.explorers.place`). Every number they show comes from the kit's own function, not from a
copy of the formula: :func:`boir_core.losses.psi`, :func:`boir_core.engine.evaluation.coco_ap.oks_matrix`,
:func:`boir_core.losses.focal_loss`.

- :class:`KernelExplorer` (notebook 03): the Bbox Mask Loss kernel ψ = exp(−β/D·r) against r = ‖a − b‖², for β
  and D, beside the release's soft mask exp(−β·r) (the missing 1/D), over the distances that two unrelated
  unit embeddings in D channels actually have;
- :class:`OKSExplorer` (notebook 05): one keypoint's OKS term against the error in pixels and the person's
  size, for each keypoint type's σ;
- :class:`FocalLossExplorer` (notebook 01): CornerNet's focal loss of one pixel against its predicted p and its
  Gaussian target Y, beside plain binary cross-entropy.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from ..engine.evaluation.coco_ap import OKS_THRESHOLDS, oks_matrix
from ..losses import focal_loss, psi
from .explorers import Explorer, _dropdown, _figure, _slider

__all__ = ["KernelExplorer", "OKSExplorer", "FocalLossExplorer", "random_unit_distances"]

R_MAX = 4.0  # the largest ‖a − b‖² of two unit vectors (a = −b)


def random_unit_distances(dim: int, pairs: int = 2000, seed: int = 0) -> np.ndarray:
    """r = ‖a − b‖² of ``pairs`` pairs of independent random unit vectors in ``dim`` dimensions (float64):
    where two unrelated people's embeddings sit before training (mean 2, spread ≈ 2·√(1/D))."""
    g = torch.Generator().manual_seed(int(seed))
    a = torch.nn.functional.normalize(torch.randn(pairs, int(dim), generator=g, dtype=torch.float64), dim=1)
    b = torch.nn.functional.normalize(torch.randn(pairs, int(dim), generator=g, dtype=torch.float64), dim=1)
    return ((a - b) ** 2).sum(1).numpy()


# ---------------------------------------------------------------- notebook 03: the kernel ψ
class KernelExplorer(Explorer):
    """ψ(r) = exp(−β/D·r) (the paper's kernel, Eqs. 1, 8, 9) and the release's soft mask exp(−β·r) against
    r = ‖a − b‖² ∈ [0, 4] for unit embeddings; the histogram is r for random unit vectors in D dimensions, and
    the right panel what the chosen kernel makes of those random pairs (the push an untrained network pays)."""

    KERNELS = ("paper: exp(−β/D·r)", "release soft mask: exp(−β·r)")

    def __init__(self, beta: float = 10.0, dim: int = 32, seed: int = 0):
        self.seed = int(seed)
        self.beta = _slider("float", float(beta), 0.5, 40.0, 0.5, "β")
        self.dim = _slider("int", int(dim), 1, 256, 1, "D (channels)")
        self.kernel = _dropdown(list(self.KERNELS), self.KERNELS[0], "right panel")
        super().__init__([[self.beta, self.dim], [self.kernel]])

    def compute(self) -> dict:
        beta, dim = float(self.beta.value), int(self.dim.value)
        r = torch.linspace(0.0, R_MAX, 401, dtype=torch.float64)
        rand = random_unit_distances(dim, seed=self.seed)
        rand_t = torch.from_numpy(rand)
        return {"beta": beta, "dim": dim, "r": r.numpy(),
                "paper": psi(r, beta, dim).numpy(), "release": psi(r, beta, 1).numpy(),
                "half_paper": dim * math.log(2) / beta, "half_release": math.log(2) / beta,
                "floor_paper": float(psi(torch.tensor(R_MAX, dtype=torch.float64), beta, dim)),
                "random_r": rand,
                "random_paper": psi(rand_t, beta, dim).numpy(), "random_release": psi(rand_t, beta, 1).numpy(),
                "kernel": "paper" if self.kernel.value == self.KERNELS[0] else "release"}

    def describe(self, c: dict) -> str:
        half = (f"halves at r = D·ln2/β = {c['half_paper']:.3g}" if c["half_paper"] <= R_MAX else
                f"never halves (D·ln2/β = {c['half_paper']:.3g} > 4): every push is ≥ exp(−4β/D) = "
                f"{c['floor_paper']:.3f}")
        return (f"β = {c['beta']:g}, D = {c['dim']}: the paper's ψ {half}; the release's soft mask halves at "
                f"r = ln2/β = {c['half_release']:.3g}. Random unit pairs: mean ψ {c['random_paper'].mean():.3g} "
                f"(paper), {c['random_release'].mean():.3g} (release).")

    def draw(self, c: dict):
        fig = _figure(figsize=(9.5, 3.6))
        ax, ax2 = fig.subplots(1, 2)
        hist = ax.twinx()
        hist.hist(c["random_r"], bins=40, range=(0, R_MAX), color="0.85", density=True)
        hist.set_yticks([])
        ax.set_zorder(hist.get_zorder() + 1)
        ax.patch.set_visible(False)
        ax.plot(c["r"], c["paper"], "C0-", lw=2, label="paper ψ = exp(−β/D·r)")
        ax.plot(c["r"], c["release"], "C3--", lw=2, label="release soft mask exp(−β·r)")
        for key, col in (("half_paper", "C0"), ("half_release", "C3")):
            if c[key] <= R_MAX:
                ax.axvline(c[key], color=col, lw=0.8, ls=":")
        ax.set_xlim(0, R_MAX), ax.set_ylim(0, 1.02)
        ax.set_xlabel("r = ‖a − b‖² (unit vectors: 0 … 4)")
        ax.set_ylabel("ψ")
        ax.legend(fontsize=7, loc="upper right")
        ax.set_title(f"β = {c['beta']:g}, D = {c['dim']}; grey: r of random unit pairs", fontsize=9)
        vals = c["random_paper"] if c["kernel"] == "paper" else c["random_release"]
        ax2.hist(vals, bins=40, range=(0, 1), color="C0" if c["kernel"] == "paper" else "C3")
        ax2.set_xlim(0, 1)
        ax2.set_xlabel(f"ψ of random pairs ({c['kernel']})")
        ax2.set_ylabel("pairs")
        ax2.set_title(f"an untrained network's push: mean {vals.mean():.3g}", fontsize=9)
        fig.tight_layout()
        return fig


# ---------------------------------------------------------------- notebook 05: OKS
class OKSExplorer(Explorer):
    """One keypoint's OKS term exp(−d²/(2·s²·(2σ)²)) against the error d (px) and the person's size s (√area),
    computed by :func:`boir_core.engine.evaluation.coco_ap.oks_matrix` on a person with that one keypoint labelled. The
    right panel gives every keypoint type's term at the same d and s."""

    SIZES = (32.0, 64.0, 128.0, 256.0)

    def __init__(self, names: Sequence[str], sigmas: Sequence[float], keypoint: str | None = None,
                 error_px: float = 5.0, size_px: float = 64.0):
        if len(names) != len(sigmas) or not names:
            raise ValueError(f"OKSExplorer: {len(names)} keypoint names but {len(sigmas)} sigmas")
        self.names, self.sigmas = list(names), [float(s) for s in sigmas]
        self.error = _slider("float", float(error_px), 0.0, 40.0, 0.5, "error d (px)")
        self.size = _slider("int", int(size_px), 16, 320, 4, "person size s = √area (px)")
        self.keypoint = _dropdown(self.names, keypoint or self.names[0], "keypoint")
        super().__init__([[self.error, self.size], [self.keypoint]])

    def term(self, k: int, d: float, s: float) -> float:
        """OKS of a prediction d px off on keypoint k of a person of area s², only k labelled (oks_matrix)."""
        n = len(self.names)
        gt = [0.0] * (3 * n)
        gt[3 * k + 2] = 2
        pred = [0.0] * (3 * n)
        pred[3 * k] = float(d)
        return float(oks_matrix([pred], [{"keypoints": gt, "area": float(s) ** 2}], self.sigmas)[0, 0])

    def compute(self) -> dict:
        k = self.names.index(self.keypoint.value)
        d, s = float(self.error.value), float(self.size.value)
        errors = np.linspace(0.0, 40.0, 161)
        curves = {size: np.array([self.term(k, e, size) for e in errors]) for size in (*self.SIZES, s)}
        oks = self.term(k, d, s)
        return {"keypoint": self.keypoint.value, "k": k, "sigma": self.sigmas[k], "d": d, "s": s, "oks": oks,
                "errors": errors, "curves": curves,
                "all": np.array([self.term(j, d, s) for j in range(len(self.names))]),
                "thresholds_passed": int((oks >= OKS_THRESHOLDS).sum()),
                "d_half": math.sqrt(2 * math.log(2)) * s * 2 * self.sigmas[k]}

    def describe(self, c: dict) -> str:
        return (f"{c['keypoint']} (σ = {c['sigma']}) {c['d']:g} px off on a {c['s']:.0f}² px person: OKS term "
                f"{c['oks']:.3f}, a match at {c['thresholds_passed']} of the 10 thresholds 0.50 … 0.95; it is 0.5 at "
                f"d = 2σ·s·√(2 ln 2) = {c['d_half']:.2f} px")

    def draw(self, c: dict):
        fig = _figure(figsize=(9.5, 3.6))
        ax, ax2 = fig.subplots(1, 2)
        for i, size in enumerate(self.SIZES):
            ax.plot(c["errors"], c["curves"][size], color=f"C{i}", lw=1, label=f"s = {size:.0f} px")
        ax.plot(c["errors"], c["curves"][c["s"]], "k-", lw=2.2, label=f"s = {c['s']:.0f} px (yours)")
        ax.plot([c["d"]], [c["oks"]], "ko", ms=7)
        for t in (0.5, 0.95):
            ax.axhline(t, color="0.6", lw=0.8, ls=":")
        ax.set_xlim(0, 40), ax.set_ylim(0, 1.02)
        ax.set_xlabel("error d (px)"), ax.set_ylabel("OKS term")
        ax.set_title(f"{c['keypoint']} (σ = {c['sigma']}); dotted: thresholds 0.5 and 0.95", fontsize=9)
        ax.legend(fontsize=7)
        order = np.argsort(self.sigmas)
        colors = ["k" if j == c["k"] else "C0" for j in order]
        ax2.barh(range(len(order)), c["all"][order], color=colors)
        ax2.set_yticks(range(len(order)))
        ax2.set_yticklabels([f"{self.names[j]} ({self.sigmas[j]:.3f})" for j in order], fontsize=6)
        ax2.set_xlim(0, 1)
        ax2.set_xlabel(f"OKS term at d = {c['d']:g} px, s = {c['s']:.0f} px")
        ax2.set_title("every keypoint type (σ in brackets)", fontsize=9)
        fig.tight_layout()
        return fig


# ---------------------------------------------------------------- notebook 01: the focal loss
class FocalLossExplorer(Explorer):
    """The focal loss of one pixel (:func:`boir_core.losses.focal_loss`: a peak Y = 1 pays −log(p)·(1−p)², any
    other pixel −log(1−p)·p²·(1−Y)⁴) against its predicted p, beside binary cross-entropy (−log p, −log(1−p));
    the right panel is the share of cross-entropy the focal loss keeps, for the chosen Y."""

    SCALES = ("linear", "log")

    def __init__(self, p: float = 0.3, target: float = 0.5):
        self.p = _slider("float", float(p), 0.01, 0.99, 0.01, "predicted p")
        self.target = _slider("float", float(target), 0.0, 1.0, 0.01, "target Y (1 = the peak)")
        self.scale = _dropdown(list(self.SCALES), "linear", "loss axis")
        super().__init__([[self.p, self.target], [self.scale]])

    @staticmethod
    def pixel_loss(p, y: float) -> np.ndarray:
        """The focal loss of single pixels with probabilities ``p`` and target ``y`` (focal_loss per pixel)."""
        return np.array([float(focal_loss(torch.tensor([float(q)], dtype=torch.float64),
                                          torch.tensor([float(y)], dtype=torch.float64))) for q in np.atleast_1d(p)])

    @staticmethod
    def bce(p, y: float) -> np.ndarray:
        p = np.asarray(p, dtype=np.float64)
        return -np.log(p) if y == 1 else -np.log(1 - p)

    def compute(self) -> dict:
        p, y = float(self.p.value), float(self.target.value)
        grid = np.linspace(0.01, 0.99, 99)
        ys = sorted({1.0, y, 0.0}, reverse=True)
        loss = float(self.pixel_loss(p, y)[0])
        bce = float(self.bce(p, y))
        return {"p": p, "y": y, "loss": loss, "bce": bce, "kept": loss / bce, "grid": grid,
                "focal": {v: self.pixel_loss(grid, v) for v in ys}, "ce": {v: self.bce(grid, v) for v in ys},
                "scale": self.scale.value}

    def describe(self, c: dict) -> str:
        kind = "the peak (a positive)" if c["y"] == 1 else f"a negative pixel with target Y = {c['y']:g}"
        return (f"p = {c['p']:.2f} on {kind}: focal loss {c['loss']:.4g}, cross-entropy {c['bce']:.4g} — the focal "
                f"loss keeps {100 * c['kept']:.3g}% of it")

    def draw(self, c: dict):
        fig = _figure(figsize=(9.5, 3.6))
        ax, ax2 = fig.subplots(1, 2)
        for i, (y, curve) in enumerate(c["focal"].items()):
            label = "Y = 1 (peak)" if y == 1 else f"Y = {y:g}"
            ax.plot(c["grid"], curve, color=f"C{i}", lw=2, label=f"focal, {label}")
        ax.plot(c["grid"], c["ce"][1.0], color="C0", lw=1, ls="--", label="cross-entropy, the peak")
        ax.plot(c["grid"], c["ce"][0.0], color="0.4", lw=1, ls="--", label="cross-entropy, any Y < 1")
        ax.plot([c["p"]], [c["loss"]], "ko", ms=7)
        ax.set_yscale(c["scale"])
        if c["scale"] == "linear":
            ax.set_ylim(0, 3)
        ax.set_xlabel("predicted p"), ax.set_ylabel("loss of the pixel")
        ax.set_title("focal loss (solid) against cross-entropy (dashed)", fontsize=9)
        ax.legend(fontsize=7)
        kept = c["focal"][c["y"]] / c["ce"][c["y"]]
        ax2.plot(c["grid"], kept, "k-", lw=2)
        ax2.plot([c["p"]], [c["kept"]], "ko", ms=7)
        ax2.set_ylim(0, 1.02)
        ax2.set_xlabel("predicted p")
        ax2.set_ylabel("focal / cross-entropy")
        ax2.set_title("(1−p)²" if c["y"] == 1 else f"p²·(1−Y)⁴ with Y = {c['y']:g}", fontsize=9)
        fig.tight_layout()
        return fig
