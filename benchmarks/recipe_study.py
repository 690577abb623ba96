"""What limits the demo-size network on SynthCrowd: one training run per setting at an equal CPU budget.

Usage::

    python benchmarks/recipe_study.py                      # every setting, 900 s each, one thread
    python benchmarks/recipe_study.py --settings base,px96 --budget 600 --threads 2
    taskset -c 1 nice python benchmarks/recipe_study.py    # on a core of its own while you work

Each setting is the demo config (``configs/demo.yaml``) plus a few ``key=value`` overrides, trained from scratch
for ``--budget`` seconds of wall time on ``--threads`` threads (``train.time_budget_s``: the engine times a few
steps on this machine and fixes the step count, so a cheaper step buys more steps; the schedule is warm-up +
cosine over that count). Then it is scored on SynthCrowd val: AP (all, crowded, sparse) and the held-out
instance keypoint loss (:func:`boir_core.paper.seeds.held_out_keypoint_loss`, continuous where AP is still 0).

One JSON line per run is appended to ``--out`` (default ``boir_core/studies/recipe_study.jsonl``, which notebook
04 plots): the setting, its overrides, the exact command that reproduces the run step for step
(``train.max_steps`` = the steps it ran), the CPU (``lscpu``), threads, steps, seconds, CPU-minutes
(seconds x threads / 60), AP and loss. Runs go under ``runs/recipe_study/<setting>_<budget>s``.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run from a checkout without installing

import torch  # noqa: E402

from boir_core.config import load_config  # noqa: E402

#: setting -> overrides of the demo config. ``base`` is the demo as shipped.
SETTINGS: dict[str, list[str]] = {
    "base": [],
    "px96": ["data.input_size=96", "data.output_size=24"],
    "no_aug": ["data.max_rotation=0", "data.min_scale=1", "data.max_scale=1", "data.max_translate=0"],
    "batch4": ["train.batch_size=4"],
    "lr_1e-3": ["train.lr=0.001"],
    "paper_weighting": ["loss.weighting=paper"],
}
DEFAULT_OUT = REPO / "boir_core" / "studies" / "recipe_study.jsonl"
#: ``model.pretrained=`` this file: the backbone of the shipped CID (a backbone the kit pretrained on SynthCrowd,
#: as the paper starts from ImageNet; never the shipped model's heads), written by ``--extract-backbone``.
KIT_BACKBONE = Path("runs") / "recipe_study" / "kit_backbone_cid.pt"


def extract_kit_backbone(out: Path = REPO / KIT_BACKBONE) -> Path:
    """Write the shipped CID's ``backbone.*`` tensors (checksum verified, fp32, prefix stripped) to ``out``."""
    from boir_core.io import atomic_open
    from boir_core.model import read_checkpoint
    from boir_core.model.demo_weights import shipped_checkpoint

    sd = read_checkpoint(shipped_checkpoint("cid"))["state_dict"]  # the shipped format: weights under state_dict
    backbone = {k[len("backbone."):]: v.float() for k, v in sd.items() if k.startswith("backbone.")}
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(out, "wb") as f:
        torch.save(backbone, f)
    return out


def cpu_line() -> str:
    sys.path.insert(0, str(REPO / "benchmarks"))
    from bench_train_step import cpu_description

    return cpu_description()[0]


