"""AP on the crowded and on the sparse images of a test split, scored separately.

The paper's point is that BoIR separates people where they overlap. A data set in the CrowdPose format
gives every image a ``crowdIndex`` (SynthCrowd computes it as CrowdPose does); :func:`crowd_split_metrics`
scores one results file on the images with ``crowdIndex >= threshold`` (crowded) and on the rest (sparse),
each against its own ground truth, with the data set's usual protocol.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

from .evaluate import evaluate_results
from .results import load_results_json

__all__ = ["CROWDED_THRESHOLD", "split_by_crowd_index", "crowd_split_metrics"]

CROWDED_THRESHOLD = 0.5


def split_by_crowd_index(gt: dict[str, Any], threshold: float = CROWDED_THRESHOLD,
                         source: str = "<ground truth>") -> tuple[list[int], list[int]]:
    """(crowded image ids, sparse image ids) of a COCO-format ground truth with ``crowdIndex`` per image."""
    missing = [im["id"] for im in gt["images"] if "crowdIndex" not in im]
    if missing:
        raise ValueError(f"{source}: {len(missing)} images have no crowdIndex (first: image id {missing[0]}); "
                         f"only CrowdPose-format annotations (CrowdPose, SynthCrowd) can be split by crowding")
    crowded = [im["id"] for im in gt["images"] if float(im["crowdIndex"]) >= threshold]
    sparse = [im["id"] for im in gt["images"] if float(im["crowdIndex"]) < threshold]
    return crowded, sparse


def _subset(gt: dict[str, Any], ids: set) -> dict[str, Any]:
    out = dict(gt)
    out["images"] = [im for im in gt["images"] if im["id"] in ids]
    out["annotations"] = [a for a in gt.get("annotations", []) if a["image_id"] in ids]
    return out


def crowd_split_metrics(results: Sequence[dict[str, Any]] | str | os.PathLike, gt_json: str | os.PathLike,
                        dataset: str = "synthcrowd", threshold: float = CROWDED_THRESHOLD,
                        backend: str = "pycocotools") -> dict[str, dict[str, float]]:
    """``{"crowded": metrics, "sparse": metrics}``, each with ``images`` (how many) and ``crowd_index``
    (their mean), for a results file (or list) on ``gt_json``."""
    gt = json.loads(Path(gt_json).read_text())
    if isinstance(results, (str, os.PathLike)):
        results = load_results_json(results)
    index = {im["id"]: float(im.get("crowdIndex", 0.0)) for im in gt["images"]}
    out = {}
    for name, ids in zip(("crowded", "sparse"), split_by_crowd_index(gt, threshold, str(gt_json))):
        keep = set(ids)
        m = evaluate_results([r for r in results if r["image_id"] in keep], _subset(gt, keep), dataset=dataset,
                             backend=backend) if keep else {}
        m["images"] = len(ids)
        m["crowd_index"] = sum(index[i] for i in ids) / max(len(ids), 1)
        out[name] = m
    return out
