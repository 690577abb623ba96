"""``make demo``: the whole main job on the embedded SynthCrowd data, and ``make reproduce TABLE=n``.

:func:`run_demo` generates SynthCrowd (once), trains the ``demo`` config (auto-resuming, so a second run
is fast), evaluates it with COCO AP, draws predictions on validation images, executes the notebooks
headless with papermill and prints where everything is.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from ..config import load_config

__all__ = ["run_demo", "execute_notebook", "reproduce_table", "REPO"]

REPO = Path(__file__).resolve().parents[2]

#: The parameter through which each notebook receives the demo's trained weights (by notebook number);
#: notebooks 01-03 explain untrained or released networks and get nothing.
DEMO_WEIGHT_PARAMETERS = {"04": ("checkpoint",), "05": ("checkpoint",), "06": ("demo_checkpoint",),
                          "07": ("boir_checkpoint",)}


def execute_notebook(name: str, out_dir: str | os.PathLike, parameters: dict[str, Any] | None = None) -> Path:
    """Build ``notebooks/<name>.ipynb`` from its jupytext ``.py`` and execute it with papermill."""
    import jupytext
    import nbformat
    import papermill

    src = REPO / "notebooks" / f"{name}.py"
    if not src.is_file():
        raise FileNotFoundError(f"no notebook {src}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    built = out_dir / f"{name}.input.ipynb"
    nbformat.write(jupytext.read(src), built)
    out = out_dir / f"{name}.ipynb"
    papermill.execute_notebook(str(built), str(out), parameters=parameters or {}, kernel_name="python3",
                               cwd=str(REPO), progress_bar=False)
    built.unlink()
    return out


def run_demo(out_dir: str | os.PathLike = "runs/demo", config: str = "demo", overrides: list[str] | None = None,
             notebooks: bool = True) -> dict[str, Any]:
    from ..data import get_profile
    from ..data.synthetic import ensure_synthcrowd
    from .predict import predict
    from .runner import run_evaluation
    from .train import train

    t0 = time.time()
    out_dir = Path(out_dir)
    cfg = load_config(config, overrides)
    k = get_profile(cfg.data.dataset).num_keypoints
    print(f"[demo] 1/5 SynthCrowd at {cfg.data.root}")
    ensure_synthcrowd(cfg.data.root, num_keypoints=k)

    run_dir = out_dir / "train"
    print(f"[demo] 2/5 training {cfg.name} into {run_dir} (resumes if interrupted)")
    t_train = time.time()
    summary = train(cfg, run_dir, resume="or-restart", progress=True)  # a changed demo config starts over
    t_train = time.time() - t_train

    print("[demo] 3/5 evaluating on SynthCrowd val (COCO keypoint AP)")
    ev = run_evaluation(cfg, run_dir / "final.pt", out_dir=out_dir / "eval", key="demo_synthcrowd_val",
                        progress=False)
    m = ev["metrics"]

    print("[demo] 4/5 drawing predictions on validation images")
    val_images = sorted(get_profile(cfg.data.dataset).image_dir(cfg.data.root, cfg.data.test_split).glob("*.jpg"))[:8]
    pred = predict(cfg, run_dir / "final.pt", [str(p) for p in val_images], output=out_dir / "predictions.json",
                   draw_dir=out_dir / "predictions")

    executed = []
    if notebooks:
        print("[demo] 5/5 executing the notebooks (papermill)")
        weights = str((run_dir / "final.pt").resolve())
        for src in sorted((REPO / "notebooks").glob("[0-9][0-9]_*.py")):
            params = {name: (str(run_dir.resolve()) if name == "checkpoint" and src.stem.startswith("04") else weights)
                      for name in DEMO_WEIGHT_PARAMETERS.get(src.stem[:2], ()) if _takes(src, name)}
            executed.append(execute_notebook(src.stem, out_dir / "notebooks", params))
    summary_out = {
        "AP": m.get("AP"), "AP50": m.get("AP50"), "AR": m.get("AR"),
        "train_seconds": round(t_train, 1), "total_seconds": round(time.time() - t0, 1),
        "iterations_this_run": summary.iterations,
        "weights": str(run_dir / "final.pt"), "metrics": str(ev["metrics_path"]),
        "predictions": str(out_dir / "predictions"), "notebooks": [str(p) for p in executed],
    }
    (out_dir / "demo_summary.json").write_text(json.dumps(summary_out, indent=2))
    print("\n[demo] done in {:.0f} s".format(summary_out["total_seconds"]))
    print(f"  SynthCrowd val: AP {m.get('AP', float('nan')):.3f}  AP50 {m.get('AP50', float('nan')):.3f}  "
          f"AR {m.get('AR', float('nan')):.3f}")
    for label, path in [("weights", run_dir / "final.pt"), ("training log", run_dir / "metrics.jsonl"),
                        ("metrics", ev["metrics_path"]), ("drawn predictions", out_dir / "predictions"),
                        ("executed notebooks", out_dir / "notebooks"), ("summary", out_dir / "demo_summary.json")]:
        print(f"  {label:<19} {path}")
    print(f"  ({pred['num_poses']} poses drawn on {pred['num_images']} images)")
    return summary_out


def _takes(src: Path, name: str) -> bool:
    """Does the notebook's parameters cell define ``name``?"""
    import jupytext

    nb = jupytext.read(src)
    for c in nb.cells:
        if "parameters" in c.get("metadata", {}).get("tags", []):
            return any(line.split("=")[0].strip() == name for line in c.source.splitlines() if "=" in line)
    return False


def reproduce_table(table: int, out_dir: str | os.PathLike = "runs/reproduce",
                    parameters: dict[str, Any] | None = None) -> Path:
    """Execute ``notebooks/06_reproduce_tables`` for one table (papermill), into ``out_dir``."""
    params = {"table": int(table), **{k: _parse(v) for k, v in (parameters or {}).items()}}
    out = execute_notebook("06_reproduce_tables", Path(out_dir) / f"table{table}", params)
    tables = Path(params.get("results_dir", "runs/reproduce/results")) / f"tables_{table or 'all'}.md"
    if tables.is_file():
        print(tables.read_text())
        print(f"[reproduce] tables: {tables}")
    return out


def _parse(v: Any) -> Any:
    import yaml

    return yaml.safe_load(v) if isinstance(v, str) else v
