"""Reading our metrics JSON files, checked field by field.

One metrics file per evaluation run (written by :mod:`boir_core.engine`)::

    {"dataset": "coco", "split": "val", "key": "boir_w32_coco_val",
     "model": {"arch": "boir", "backbone": "hrnet_w32"}, "config_name": "coco_w32", "config": {...},
     "checkpoint": {"path": ..., "sha256": ...},
     "metrics": {"AP": 0.706, "AP50": ..., "AR": ..., "AP_easy": ..., ...},
     "timings": {"network_ms": ..., "decode_ms": ..., "device": "NVIDIA H100"},
     "params": {"inference": 31830000, "total": 33430000}, "demo": false, "date": "...",
     "preset": "paper"}

``batch`` (optional) records the effective batch the weights were trained with and the paper's
(``{"effective": 20, "paper": 80, ...}``); a row trained off the paper's batch is marked in the tables.
``preset`` says what produced the weights: ``paper`` / ``release`` (the config preset of the training run,
plus any switch that departs from it, :func:`boir_core.config.preset_label`), or ``release (released
weights)`` for the authors' files.

Metrics are fractions in [0, 1] as pycocotools reports them (-1, pycocotools' "no such objects", reads as
missing). Extra keys are ignored. ``key`` says which paper-table row the run fills (see
:mod:`boir_core.paper.values`; ``python -m boir_core evaluate --key ...``); null fills none. A run on SynthCrowd
(``dataset`` synthcrowd/synthcrowd14, or ``demo: true``) is a demo result and is always labelled as such.

Bad input raises :class:`ResultsError` naming the file (or ``<dict #i>``) and the key.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Iterable, Mapping, Optional, Union

from ..data.profiles import DATASETS, DEMO_DATASETS

__all__ = [
    "DATASETS",
    "DEMO_DATASETS",
    "ResultsError",
    "Result",
    "parse_result",
    "load_results",
    "as_results",
]

#: JSON files larger than this are not opened while scanning a folder (prediction files), unless their name
#: starts with "metrics".
SCAN_SIZE_LIMIT = 4 * 1024 * 1024


class ResultsError(ValueError):
    """A metrics file (or dict) is malformed or does not fit the table it is matched to; the message names
    the file and the key."""


@dataclass(frozen=True)
class Result:
    """One evaluation run, validated. ``metrics`` are fractions in [0, 1] (``None``: not available)."""

    key: Optional[str]
    dataset: str
    split: Optional[str]
    demo: bool
    metrics: Mapping[str, Optional[float]]
    source: str
    params_inference: Optional[int] = None
    params_total: Optional[int] = None
    network_ms: Optional[float] = None
    decode_ms: Optional[float] = None
    device: Optional[str] = None
    arch: Optional[str] = None
    backbone: Optional[str] = None
    config_name: Optional[str] = None
    date: Optional[str] = None
    preset: Optional[str] = None
    effective_batch: Optional[int] = None  # images per optimisation step the weights were trained with
    paper_effective_batch: Optional[int] = None  # the paper's, as the training config stated it
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def off_paper_batch(self) -> bool:
        """Trained with another effective batch than the paper's (False when either is not recorded)."""
        return (self.effective_batch is not None and bool(self.paper_effective_batch)
                and self.effective_batch != self.paper_effective_batch)

    @property
    def time_ms(self) -> Optional[float]:
        """Inference time as the paper's Table 5 counts it: network + decoding, in ms."""
        if self.network_ms is None or self.decode_ms is None:
            return None
        return self.network_ms + self.decode_ms

    def percent(self, metric: str) -> Optional[float]:
        """``metric`` in percent (the paper's unit), ``None`` if absent."""
        v = self.metrics.get(metric)
        return None if v is None else 100.0 * v


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _fail(source: str, key: str, msg: str) -> ResultsError:
    return ResultsError(f"{source}: key {key!r}: {msg}")


def _opt_section(obj: Mapping, name: str, source: str) -> Mapping:
    sec = obj.get(name)
    if sec is None:
        return {}
    if not isinstance(sec, Mapping):
        raise _fail(source, name, f"must be an object, got {type(sec).__name__}")
    return sec


def _opt_number(sec: Mapping, prefix: str, name: str, source: str) -> Optional[float]:
    v = sec.get(name)
    if v is None:
        return None
    if not _is_number(v) or v < 0:
        raise _fail(source, f"{prefix}.{name}", f"must be a number >= 0, got {v!r}")
    return float(v)


def _opt_str(sec: Mapping, prefix: str, name: str, source: str) -> Optional[str]:
    v = sec.get(name)
    if v is None:
        return None
    if not isinstance(v, str):
        raise _fail(source, f"{prefix}{name}", f"must be a string, got {v!r}")
    return v


