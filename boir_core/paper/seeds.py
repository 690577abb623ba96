"""How large is run-to-run noise? Notebook 06's seed study: a tiny BoIR and a tiny CID trained once per seed
on SynthCrowd and scored by a continuous held-out loss (a few iterations leave AP at 0)."""
from __future__ import annotations

import hashlib
import json
import os
import statistics
from pathlib import Path
from typing import Sequence, Union

from ..config import Config, load_config
from ..engine.evaluation.keypoint_loss import held_out_keypoint_loss  # re-exported: the study scores with it
from ..engine.training.resume_check import RESUME_FREE_KEYS
from .plan import _base
from .reproduce import _demo_data, _log_default, _train
from .stats import paired_confidence_interval, paired_t_test

__all__ = ["held_out_keypoint_loss", "demo_data_root", "demo_pair_configs", "seed_study", "run_fingerprint",
           "seed_run_dir", "seed_study_summary", "format_seed_study", "seed_study_reading", "seed_study_readme_block",
           "seed_study_runs_line",
           "README_SEED_BEGIN", "README_SEED_END", "SEED_STUDY_METRICS"]


def demo_data_root(results_dir: Union[str, os.PathLike], num_keypoints: int = 17, num_val: int = 4) -> Path:
    """The SynthCrowd set demo mode uses under ``results_dir`` (generated once)."""
    return _demo_data(_base(results_dir, True), num_keypoints, num_val)


def demo_pair_configs(data_root: Union[str, os.PathLike], iters: int = 4, device: str = "cpu") -> dict[str, Config]:
    """The tiny BoIR and the tiny CID that stand in for the paper's BoIR-vs-CID comparison in demo mode."""
    ov = [f"data.root={data_root}", f"train.device={device}", f"test.device={device}", "train.epochs=1",
          f"train.max_steps_per_epoch={int(iters)}", "train.log_every=1000"]
    return {"BoIR": load_config("tiny", [*ov, "name=boir_demo"]),
            "CID": load_config("tiny", [*ov, "name=cid_demo", "model.arch=cid", "model.bbox_head=false",
                                        "loss.bbox_mask=false"])}


