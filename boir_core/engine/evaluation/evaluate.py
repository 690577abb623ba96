"""Keypoint evaluation for COCO, OCHuman, CrowdPose and SynthCrowd (docs/inference.md#evaluation), and the metrics JSON.

Two protocols:

* **COCO** (``coco``, ``ochuman``, ``synthcrowd``): OKS-based AP over IoU thresholds 0.50:0.05:0.95,
  ``maxDets`` 20, area ranges all / medium (32²–96²) / large (> 96²), the GT ``area`` as the person's scale,
  COCO's 17 sigmas. Metrics: AP, AP50, AP75, AP_M, AP_L, AR, AR50, AR75, AR_M, AR_L. Backend:
  ``pycocotools`` (the reference) or ``faster-coco-eval`` (a C++ port; its numbers are identical, tested).
* **CrowdPose** (``crowdpose``, ``synthcrowd14``): the CrowdPose API's protocol, run through
  faster-coco-eval's ``iouType="keypoints_crowd"``:

  - the 14 CrowdPose sigmas;
  - ``use_area=False``: the OKS scale is **w·h·0.53 of the GT box** (CrowdPose GT has no ``area``);
    faster-coco-eval computes exactly ``bbox[2] * bbox[3] * 0.53`` in ``computeOks``;
  - ``maxDets`` 20; metrics AP, AP50, AP75, AR, AR50, AR75 and AP_easy / AP_medium / AP_hard, the AP over the
    images whose ``crowdIndex`` is < 0.2 / in [0.2, 0.8) / ≥ 0.8 (rounded to 4 decimals by the backend,
    as the CrowdPose API does).

  faster-coco-eval computes the split by re-reading the GT and overwriting the evaluator's image ids, so a
  fresh evaluator is built for every call. pycocotools has no CrowdPose protocol: for these data sets the
  ``backend`` argument is ignored and faster-coco-eval is always used.

A metric is -1 where the subset has no ground truth (e.g. AP_hard with no image of crowdIndex ≥ 0.8),
following pycocotools. Values are fractions (0.705, not 70.5).

:func:`write_metrics_json` stores one evaluation with its provenance (:class:`MetricsProvenance`: config,
checkpoint hash, preset, table key) and what it measured (:class:`Measurements`: images, timings, parameter
counts) in the schema the paper-table renderer reads.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import datetime
import hashlib
import io
import json
import math
import os
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import faster_coco_eval
import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from boir_core.config import CUSTOM, ConfigError, preset_label
from boir_core.data.profiles import COCO_SIGMAS, CROWDPOSE_SIGMAS, PROFILES
from boir_core.engine.evaluation.results import atomic_write_json, load_results_json, validate_results

__all__ = [
    "COCO_OKS_SIGMAS",
    "CROWDPOSE_OKS_SIGMAS",
    "COCO_METRICS",
    "CROWDPOSE_METRICS",
    "DATASET_PROTOCOLS",
    "evaluate_results",
    "evaluation_backend",
    "timings_from_decode",
    "MetricsProvenance",
    "Measurements",
    "write_metrics_json",
    "sha256_file",
]

#: The evaluators' hard-coded OKS sigmas (true σ; the release's TEST.OKS_SIGMAS / 10), kept in one place:
#: the data-set profiles.
COCO_OKS_SIGMAS: tuple[float, ...] = COCO_SIGMAS
CROWDPOSE_OKS_SIGMAS: tuple[float, ...] = CROWDPOSE_SIGMAS

COCO_METRICS: tuple[str, ...] = ("AP", "AP50", "AP75", "AP_M", "AP_L", "AR", "AR50", "AR75", "AR_M", "AR_L")
CROWDPOSE_METRICS: tuple[str, ...] = ("AP", "AP50", "AP75", "AR", "AR50", "AR75", "AP_easy", "AP_medium",
                                      "AP_hard")

#: data set -> (protocol, sigmas), from the data-set profiles; ``custom`` (a keypoint set of one's own,
#: boir_core.data.custom) follows COCO's protocol with its own sigmas, which the caller passes
DATASET_PROTOCOLS: dict[str, tuple[str, tuple[float, ...] | None]] = {
    **{name: (p.protocol, p.sigmas) for name, p in PROFILES.items()}, CUSTOM: ("coco", None)}

Backend = Literal["pycocotools", "faster-coco-eval"]


def evaluation_backend(dataset: str, backend: str) -> str:
    """The backend actually used: CrowdPose-protocol data sets always use faster-coco-eval."""
    if dataset not in DATASET_PROTOCOLS:
        raise ValueError(f"unknown data set {dataset!r}; known: {', '.join(DATASET_PROTOCOLS)}")
    if backend not in ("pycocotools", "faster-coco-eval"):
        raise ValueError(f"unknown evaluation backend {backend!r}; use 'pycocotools' or 'faster-coco-eval'")
    return "faster-coco-eval" if DATASET_PROTOCOLS[dataset][0] == "crowdpose" else backend


def _load_gt(gt_json: str | os.PathLike | Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    if isinstance(gt_json, Mapping):
        return copy.deepcopy(dict(gt_json)), "<ground-truth dict>"
    path = Path(gt_json)
    if not path.is_file():
        raise FileNotFoundError(f"ground-truth file not found: {path}")
    try:
        return json.loads(path.read_text()), str(path)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: invalid JSON: {e}") from None


def _check_gt(gt: dict[str, Any], source: str, protocol: str, num_keypoints: int) -> None:
    for key in ("images", "annotations", "categories"):
        if key not in gt:
            raise ValueError(f"{source}: ground truth has no {key!r} list (keys: {sorted(gt)})")
    for i, a in enumerate(gt["annotations"]):
        for key in ("image_id", "keypoints", "bbox", "num_keypoints"):
            if key not in a:
                raise ValueError(f"{source}: annotations[{i}] (id {a.get('id')}) has no {key!r}")
        if len(a["keypoints"]) != 3 * num_keypoints:
            raise ValueError(f"{source}: annotations[{i}] has {len(a['keypoints']) // 3} keypoints, "
                             f"the protocol expects {num_keypoints}")
        if protocol == "coco" and "area" not in a:
            raise ValueError(f"{source}: annotations[{i}] (id {a.get('id')}) has no 'area', which the COCO "
                             "protocol uses as the person's scale")
    if protocol == "crowdpose":
        for im in gt["images"]:
            if "crowdIndex" not in im:
                raise ValueError(f"{source}: image {im.get('id')} has no 'crowdIndex' (the CrowdPose protocol "
                                 "splits images into easy/medium/hard by it)")


def _silent() -> contextlib.AbstractContextManager:
    return contextlib.redirect_stdout(io.StringIO())


def _stats_pycocotools(gt: dict[str, Any], results: list[dict[str, Any]], sigmas: Sequence[float]) -> np.ndarray:
    with _silent():
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(results)
        ev = COCOeval(coco_gt, coco_dt, "keypoints")
        ev.params.kpt_oks_sigmas = np.asarray(sigmas, dtype=np.float64)
        assert ev.params.maxDets == [20], ev.params.maxDets
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return np.asarray(ev.stats[:10], dtype=np.float64)


def _stats_faster(gt: dict[str, Any], results: list[dict[str, Any]], sigmas: Sequence[float],
                  protocol: str) -> np.ndarray:
    coco_gt = faster_coco_eval.COCO(gt)  # a fresh evaluator every call: the crowd split mutates params.imgIds
    coco_dt = coco_gt.loadRes(results)
    crowd = protocol == "crowdpose"
    ev = faster_coco_eval.COCOeval_faster(coco_gt, coco_dt, "keypoints_crowd" if crowd else "keypoints",
                         kpt_oks_sigmas=np.asarray(sigmas, dtype=np.float64), use_area=not crowd,
                         print_function=lambda *a, **k: None)
    assert ev.params.maxDets == [20], ev.params.maxDets
    ev.run()
    return np.asarray(ev.all_stats[: 9 if crowd else 10], dtype=np.float64)


def evaluate_results(results: Sequence[dict[str, Any]] | str | os.PathLike,
                     gt_json: str | os.PathLike | Mapping[str, Any], dataset: str = "coco",
                     backend: Backend = "pycocotools", *, sigmas: Sequence[float] | None = None) -> dict[str, float]:
    """Evaluate COCO keypoint results against a ground-truth JSON (module docstring).

    Args:
        results: result dicts (:mod:`boir_core.engine.evaluation.results`) or the path of a results file.
        gt_json: path of the annotation file, or its loaded dict.
        dataset: 'coco' | 'ochuman' | 'synthcrowd' | 'custom' (COCO protocol) or 'crowdpose' | 'synthcrowd14'
            (CrowdPose protocol).
        backend: 'pycocotools' or 'faster-coco-eval' (COCO protocol only; see :func:`evaluation_backend`).
        sigmas: override the protocol's OKS sigmas (true σ, K values); required for 'custom' (its profile's,
            :func:`boir_core.data.profile_for`).

    Returns ``{metric: value}`` with :data:`COCO_METRICS` or :data:`CROWDPOSE_METRICS` as keys. With no
    results at all every metric is 0.
    """
    used = evaluation_backend(dataset, backend)
    protocol, default_sigmas = DATASET_PROTOCOLS[dataset]
    if sigmas is None and default_sigmas is None:
        raise ValueError(f"evaluating data set {dataset!r} needs its OKS sigmas (sigmas=boir_core.data.profile_for("
                         "cfg).sigmas)")
    sig = tuple(float(s) for s in (default_sigmas if sigmas is None else sigmas))
    names = CROWDPOSE_METRICS if protocol == "crowdpose" else COCO_METRICS
    gt, source = _load_gt(gt_json)
    _check_gt(gt, source, protocol, len(sig))
    if isinstance(results, (str, os.PathLike)):
        results = load_results_json(results)
    results = validate_results(results, num_keypoints=len(sig), image_ids=(im["id"] for im in gt["images"]))
    if len(results) == 0:
        return {name: 0.0 for name in names}
    results = copy.deepcopy(results)  # both libraries add keys (area, bbox, id) to the dicts
    if used == "pycocotools":
        stats = _stats_pycocotools(gt, results, sig)
    else:
        stats = _stats_faster(gt, results, sig, protocol)
    return {name: float(v) for name, v in zip(names, stats)}


# ---- the metrics JSON --------------------------------------------------------------------------------------

def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def timings_from_decode(result: Any, device: str | None = None) -> dict[str, Any]:
    """``{"network_ms", "decode_ms", "device"}`` per image from a
    :class:`~boir_core.engine.inference.decode.DecodeResult` (or a
    :class:`~boir_core.engine.inference.predictor.DecodedDataset`: the same fields)."""
    n = max(1, int(getattr(result, "num_images", 1)))
    return {"network_ms": 1000.0 * result.time_network / n, "decode_ms": 1000.0 * result.time_decode / n,
            "device": device or getattr(result, "device", None)}


def _config_parts(config: Any) -> tuple[dict[str, Any] | None, str | None, dict[str, Any]]:
    if config is None:
        return None, None, {"arch": None, "backbone": None}
    if dataclasses.is_dataclass(config):
        d = dataclasses.asdict(config)
    elif isinstance(config, Mapping):
        d = copy.deepcopy(dict(config))
    else:
        raise TypeError(f"config must be a Config, a dict or None, got {type(config).__name__}")
    model = d.get("model") or {}
    return d, d.get("name"), {"arch": model.get("arch"), "backbone": model.get("backbone")}


def _check_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    out = {}
    for k, v in metrics.items():
        if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)) or not math.isfinite(v):
            raise ValueError(f"metrics[{k!r}] = {v!r} is not a finite number")
        if not -1.0 <= float(v) <= 1.0:
            raise ValueError(f"metrics[{k!r}] = {v!r}: metrics are fractions in [0, 1] (-1: undefined), "
                             "not percentages")
        out[str(k)] = float(v)
    return out


@dataclasses.dataclass(frozen=True)
class MetricsProvenance:
    """Where one evaluation's numbers come from, as its metrics file records them.

    ``config``: a :class:`~boir_core.config.Config` (or its dict; None: none recorded); ``checkpoint``: the
    weights file, whose SHA-256 :func:`write_metrics_json` computes; ``preset``: what produced the weights
    (None: :func:`boir_core.config.preset_label` of ``config``); ``key``: the paper-table row this run
    reproduces; ``demo``: marks toy runs; ``batch``: the effective batch the weights were trained with and the
    paper's (recorded by our training; None when the weights record none), so that ``reproduce`` can mark a row
    trained off the paper's batch.
    """

    config: Any = None
    checkpoint: str | os.PathLike | None = None
    preset: str | None = None
    key: str | None = None
    demo: bool = False
    batch: Mapping[str, Any] | None = None


@dataclasses.dataclass(frozen=True)
class Measurements:
    """What one evaluation counted and timed besides its scores: ``images``, how many images of the split were
    decoded and scored (``test.max_images`` may cap it; None: not recorded); ``timings``, per image, a dict
    ``{"network_ms", "decode_ms", "device"}`` or a :class:`~boir_core.engine.inference.decode.DecodeResult`
    (:func:`timings_from_decode`); ``params``, free-form numbers (e.g. the network's parameter counts)."""

    images: int | None = None
    timings: Mapping[str, Any] | Any | None = None
    params: Mapping[str, Any] | None = None


def write_metrics_json(path: str | os.PathLike, *, dataset: str, split: str, metrics: Mapping[str, Any],
                       provenance: MetricsProvenance = MetricsProvenance(),
                       measured: Measurements = Measurements()) -> Path:
    """Write one evaluation's metrics with its provenance, atomically. Returns the path.

    Schema (top-level keys are fixed; ``boir_core.paper`` reads them)::

        {"dataset", "split", "images", "key", "model": {"arch", "backbone"}, "config_name", "config",
         "checkpoint": {"path", "sha256"}, "metrics": {...fractions...},
         "timings": {"network_ms", "decode_ms", "device"}, "params": {...}, "demo": bool, "date", "preset",
         "batch": {"effective", "paper", ...} or null}

    ``metrics`` are fractions in [0, 1] (-1: undefined); ``provenance`` (:class:`MetricsProvenance`) gives
    ``config``, ``checkpoint``, ``key``, ``demo``, ``preset`` and ``batch``; ``measured`` (:class:`Measurements`)
    gives ``images``, ``timings`` and ``params``. Both default to nothing recorded::

        write_metrics_json(path, dataset="coco", split="val", metrics={"AP": 0.7},
                           provenance=MetricsProvenance(config=cfg, key="boir_w32_coco_val"),
                           measured=Measurements(images=5000, timings={"network_ms": 30.0, "decode_ms": 4.2,
                                                                       "device": "cpu"}))
    """
    if not isinstance(provenance, MetricsProvenance):
        raise TypeError(f"provenance= takes a MetricsProvenance, got {type(provenance).__name__}")
    if not isinstance(measured, Measurements):
        raise TypeError(f"measured= takes a Measurements, got {type(measured).__name__}")
    timings, checkpoint, preset = measured.timings, provenance.checkpoint, provenance.preset
    if timings is not None and not isinstance(timings, Mapping):
        timings = timings_from_decode(timings)
    t = dict(timings or {})
    unknown = set(t) - {"network_ms", "decode_ms", "device"}
    if unknown:
        raise ValueError(f"timings: unknown keys {sorted(unknown)} (allowed: network_ms, decode_ms, device)")
    config_dict, config_name, model = _config_parts(provenance.config)
    if preset is None and config_dict:
        try:
            preset = preset_label(config_dict)
        except (ConfigError, TypeError, AttributeError):  # a foreign or older config dict
            preset = None
    record = {
        "dataset": dataset,
        "split": split,
        "images": None if measured.images is None else int(measured.images),
        "key": provenance.key,
        "model": model,
        "config_name": config_name,
        "config": config_dict,
        "checkpoint": {"path": None if checkpoint is None else str(checkpoint),
                       "sha256": None if checkpoint is None else sha256_file(checkpoint)},
        "metrics": _check_metrics(metrics),
        "timings": {"network_ms": t.get("network_ms"), "decode_ms": t.get("decode_ms"), "device": t.get("device")},
        "params": dict(measured.params or {}),
        "demo": bool(provenance.demo),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "preset": preset,
        "batch": None if provenance.batch is None else dict(provenance.batch),
    }
    return atomic_write_json(path, record, indent=2)
