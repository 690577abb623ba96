"""Training logs as data and as figures: a run's ``metrics.jsonl``, and the shipped demo models' logs.

* :func:`read_metrics` — the records of a ``metrics.jsonl`` (one JSON object a line, written by
  :class:`boir_core.engine.training.metrics_log.MetricsLog`); a bad line is an error naming the file and the line.
* :func:`metric_series` — per key, the steps and values of the ``iter`` records (one logged batch each) or of
  the ``epoch`` records (means over an epoch), keyed by the global step ``iter``.
* :func:`shipped_training_log` — what the kit knows about how a shipped demo model
  (:mod:`boir_core.model.demo_weights`) was trained: its log's series, and the AP points its manifest records
  (mid-run checkpoints and the final weights).
* :func:`shipped_description` — one line saying which shipped weights a checkpoint path is (steps, AP).
* :func:`training_curves_figure` — loss terms against steps for several runs, and their AP points.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import matplotlib.pyplot as plt
import numpy as np

from ..io import read_jsonl
from ..model.demo_weights import WEIGHTS_DIR, shipped_entry, shipped_manifest

__all__ = ["NOT_LOSSES", "read_metrics", "metric_series", "TrainingLog", "shipped_training_log",
           "shipped_description", "training_curves_figure", "study_main_cpu", "recipe_study_figure",
           "seed_study_figure"]

#: keys of an ``iter`` / ``epoch`` record that are not loss terms
NOT_LOSSES = ("type", "epoch", "iter", "lr", "grad_norm", "scale", "seconds", "images_per_s", "skipped_nonfinite")


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of a ``metrics.jsonl`` file, in order. Blank lines are skipped; a line that is not a JSON
    object is a ``ValueError`` naming the file and the line number."""
    return read_jsonl(path, "a record")