def parse_result(obj: Any, source: str = "<dict>") -> Result:
    """Validate one metrics object; ``source`` names it in error messages."""
    if not isinstance(obj, Mapping):
        raise ResultsError(f"{source}: a metrics file must hold a JSON object, got {type(obj).__name__}")
    for name in ("dataset", "metrics"):
        if name not in obj:
            raise _fail(source, name, "missing")
    key = obj.get("key")  # null: a run that fills no table row (evaluated without --key)
    if key is not None and (not isinstance(key, str) or not key.strip()):
        raise _fail(source, "key", f"must be a non-empty string or null, got {key!r}")
    dataset = obj["dataset"]
    if dataset not in DATASETS:
        raise _fail(source, "dataset", f"{dataset!r} is not one of {DATASETS}")
    split = _opt_str(obj, "", "split", source)
    demo = obj.get("demo", False)
    if not isinstance(demo, bool):
        raise _fail(source, "demo", f"must be true or false, got {demo!r}")

    metrics_in = obj["metrics"]
    if not isinstance(metrics_in, Mapping):
        raise _fail(source, "metrics", f"must be an object, got {type(metrics_in).__name__}")
    metrics: dict[str, Optional[float]] = {}
    for name, v in metrics_in.items():
        if v is None or (_is_number(v) and v == -1):  # pycocotools: -1 = no objects in that range
            metrics[name] = None
        elif not _is_number(v):
            raise _fail(source, f"metrics.{name}", f"must be a number, got {v!r}")
        elif not 0.0 <= v <= 1.0:
            raise _fail(source, f"metrics.{name}",
                        f"{v!r} is not a fraction in [0, 1] (metrics files hold pycocotools fractions, "
                        f"not percentages)")
        else:
            metrics[name] = float(v)

    params = _opt_section(obj, "params", source)
    counts: dict[str, Optional[int]] = {}
    for name in ("inference", "total"):
        v = params.get(name)
        if v is not None and (not _is_number(v) or v < 0 or int(v) != v):
            raise _fail(source, f"params.{name}", f"must be a whole number of parameters, got {v!r}")
        counts[name] = None if v is None else int(v)

    timings = _opt_section(obj, "timings", source)
    model = _opt_section(obj, "model", source)
    batch = _opt_section(obj, "batch", source)
    batch_sizes: dict[str, Optional[int]] = {}
    for name in ("effective", "paper"):
        v = batch.get(name)
        if v is not None and (not _is_number(v) or v < 0 or int(v) != v):
            raise _fail(source, f"batch.{name}", f"must be a whole number of images, got {v!r}")
        batch_sizes[name] = None if v is None else int(v)
    return Result(
        key=key, dataset=dataset, split=split, demo=demo or dataset in DEMO_DATASETS,
        metrics=MappingProxyType(metrics), source=source,
        params_inference=counts["inference"], params_total=counts["total"],
        network_ms=_opt_number(timings, "timings", "network_ms", source),
        decode_ms=_opt_number(timings, "timings", "decode_ms", source),
        device=_opt_str(timings, "timings.", "device", source),
        arch=_opt_str(model, "model.", "arch", source),
        backbone=_opt_str(model, "model.", "backbone", source),
        config_name=_opt_str(obj, "", "config_name", source),
        date=_opt_str(obj, "", "date", source),
        preset=_opt_str(obj, "", "preset", source),
        effective_batch=batch_sizes["effective"], paper_effective_batch=batch_sizes["paper"],
        raw=MappingProxyType(dict(obj)),
    )


def _read_file(path: Path, strict: bool) -> Optional[Result]:
    """Parse ``path``; with ``strict`` False, return None for files that are not metrics files."""
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        if strict:
            raise ResultsError(f"{path}: not a readable JSON file ({e})") from None
        return None
    if not strict and not (isinstance(obj, Mapping) and "metrics" in obj):
        return None
    return parse_result(obj, str(path))


def _is_metrics_name(path: Path) -> bool:
    return path.name.startswith("metrics")


def _scan_folder(folder: Path) -> list[Result]:
    out = []
    for path in sorted(folder.rglob("*.json")):
        named = _is_metrics_name(path)
        if not named and path.stat().st_size > SCAN_SIZE_LIMIT:
            continue
        r = _read_file(path, strict=named)
        if r is not None:
            out.append(r)
    return out


ResultsSource = Union[str, Path, Mapping, Iterable]


def load_results(source: ResultsSource) -> dict[str, Result]:
    """Metrics results by key.

    ``source``: a folder (every ``metrics*.json`` below it, plus any other small ``*.json`` holding an object
    with a ``"metrics"`` key; other JSON files such as predictions are skipped), one JSON file, one metrics
    dict, or a list of dicts / paths. Results whose ``key`` is null fill no row and are left out. Two results
    with the same key are an error naming both sources.
    """
    found: list[Result] = []
    if isinstance(source, (str, Path)):
        path = Path(source)
        if path.is_dir():
            found = _scan_folder(path)
        elif path.is_file():
            found = [_read_file(path, strict=True)]
        else:
            raise ResultsError(f"{path}: no such metrics file or folder")
    elif isinstance(source, Mapping):
        found = [parse_result(source, "<dict>")]
    else:
        for i, item in enumerate(source):
            if isinstance(item, Result):
                found.append(item)
            elif isinstance(item, (str, Path)):
                found.extend(load_results(item).values())
            else:
                found.append(parse_result(item, f"<dict #{i}>"))
    out: dict[str, Result] = {}
    for r in found:
        if r.key is None:
            continue
        if r.key in out:
            raise ResultsError(f"{r.source}: key 'key': {r.key!r} is also given by {out[r.key].source}; "
                               f"keep one result per key")
        out[r.key] = r
    return out


def as_results(results: Optional[ResultsSource]) -> dict[str, Result]:
    """Accept what :func:`load_results` accepts, an already loaded ``{key: Result}``, or None (no results)."""
    if results is None:
        return {}
    if isinstance(results, Mapping) and results and all(isinstance(v, Result) for v in results.values()):
        return dict(results)
    if isinstance(results, Mapping) and not results:
        return {}
    return load_results(results)
