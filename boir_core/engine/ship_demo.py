"""``python -m boir_core.engine.ship_demo --arch boir --config CONFIG --run-dir RUN [--curve JSON]``: export a
finished run as the kit's shipped demo weights (:func:`boir_core.model.demo_weights.export_demo_weights`),
evaluate the exported (fp16) file on SynthCrowd val, all images and the crowded / sparse ones, and record
its AP in the manifest. (It lives in the engine because it evaluates; the model room only reads and writes
the files.)
"""
from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path
from typing import Any

from ..data import get_profile
from ..model.demo_weights import ARCHS, export_demo_weights, shipped_checkpoint, shipped_config
from .crowd_split import crowd_split_metrics
from .runner import run_evaluation

__all__ = ["evaluate_shipped", "main"]


def evaluate_shipped(arch: str, weights_dir, out_dir: Path) -> dict[str, Any]:
    """SynthCrowd val AP of the exported (fp16) file: all images, crowded and sparse ones."""
    cfg = shipped_config(arch, weights_dir=weights_dir)
    ev = run_evaluation(cfg, shipped_checkpoint(arch, weights_dir=weights_dir), out_dir=out_dir, progress=False)
    ann = get_profile(cfg.data.dataset).ann_file(cfg.data.root, cfg.data.test_split)
    split = crowd_split_metrics(ev["results_path"], ann, dataset=cfg.data.dataset, backend=cfg.test.evaluator)
    return {"split": f"{cfg.data.dataset} {cfg.data.test_split}", "all": ev["metrics"], **split}


def main(argv: list[str] | None = None) -> int:
    """Export, evaluate and record (module docstring)."""
    ap = argparse.ArgumentParser(description="export a finished run as the kit's shipped demo weights")
    ap.add_argument("--arch", choices=ARCHS, required=True)
    ap.add_argument("--config", required=True, help="the config file the run was trained with")
    ap.add_argument("--run-dir", required=True)
    ap.add_argument("--command", default=None, help="the exact training command (default: the kit's train "
                                                     "command for --config and --run-dir, one thread)")
    ap.add_argument("--curve", default=None, help="JSON file: [{steps, AP, ...}] of intermediate checkpoints")
    ap.add_argument("--weights-dir", default=None)
    args = ap.parse_args(argv)
    command = args.command or ("OMP_NUM_THREADS=1 python -m boir_core train --config "
                               f"{shlex.quote(args.config)} --run-dir {shlex.quote(args.run_dir)}")
    curve = json.loads(Path(args.curve).read_text()) if args.curve else []
    kw = dict(command=command, weights_dir=args.weights_dir, learning_curve=curve, config_file=args.config)
    export_demo_weights(args.run_dir, args.arch, **kw)
    metrics = evaluate_shipped(args.arch, args.weights_dir, Path(args.run_dir) / "eval_shipped")
    entry = export_demo_weights(args.run_dir, args.arch, metrics=metrics, **kw)  # same bytes, AP recorded
    print(json.dumps({k: entry[k] for k in ("file", "sha256", "bytes", "metrics")}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