def _training_keys(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = prefix + k
        if any(key == f or (f.endswith(".") and key.startswith(f)) for f in RESUME_FREE_KEYS):
            continue
        out[k] = _training_keys(v, key + ".") if isinstance(v, dict) else v
    return out


def run_fingerprint(cfg: Config) -> str:
    """8 hex digits of SHA-256 over what defines a training run: every config key a resume compares (all but
    :data:`~boir_core.engine.training.resume_check.RESUME_FREE_KEYS`: where and how it runs)."""
    text = json.dumps(_training_keys(cfg.to_dict()), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def seed_run_dir(work_dir: Union[str, os.PathLike], name: str, cfg: Config) -> Path:
    """``<work_dir>/<name>_seed<s>_<fingerprint>``: runs of different settings (e.g. another
    ``demo_train_iters``) never share a folder, so none is started over and none mixes two runs; the same
    settings find their finished run again."""
    return Path(work_dir) / f"{name}_seed{int(cfg.train.seed)}_{run_fingerprint(cfg)}"


def seed_study(configs: dict[str, Config], seeds: Sequence[int], work_dir: Union[str, os.PathLike], *,
               val_images: int = 8, device: str = "cpu") -> dict[str, list[float]]:
    """Train every config once per seed (``train.seed``) and score it with :func:`held_out_keypoint_loss`.

    Returns ``{name: [score of seed s for s in seeds]}``: the same seed gives both configs the same data
    order and augmentation, so the lists are paired by position. Each run has its own folder
    (:func:`seed_run_dir`, named by its settings); a finished run with the same settings is reused.
    """
    out: dict[str, list[float]] = {}
    for name, cfg in configs.items():
        out[name] = []
        for s in seeds:
            c = cfg.override(f"train.seed={int(s)}", f"train.device={device}", f"test.device={device}")
            weights = _train(c, seed_run_dir(work_dir, name, c), 1, _log_default)
            out[name].append(held_out_keypoint_loss(c, weights, val_images, device))
    return out


#: The AP columns a BoIR-vs-CID seed study reports (``boir_core/studies/seed_study.jsonl``).
SEED_STUDY_METRICS = ("AP", "crowded_AP", "sparse_AP")


def seed_study_summary(rows: Sequence[dict], a: str = "boir", b: str = "cid") -> dict:
    """Pair the runs of ``a`` and ``b`` by (seed, steps) and summarise each metric of :data:`SEED_STUDY_METRICS`:
    mean and sd (ddof 1) of each arch over the paired seeds, and the paired difference a - b with its 95%
    confidence interval and two-sided p (:func:`boir_core.paper.stats.paired_t_test`). Runs without a partner
    are left out and counted."""
    by = {(r["arch"], r["seed"], r["steps"]): r for r in rows}
    pairs = sorted((s, n) for (arch, s, n) in by if arch == a and (b, s, n) in by)
    steps = sorted({n for _, n in pairs})
    out: dict = {"a": a, "b": b, "pairs": len(pairs), "seeds": [s for s, _ in pairs], "steps": steps,
                 "unpaired": len(rows) - 2 * len(pairs), "metrics": {}}
    for m in SEED_STUDY_METRICS:
        va = [by[(a, s, n)][m] for s, n in pairs]
        vb = [by[(b, s, n)][m] for s, n in pairs]
        entry: dict = {a: va, b: vb}
        if len(pairs) >= 2:
            test = paired_t_test(va, vb)
            lo, hi = paired_confidence_interval(va, vb)
            entry.update({f"{a}_mean": statistics.mean(va), f"{a}_sd": statistics.stdev(va),
                          f"{b}_mean": statistics.mean(vb), f"{b}_sd": statistics.stdev(vb),
                          "diff_mean": test.mean_diff, "diff_sd": test.sd_diff, "ci95": (lo, hi), "p": test.p})
        out["metrics"][m] = entry
    return out


def format_seed_study(summary: dict) -> str:
    """The summary as a few lines of text (README, notebook 06)."""
    a, b = summary["a"], summary["b"]
    head = (f"{a.upper()} vs {b.upper()} on SynthCrowd val: {summary['pairs']} paired seed(s) "
            f"{summary['seeds']}, {', '.join(map(str, summary['steps'])) or '?'} steps each")
    lines = [head]
    if summary["pairs"] < 2:
        lines.append("  fewer than 2 paired seeds: no spread or interval yet")
    for m, e in summary["metrics"].items():
        if "diff_mean" not in e:
            lines.append(f"  {m:<11} {a} {e[a]}  {b} {e[b]}")
            continue
        lo, hi = e["ci95"]
        lines.append(f"  {m:<11} {a} {e[a + '_mean']:.3f} ± {e[a + '_sd']:.3f}   {b} {e[b + '_mean']:.3f} ± "
                     f"{e[b + '_sd']:.3f}   {a} − {b} {e['diff_mean']:+.3f} (95% CI {lo:+.3f} to {hi:+.3f}, "
                     f"p = {e['p']:.2g})")
    if summary["unpaired"]:
        lines.append(f"  ({summary['unpaired']} run(s) without a partner left out)")
    return "\n".join(lines)


def seed_study_reading(summary: dict) -> list[str]:
    """What the study says, as sentences computed from it (notebook 06 and the README print them): per metric,
    whether the 95% interval of the paired difference excludes 0, then whether the gap is larger on crowded
    than on sparse images (the paper's pattern)."""
    a, b = summary["a"].upper(), summary["b"].upper()
    out = []
    for m, e in summary["metrics"].items():
        if "diff_mean" not in e:
            out.append(f"{m}: fewer than 2 paired seeds, no interval")
            continue
        lo, hi = e["ci95"]
        side = "ahead of" if e["diff_mean"] > 0 else "behind" if e["diff_mean"] < 0 else "level with"
        if lo > 0 or hi < 0:
            verdict = f"the interval excludes 0: {a} is {side} {b} beyond these seeds' noise"
        else:
            verdict = "the interval includes 0: these seeds cannot tell the two apart"
        out.append(f"{m}: {a} {side} {b} by {abs(e['diff_mean']):.3f} (95% CI {lo:+.3f} to {hi:+.3f}); {verdict}")
    c, sp = summary["metrics"].get("crowded_AP", {}), summary["metrics"].get("sparse_AP", {})
    if "diff_mean" in c and "diff_mean" in sp:
        bigger = c["diff_mean"] > sp["diff_mean"]
        out.append(f"the gap is {'larger' if bigger else 'not larger'} on crowded images ({c['diff_mean']:+.3f}) "
                   f"than on sparse ones ({sp['diff_mean']:+.3f}): "
                   f"{'the' if bigger else 'not the'} paper's pattern (BoIR's gain is mostly in crowds)")
    return out


#: The README's seed-study block sits between these lines; ``benchmarks/seed_study.py --readme`` rewrites it and
#: a test checks it against the committed data.
README_SEED_BEGIN = ("<!-- seed-study: written by benchmarks/seed_study.py --readme from "
                     "boir_core/studies/seed_study.jsonl -->")
README_SEED_END = "<!-- /seed-study -->"


def seed_study_runs_line(rows: Sequence[dict]) -> str:
    """How the study's runs were made, in one sentence: images per step, threads, CPU and the training time per
    run of each architecture (the README block and notebook 06 print it)."""
    r = rows[0]
    times = []
    for arch in dict.fromkeys(x["arch"] for x in rows):
        secs = [x["train_seconds"] for x in rows if x["arch"] == arch]
        times.append(f"{arch.upper()} {min(secs) / 60:.0f}–{max(secs) / 60:.0f} min")
    return (f"Each run: {r['images_per_step']} images per step, {r['threads']} thread(s); CPU: {r['cpu']}. "
            f"Training time per run ({', '.join(times)}) for the same steps.")


def seed_study_readme_block(rows: Sequence[dict]) -> str:
    """The README's seed-study block (markers included) for the study ``rows``: the summary, the reading and
    the command of one run, all computed from the rows."""
    body = [README_SEED_BEGIN, "```text"]
    if rows:
        summary = seed_study_summary(rows)
        body += [format_seed_study(summary), *seed_study_reading(summary)]
    else:
        body.append("no runs committed yet")
    body.append("```")
    if rows:
        body.append(f"{seed_study_runs_line(rows)} One run's command: `{rows[0]['command']}`.")
    body.append(README_SEED_END)
    return "\n".join(body)