def metric_series(records: Sequence[Mapping[str, Any]], kind: str = "iter",
                  keys: Optional[Sequence[str]] = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{key: (steps, values)}`` over the records of type ``kind`` (``"iter"`` or ``"epoch"``), in log order.

    ``steps`` is each record's ``iter`` (the global step it was logged at). ``keys`` default to every
    numeric key but the bookkeeping ones (:data:`NOT_LOSSES`), i.e. the loss terms; a record without a key
    simply has no point for it."""
    if kind not in ("iter", "epoch"):
        raise ValueError(f"kind must be 'iter' or 'epoch', got {kind!r}")
    rows = [r for r in records if r.get("type") == kind and "iter" in r]
    if keys is None:
        seen: dict[str, None] = {}
        for r in rows:
            for k, v in r.items():
                if k not in NOT_LOSSES and isinstance(v, (int, float)) and not isinstance(v, bool):
                    seen.setdefault(k)
        keys = list(seen)
    out = {}
    for k in keys:
        pts = [(float(r["iter"]), float(r[k])) for r in rows if isinstance(r.get(k), (int, float))]
        if pts:
            steps, values = np.array(pts).T
            out[k] = (steps, values)
    return out


@dataclass
class TrainingLog:
    """One run's training, ready to plot: ``name``, loss ``series`` of the logged batches (``iter``) and of
    the epoch means (``epochs``), and ``ap`` points ``[(step, AP, note)]``."""

    name: str
    series: dict[str, tuple[np.ndarray, np.ndarray]]
    epochs: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    ap: list[tuple[float, float, str]] = field(default_factory=list)
    steps: Optional[int] = None
    source: str = ""

    @classmethod
    def from_file(cls, path: str | os.PathLike, name: str) -> "TrainingLog":
        records = read_metrics(path)
        return cls(name=name, series=metric_series(records, "iter"), epochs=metric_series(records, "epoch"),
                   steps=max((int(r["iter"]) for r in records if "iter" in r), default=None), source=str(path))


def shipped_training_log(arch: str, name: Optional[str] = None,
                         weights_dir: str | os.PathLike | None = None) -> TrainingLog:
    """The training of the shipped demo ``arch`` model: its log (``boir_core/weights/logs/``) and the AP on
    SynthCrowd val that its manifest records, at the mid-run checkpoints (``learning_curve``) and for the
    shipped weights themselves (at the run's last step). A manifest that names no log is a
    ``FileNotFoundError`` naming the manifest entry."""
    entry = shipped_entry(arch, weights_dir)
    base = Path(weights_dir or WEIGHTS_DIR)
    rel = (entry.get("training") or {}).get("log")
    if not rel:
        raise FileNotFoundError(f"the shipped {arch!r} weights' manifest entry names no training log")
    log = TrainingLog.from_file(base / rel, name or {"boir": "BoIR", "cid": "CID"}.get(arch, arch))
    steps = (entry.get("training") or {}).get("steps") or log.steps
    log.steps = int(steps) if steps else None
    for point in entry.get("learning_curve") or []:
        if point.get("AP") is not None and point.get("steps") is not None:
            log.ap.append((float(point["steps"]), float(point["AP"]), "mid-run checkpoint"))
    final = ((entry.get("metrics") or {}).get("all") or {}).get("AP")
    if final is not None and log.steps:
        log.ap.append((float(log.steps), float(final), "shipped weights"))
    return log


def shipped_description(checkpoint: str | os.PathLike | None,
                        weights_dir: str | os.PathLike | None = None) -> Optional[str]:
    """``"shipped demo weights: N steps of B images, AP x.xxx on SynthCrowd val"`` when ``checkpoint`` is one
    of the shipped demo files (:mod:`boir_core.model.demo_weights`), else ``None`` (any other file, or a kit
    that ships none). Reads the manifest only; the file's checksum is checked where it is loaded."""
    if checkpoint is None:
        return None
    base = Path(weights_dir or WEIGHTS_DIR)
    try:
        listed = shipped_manifest(base)["weights"]
    except FileNotFoundError:
        return None
    path = Path(checkpoint).resolve()
    for arch, entry in listed.items():
        if (base / entry["file"]).resolve() == path:
            t, ap = entry.get("training") or {}, ((entry.get("metrics") or {}).get("all") or {}).get("AP")
            return (f"shipped demo {arch.upper()} weights: {t.get('steps')} steps of {t.get('batch_size')} images"
                    + (f", AP {ap:.3f} on SynthCrowd val" if ap is not None else ""))
    return None


def training_curves_figure(logs: Sequence[TrainingLog], terms: Optional[Sequence[str]] = None, *,
                           columns: int = 4, log_scale: bool = True):
    """One panel per loss term (every term any log has, or ``terms``), each log a colour: the logged batches
    faint, the epoch means as a line; then a panel with the AP points (when any log has some)."""
    if terms is None:
        seen: dict[str, None] = {}
        for lg in logs:
            for k in list(lg.epochs) + list(lg.series):
                seen.setdefault(k)
        terms = list(seen)
    has_ap = any(lg.ap for lg in logs)
    n = len(terms) + (1 if has_ap else 0)
    cols = max(1, min(columns, n))
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.8 * rows), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, term in zip(axes.flat, terms):
        for c, lg in enumerate(logs):
            colour = colours[c % len(colours)]
            if term in lg.series:
                ax.plot(*lg.series[term], color=colour, alpha=0.3, lw=0.8)
            if term in lg.epochs:
                ax.plot(*lg.epochs[term], color=colour, lw=1.8, label=lg.name)
            elif term in lg.series:
                ax.plot([], [], color=colour, label=lg.name)
        ax.set_title(term, fontsize=9)
        if log_scale and all(v > 0 for lg in logs for s in (lg.series, lg.epochs) if term in s for v in s[term][1]):
            ax.set_yscale("log")
        ax.set_xlabel("step", fontsize=8)
        ax.legend(fontsize=7)
    if has_ap:
        ax = axes.flat[len(terms)]
        for c, lg in enumerate(logs):
            if lg.ap:
                steps, ap = [p[0] for p in lg.ap], [p[1] for p in lg.ap]
                ax.plot(steps, ap, "o-", color=colours[c % len(colours)], label=lg.name)
        ax.set_title("AP (SynthCrowd val)", fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def study_main_cpu(rows: Sequence[Mapping[str, Any]]) -> str | None:
    """The CPU most of a study's rows were measured on (its ``cpu`` line; a tie: the first row's of them), the one
    whose CPU-minutes the others do not compare with. None for no rows."""
    cpus = [r.get("cpu") for r in rows]
    return max(dict.fromkeys(cpus), key=cpus.count) if cpus else None


def recipe_study_figure(rows: Sequence[Mapping[str, Any]]):
    """The recipe study (:func:`boir_core.studies.load_study`): per setting, AP on SynthCrowd val (left) and
    the held-out instance keypoint loss (right, lower is better; it moves where AP is still 0) against the
    CPU-minutes the run trained for, each setting a colour, its step count beside the point. CPU-minutes compare
    only on one CPU: rows measured on another CPU than most (their ``cpu``) are hollow and not joined to the rest."""
    fig, (ax_ap, ax_loss) = plt.subplots(1, 2, figsize=(10, 3.6))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    settings = list(dict.fromkeys(r["setting"] for r in rows))
    main_cpu = study_main_cpu(rows)
    for c, name in enumerate(settings):
        colour = colours[c % len(colours)]
        mine = sorted((r for r in rows if r["setting"] == name), key=lambda r: r["cpu_minutes"])
        same = [r for r in mine if r.get("cpu") == main_cpu]
        other = [r for r in mine if r.get("cpu") != main_cpu]
        for ax, key in ((ax_ap, "AP"), (ax_loss, "held_out_loss")):
            if same:
                ax.plot([r["cpu_minutes"] for r in same], [r[key] for r in same], "o-", color=colour, label=name)
            if other:
                ax.plot([r["cpu_minutes"] for r in other], [r[key] for r in other], "o", mfc="none", color=colour,
                        label=f"{name} (another CPU)")
            for r in mine:
                ax.annotate(f"{r['steps']}", (r["cpu_minutes"], r[key]), fontsize=7, xytext=(3, 3),
                            textcoords="offset points")
    ax_ap.set_ylabel("AP (SynthCrowd val)")
    ax_loss.set_ylabel("held-out keypoint loss")
    for ax in (ax_ap, ax_loss):
        ax.set_xlabel("CPU-minutes of training (threads x wall minutes)")
        ax.legend(fontsize=7)
    ax_ap.set_ylim(bottom=0)
    fig.tight_layout()
    return fig


def seed_study_figure(summary: Mapping[str, Any]):
    """The BoIR-vs-CID seed study (:func:`boir_core.paper.seeds.seed_study_summary`): one panel per metric
    (AP on all, crowded and sparse val images); each seed is a grey line from its CID run to its BoIR run (the
    pairing the confidence interval uses), each method's mean ± sd a black bar; the title gives the paired
    difference and its 95% interval."""
    a, b = summary["a"], summary["b"]
    metrics = summary["metrics"]
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.3 * len(metrics), 3.4), squeeze=False)
    for ax, (m, e) in zip(axes[0], metrics.items()):
        for va, vb in zip(e[a], e[b]):
            ax.plot([0, 1], [vb, va], "-o", color="0.6", ms=4)
        if "diff_mean" in e:
            for x, arch in ((0, b), (1, a)):
                ax.errorbar([x + (0.12 if x else -0.12)], [e[f"{arch}_mean"]], yerr=[e[f"{arch}_sd"]], fmt="s",
                            color="k", capsize=3)
            lo, hi = e["ci95"]
            ax.set_title(f"{m}: {a} − {b} {e['diff_mean']:+.3f}\n95% CI {lo:+.3f} … {hi:+.3f}", fontsize=9)
        else:
            ax.set_title(m, fontsize=9)
        ax.set_xticks([0, 1])
        ax.set_xticklabels([b.upper(), a.upper()])
        ax.set_xlim(-0.4, 1.4)
        ax.set_ylabel("AP (SynthCrowd val)")
    fig.suptitle(f"{summary['pairs']} paired seeds, {', '.join(map(str, summary['steps']))} steps each", fontsize=9)
    fig.tight_layout()
    return fig