def run_setting(name: str, overrides: list[str], budget: float, threads: int, val_images: int,
                work: Path, seed: int, steps: int = 0) -> dict:
    from boir_core.data.sources.synthetic import SynthCrowdSpec, ensure_synthcrowd
    from boir_core.engine.jobs.demo import _evaluate
    from boir_core.engine.training.train import train
    from boir_core.paper.seeds import held_out_keypoint_loss

    budget_s = None if steps else budget  # a fixed length has no budget
    length = [f"train.max_steps={steps}"] if steps else [f"train.time_budget_s={budget}"]
    run_dir = work / (f"{name}_{steps}steps_seed{seed}" if steps else f"{name}_{int(budget)}s_seed{seed}")
    common = ["train.device=cpu", *length, f"train.seed={seed}", "train.save_every=1000"]
    cfg = load_config("demo", [*overrides, *common])
    ensure_synthcrowd(cfg.data.root, SynthCrowdSpec(num_keypoints=cfg.num_keypoints))  # a fresh clone has none
    if val_images:
        cfg = cfg.override(f"test.max_images={val_images}")
    t0 = time.perf_counter()
    summary = train(cfg, run_dir, resume=False, progress=False)
    seconds = time.perf_counter() - t0
    ev = _evaluate(cfg, summary.final_weights, run_dir / "eval", name)
    loss = held_out_keypoint_loss(cfg, summary.final_weights, max_images=32)
    steps = summary.total_steps
    shown = run_dir.relative_to(REPO) if run_dir.is_relative_to(REPO) else run_dir  # from the kit's root
    replay = ["python", "-m", "boir_core", "train", "--config", "demo", *overrides, "train.device=cpu",
              f"train.max_steps={steps}", f"train.seed={seed}", f"--run-dir={shown}"]
    return {"setting": name, "overrides": overrides, "budget_s": budget_s, "threads": threads, "seed": seed,
            "steps": steps, "images_per_step": cfg.train.batch_size, "train_seconds": round(seconds, 1),
            "step_seconds": summary.step_seconds, "cpu_minutes": round(seconds * threads / 60, 2),
            "AP": ev["AP"], "AP50": ev["AP50"], "crowded_AP": ev["crowded"]["AP"], "sparse_AP": ev["sparse"]["AP"],
            "val_images": ev["images"], "held_out_loss": loss,
            "final_loss": summary.losses[-1] if summary.losses else None,
            "command": " ".join(replay), "cpu": cpu_line(), "torch": torch.__version__,
            "python": platform.python_version(), "date": dt.date.today().isoformat()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--settings", default=",".join(SETTINGS), help=f"comma-separated of {', '.join(SETTINGS)}")
    ap.add_argument("--budget", type=float, default=900.0, help="training seconds per setting (wall)")
    ap.add_argument("--steps", type=int, default=0,
                    help="a fixed number of steps instead of --budget (compares across CPUs; cpu_minutes is measured)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--custom", action="append", default=[], metavar="NAME:KEY=V,KEY=V",
                    help="an extra setting: its name and its overrides of the demo config (repeatable)")
    ap.add_argument("--extract-backbone", action="store_true",
                    help=f"first write the shipped CID's backbone to {KIT_BACKBONE} (for model.pretrained=)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--val-images", type=int, default=0, help="score on the first N val images (0: all)")
    ap.add_argument("--work", type=Path, default=REPO / "runs" / "recipe_study")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.extract_backbone:
        print(f"the shipped CID's backbone: {extract_kit_backbone()}")
    for spec in args.custom:
        name, _, ovs = spec.partition(":")
        SETTINGS[name] = [o for o in ovs.split(",") if o]
    names = [s for s in args.settings.split(",") if s] + [spec.partition(":")[0] for spec in args.custom]
    unknown = [s for s in names if s not in SETTINGS]
    if unknown:
        sys.exit(f"error: unknown setting(s) {unknown}; known: {list(SETTINGS)}")
    length = f"{args.steps} steps" if args.steps else f"{args.budget:.0f} s"
    print(cpu_line(), f"; {args.threads} thread(s), {length} per setting", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for name in names:
        row = run_setting(name, SETTINGS[name], args.budget, args.threads, args.val_images, args.work, args.seed,
                          args.steps)
        with open(args.out, "a") as f:  # one complete line per finished run; a killed study keeps the others
            f.write(json.dumps(row) + "\n")
        print(f"{name:<16} {row['steps']:>5} steps  {row['cpu_minutes']:6.1f} CPU-min  AP {row['AP']:.3f}  "
              f"crowded {row['crowded_AP']:.3f}  sparse {row['sparse_AP']:.3f}  held-out loss "
              f"{row['held_out_loss']:.5f}", flush=True)


if __name__ == "__main__":
    main()
