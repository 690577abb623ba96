"""``boir ship-demo --arch boir --config CONFIG --run-dir RUN [--curve JSON]`` (:func:`ship`): export a
finished run as the kit's shipped demo weights (:func:`boir_core.model.demo_weights.export_demo_weights`),
evaluate the exported (fp16) file on SynthCrowd val, all images and the crowded / sparse ones, and record
its AP in the manifest. (It lives in the engine because it evaluates; the model room only reads and writes
the files.)
"""
from __future__ import annotations

import shlex
from dataclasses import replace
from pathlib import Path
from typing import Any

from ...data import get_profile
from ...model.demo_weights import DemoRecord, export_demo_weights, shipped_checkpoint, shipped_config
from ..evaluation.crowd_split import crowd_split_metrics
from ..evaluation.runner import run_evaluation

__all__ = ["evaluate_shipped", "ship"]


def evaluate_shipped(arch: str, weights_dir, out_dir: Path) -> dict[str, Any]:
    """SynthCrowd val AP of the exported (fp16) file: all images, crowded and sparse ones."""
    cfg = shipped_config(arch, weights_dir=weights_dir)
    ev = run_evaluation(cfg, shipped_checkpoint(arch, weights_dir=weights_dir), out_dir=out_dir, progress=False)
    ann = get_profile(cfg.data.dataset).ann_file(cfg.data.root, cfg.data.test_split)
    split = crowd_split_metrics(ev["results_path"], ann, dataset=cfg.data.dataset, backend=cfg.test.evaluator)
    return {"split": f"{cfg.data.dataset} {cfg.data.test_split}", "all": ev["metrics"], **split}


def ship(arch: str, config: str, run_dir: str, *, command: str | None = None,
         curve: list[dict[str, Any]] | None = None, weights_dir: str | None = None) -> dict[str, Any]:
    """Export, evaluate and record (module docstring); returns the manifest entry. ``command``: the exact
    training command (default: the kit's train command for ``config`` and ``run_dir``, one thread);
    ``curve``: [{steps, AP, ...}] of intermediate checkpoints."""
    command = command or ("OMP_NUM_THREADS=1 python -m boir_core train --config "
                          f"{shlex.quote(config)} --run-dir {shlex.quote(run_dir)}")
    record = DemoRecord(command=command, config_file=config, learning_curve=list(curve or []))
    export_demo_weights(run_dir, arch, record, weights_dir=weights_dir)
    metrics = evaluate_shipped(arch, weights_dir, Path(run_dir) / "eval_shipped")
    return export_demo_weights(run_dir, arch, replace(record, metrics=metrics),  # same bytes, AP recorded
                               weights_dir=weights_dir)
