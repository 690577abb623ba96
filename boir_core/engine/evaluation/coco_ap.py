"""The COCO keypoint metrics written out plainly: OKS, AP and AR, and CrowdPose's crowd index.

A short, loop-based re-derivation for reading and for checking (notebook 05 compares it with pycocotools).
It covers the common case — no crowd regions, every ground-truth person has a labelled keypoint — with the
"all" area range and ``max_dets`` detections per image:

* **OKS** of a detection d and a ground-truth person g with area s² (the annotation's ``area``) over g's
  labelled keypoints (v > 0)::

      OKS = mean_{k: v_k > 0} exp(−‖d_k − g_k‖² / (2 · s² · (2σ_k)²))

* **AP at a threshold t**: keep each image's ``max_dets`` best-scored detections; per image, walk them by
  score and match each to the still unmatched person of highest OKS ≥ t (true positive) or to none (false
  positive); pool all images, sort by score, and turn the cumulative counts into recall (TP / people) and
  precision (TP / detections so far). Precision is made non-increasing from the right and read at the 101
  recall points 0, 0.01, …, 1 (0 beyond the highest recall); AP(t) is their mean.
* **AP** = mean of AP(t) over t = 0.50, 0.55, …, 0.95; AP50 and AP75 are single thresholds.
* **AR** = mean over the same thresholds of the final recall.
* **Crowd index** of an image (CrowdPose): for each person, the labelled joints of *other* people inside its
  box divided by its own labelled joints, averaged over the people. CrowdPose's easy / medium / hard subsets
  are images with index < 0.2, < 0.8 and ≥ 0.8.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

__all__ = ["OKS_THRESHOLDS", "oks_matrix", "keypoint_ap", "crowd_index"]

#: t = 0.50, 0.55, …, 0.95 (the same floats as pycocotools).
OKS_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)


def oks_matrix(detections: Sequence[Sequence[float]], people: Sequence[Mapping[str, Any]],
               sigmas: Sequence[float]) -> np.ndarray:
    """[D, G] OKS of flat keypoint lists (x, y, score)·K against ground-truth annotations (``keypoints``,
    ``area``), over each person's labelled keypoints."""
    var = (2 * np.asarray(sigmas, dtype=np.float64)) ** 2
    out = np.zeros((len(detections), len(people)))
    for j, g in enumerate(people):
        gk = np.asarray(g["keypoints"], dtype=np.float64).reshape(-1, 3)
        vis = gk[:, 2] > 0
        for i, d in enumerate(detections):
            dk = np.asarray(d, dtype=np.float64).reshape(-1, 3)
            d2 = ((dk[:, :2] - gk[:, :2]) ** 2).sum(1)
            e = d2 / var / (g["area"] + np.spacing(1)) / 2
            out[i, j] = np.exp(-e[vis]).mean()
    return out


def keypoint_ap(results: Sequence[Mapping[str, Any]], gt: Mapping[str, Any], sigmas: Sequence[float],
                max_dets: int = 20) -> dict[str, float]:
    """AP, AP50, AP75 and AR (area range "all") of COCO-format keypoint ``results`` against the ground-truth
    dict ``gt`` (no crowd regions, every person labelled; see the module docstring)."""
    people: dict[Any, list] = {}
    for a in gt["annotations"]:
        if a.get("iscrowd", 0) or a.get("num_keypoints", 1) == 0:
            raise ValueError("keypoint_ap covers data without crowd regions or unlabelled people; use pycocotools")
        people.setdefault(a["image_id"], []).append(a)
    dets: dict[Any, list] = {}
    for r in results:
        dets.setdefault(r["image_id"], []).append(r)
    n_people = sum(len(v) for v in people.values())
    ap, ar = [], []
    for t in OKS_THRESHOLDS:
        scored = []  # (score, is true positive) over all images
        for im in {im["id"] for im in gt["images"]}:
            ds = sorted(dets.get(im, []), key=lambda r: -r["score"])[:max_dets]
            gs = people.get(im, [])
            o = oks_matrix([d["keypoints"] for d in ds], gs, sigmas) if ds and gs else np.zeros((len(ds), 0))
            taken = set()
            for i, d in enumerate(ds):
                best, match = min(t, 1 - 1e-10), None
                for j in range(len(gs)):
                    if j not in taken and o[i, j] >= best:
                        best, match = o[i, j], j
                if match is not None:
                    taken.add(match)
                scored.append((d["score"], match is not None))
        scored.sort(key=lambda s: -s[0])
        tp = np.cumsum([s[1] for s in scored], dtype=np.float64)
        fp = np.cumsum([not s[1] for s in scored], dtype=np.float64)
        if not len(scored) or n_people == 0:
            ap.append(0.0)
            ar.append(0.0)
            continue
        recall = tp / n_people
        precision = np.maximum.accumulate((tp / np.maximum(tp + fp, np.spacing(1)))[::-1])[::-1]
        rec_points = np.linspace(0, 1, 101)
        idx = np.searchsorted(recall, rec_points, side="left")
        ap.append(float(np.where(idx < len(precision), precision[np.minimum(idx, len(precision) - 1)], 0).mean()))
        ar.append(float(recall[-1]))
    return {"AP": float(np.mean(ap)), "AP50": ap[0], "AP75": ap[5], "AR": float(np.mean(ar))}


def crowd_index(people: Sequence[Mapping[str, Any]]) -> float:
    """CrowdPose's crowd index of one image from its annotations (``bbox`` xywh, ``keypoints``)."""
    ratios = []
    for i, a in enumerate(people):
        x, y, w, h = a["bbox"]
        own = np.asarray(a["keypoints"], dtype=np.float64).reshape(-1, 3)
        n_own = int((own[:, 2] > 0).sum())
        if n_own == 0:
            continue
        n_other = 0
        for j, b in enumerate(people):
            if j != i:
                k = np.asarray(b["keypoints"], dtype=np.float64).reshape(-1, 3)
                k = k[k[:, 2] > 0]
                n_other += int(((k[:, 0] >= x) & (k[:, 0] <= x + w) & (k[:, 1] >= y) & (k[:, 1] <= y + h)).sum())
        ratios.append(n_other / n_own)
    return float(np.mean(ratios)) if ratios else 0.0
