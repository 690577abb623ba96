"""The paper's claim in miniature: BoIR against CID on SynthCrowd, the same recipe and budget, several seeds.

Usage::

    python benchmarks/seed_study.py --steps 1500 --seeds 0,1,2             # 6 runs, then the summary
    taskset -c 1 nice python benchmarks/seed_study.py --threads 1 ...      # on a core of its own
    python benchmarks/seed_study.py --summary                              # only print the committed data
    python benchmarks/seed_study.py --readme                               # README's block from the data

Each run trains ``configs/demo_shipped_boir.yaml`` or ``configs/demo_shipped_cid.yaml`` (the shipped models'
recipe: the same network, data, schedule and data order; the two differ only in BoIR's switches) for exactly
``--steps`` steps with ``train.seed=<seed>`` from scratch, and scores it on SynthCrowd val: AP on all images, on
the crowded (crowdIndex >= 0.5) and on the sparse ones. One JSON line per finished run is appended to ``--out``
(default ``boir_core/studies/seed_study.jsonl``) with the command that replays it, the CPU and the times; a
run already in the file (same arch, seed, steps) is not repeated. The summary
(:func:`boir_core.paper.seeds.seed_study_summary`) pairs BoIR and CID by seed: mean +- sd of each, and the
paired difference with its 95% confidence interval.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run from a checkout without installing

import torch  # noqa: E402

from boir_core.config import load_config  # noqa: E402
from boir_core.paper.seeds import format_seed_study, seed_study_summary  # noqa: E402

CONFIGS = {"boir": "demo_shipped_boir", "cid": "demo_shipped_cid"}
DEFAULT_OUT = REPO / "boir_core" / "studies" / "seed_study.jsonl"


def run_one(arch: str, seed: int, steps: int, threads: int, work: Path) -> dict:
    sys.path.insert(0, str(REPO / "benchmarks"))
    from bench_train_step import cpu_description

    from boir_core.engine.jobs.demo import _evaluate
    from boir_core.engine.training.train import train

    run_dir = work / f"{arch}_seed{seed}_{steps}steps"
    overrides = ["train.device=cpu", f"train.max_steps={steps}", f"train.seed={seed}", "train.save_every=1000"]
    cfg = load_config(CONFIGS[arch], overrides)
    t0 = time.perf_counter()
    summary = train(cfg, run_dir, resume=True, progress=False)  # a killed run resumes from its checkpoint
    seconds = time.perf_counter() - t0
    ev = _evaluate(cfg, summary.final_weights, run_dir / "eval", f"{arch}_seed{seed}")
    return {"arch": arch, "seed": seed, "steps": steps, "config": CONFIGS[arch],
            "images_per_step": cfg.train.batch_size, "threads": threads, "train_seconds": round(seconds, 1),
            "AP": ev["AP"], "AP50": ev["AP50"], "crowded_AP": ev["crowded"]["AP"], "sparse_AP": ev["sparse"]["AP"],
            "crowded_images": ev["crowded"]["images"], "sparse_images": ev["sparse"]["images"],
            "val_images": ev["images"],
            "command": f"python -m boir_core train --config {CONFIGS[arch]} {' '.join(overrides)} --run-dir "
                       f"{run_dir.relative_to(REPO) if run_dir.is_relative_to(REPO) else run_dir}",
            "cpu": cpu_description()[0], "torch": torch.__version__, "date": dt.date.today().isoformat()}


def read_rows(path: Path) -> list[dict]:
    from boir_core.studies import load_study

    return load_study(path.stem, path.parent) if path.is_file() else []


def write_readme_block(readme: Path, rows: list[dict]) -> None:
    """Replace the text between the seed-study markers of ``readme`` (atomically) by the block for ``rows``."""
    from boir_core.io import atomic_write_text
    from boir_core.paper.seeds import README_SEED_BEGIN, README_SEED_END, seed_study_readme_block

    text = readme.read_text()
    if README_SEED_BEGIN not in text or README_SEED_END not in text:
        raise SystemExit(f"{readme}: no seed-study block (the lines {README_SEED_BEGIN!r} ... {README_SEED_END!r})")
    head, rest = text.split(README_SEED_BEGIN, 1)
    tail = rest.split(README_SEED_END, 1)[1]
    atomic_write_text(readme, head + seed_study_readme_block(rows) + tail)
    print(f"{readme}: seed-study block written from {len(rows)} run(s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--archs", default="boir,cid")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--work", type=Path, default=REPO / "runs" / "seed_study")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--summary", action="store_true", help="print the summary of --out and stop")
    ap.add_argument("--readme", type=Path, nargs="?", const=REPO / "README.md", default=None,
                    help="rewrite the seed-study block of this README (default: the kit's) from --out and stop")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.readme is not None:
        write_readme_block(args.readme, read_rows(args.out))
        return
    if not args.summary:
        seeds = [int(s) for s in args.seeds.split(",") if s]
        args.out.parent.mkdir(parents=True, exist_ok=True)
        for seed in seeds:  # seed by seed, both archs: a study cut short still has complete pairs
            for arch in args.archs.split(","):
                done = {(r["arch"], r["seed"], r["steps"]) for r in read_rows(args.out)}
                if (arch, seed, args.steps) in done:
                    continue
                row = run_one(arch, seed, args.steps, args.threads, args.work)
                with open(args.out, "a") as f:
                    f.write(json.dumps(row) + "\n")
                print(f"{arch} seed {seed}: AP {row['AP']:.3f} (crowded {row['crowded_AP']:.3f}, sparse "
                      f"{row['sparse_AP']:.3f}) after {args.steps} steps, {row['train_seconds']:.0f} s", flush=True)
    rows = read_rows(args.out)
    if rows:
        print(format_seed_study(seed_study_summary(rows)))


if __name__ == "__main__":
    main()
