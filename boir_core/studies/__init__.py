"""Measured studies committed as data (package data, so an installed kit reads them too).

* ``recipe_study.jsonl`` — what limits the demo-size network on SynthCrowd: one run per setting at an equal
  CPU budget, AP and held-out loss against CPU-minutes (written by ``benchmarks/recipe_study.py``, plotted in
  notebook 04 with :func:`boir_core.viz.training.recipe_study_figure`).

:func:`load_study` reads one; a bad line is an error naming the file and the line.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..io import read_jsonl

__all__ = ["STUDIES_DIR", "load_study"]

STUDIES_DIR = Path(__file__).resolve().parent


def load_study(name: str, folder: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """The rows of ``<folder>/<name>.jsonl`` (default: the kit's own studies), one dict a run."""
    path = Path(folder or STUDIES_DIR) / f"{name}.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"no study {name!r}: {path} does not exist")
    return read_jsonl(path, "a study row")
