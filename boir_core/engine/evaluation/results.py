"""COCO keypoint *results* files: checking, atomic writing, reading, and the COCO test-dev upload file.

A result is one detected person::

    {"image_id": 785, "category_id": 1, "keypoints": [x1, y1, s1, ..., xK, yK, sK], "score": 0.71}

Keypoints are in original-image pixels; the third value of each triple is the keypoint score (the
evaluators ignore it). The release writes them to ``{out}/results/keypoints_{split}_results.json``
(:func:`results_path`) and, for COCO test-dev, to the file name the evaluation server asks for,
``person_keypoints_test-dev2017_<alg>_results.json`` (:func:`write_testdev_results`).
"""
from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any, Iterable, Sequence

from ...data.profiles import get_profile
from ...io import atomic_write_json

__all__ = [
    "atomic_write_json",
    "validate_results",
    "results_path",
    "write_results_json",
    "load_results_json",
    "coco_testdev_filename",
    "write_testdev_results",
]


def validate_results(results: Sequence[dict[str, Any]], *, num_keypoints: int | None = None,
                     image_ids: Iterable[int] | None = None, source: str = "results") -> list[dict[str, Any]]:
    """Check every result's keys and values; raise ``ValueError`` naming the first bad one.

    ``num_keypoints`` (K) fixes the keypoint list length to 3K; ``image_ids`` are the images that exist.
    Returns the list unchanged.
    """
    if not isinstance(results, (list, tuple)):
        raise ValueError(f"{source}: expected a list of result dicts, got {type(results).__name__}")
    known = None if image_ids is None else set(int(i) for i in image_ids)
    for i, r in enumerate(results):
        where = f"{source}[{i}]"
        if not isinstance(r, dict):
            raise ValueError(f"{where}: expected a dict, got {type(r).__name__}")
        for key in ("image_id", "category_id", "keypoints", "score"):
            if key not in r:
                raise ValueError(f"{where}: missing key {key!r} (has {sorted(r)})")
        kp = r["keypoints"]
        if not isinstance(kp, (list, tuple)) or len(kp) == 0 or len(kp) % 3:
            raise ValueError(f"{where}: 'keypoints' must be a flat list [x, y, s]*K, got length "
                             f"{len(kp) if hasattr(kp, '__len__') else kp!r}")
        if num_keypoints is not None and len(kp) != 3 * num_keypoints:
            raise ValueError(f"{where}: 'keypoints' has {len(kp) // 3} keypoints, expected {num_keypoints}")
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in kp):
            raise ValueError(f"{where}: 'keypoints' contains a non-finite or non-numeric value")
        if not isinstance(r["score"], (int, float)) or not math.isfinite(r["score"]):
            raise ValueError(f"{where}: 'score' must be a finite number, got {r['score']!r}")
        if known is not None and int(r["image_id"]) not in known:
            raise ValueError(f"{where}: image_id {r['image_id']} is not an image of the ground truth")
    return list(results)


def results_path(out_dir: str | os.PathLike, split: str) -> Path:
    """The release's location: ``{out_dir}/results/keypoints_{split}_results.json``."""
    return Path(out_dir) / "results" / f"keypoints_{split}_results.json"


def write_results_json(results: Sequence[dict[str, Any]], path: str | os.PathLike) -> Path:
    """Validate and write a results list atomically."""
    validate_results(results, source=str(path))
    return atomic_write_json(path, list(results))


def load_results_json(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read and validate a results file; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"results file not found: {path}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: invalid JSON: {e}") from None
    return validate_results(data, source=str(path))


_ALG_RE = re.compile(r"^[A-Za-z0-9.\-]+$")


def coco_testdev_filename(alg: str) -> str:
    """``person_keypoints_test-dev2017_<alg>_results.json``; ``alg`` may use letters, digits, '.', '-'."""
    if not isinstance(alg, str) or not _ALG_RE.match(alg):
        raise ValueError(f"test-dev algorithm name {alg!r} must be non-empty letters, digits, '.' or '-' "
                         "(underscores would break the server's file-name pattern)")
    return f"person_keypoints_test-dev2017_{alg}_results.json"


def write_testdev_results(results: Sequence[dict[str, Any]], out_dir: str | os.PathLike, alg: str = "boir",
                          image_ids: Iterable[int] | None = None) -> Path:
    """Write the COCO test-dev upload file into ``out_dir`` (no local evaluation: test-dev has no labels).

    ``image_ids`` (from ``image_info_test-dev2017.json``), when given, is checked to contain every result's
    image. Zip the file before uploading to the evaluation server.
    """
    validate_results(results, num_keypoints=get_profile("coco").num_keypoints, image_ids=image_ids,
                     source="test-dev results")
    return atomic_write_json(Path(out_dir) / coco_testdev_filename(alg), list(results))
