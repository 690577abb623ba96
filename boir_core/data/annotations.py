"""COCO-format person-keypoint annotation files: reading, checking and indexing them (docs/data_format.md).

What is really broken raises :class:`DataError` naming the file, the image and the annotation id: a malformed
file, a missing image, a keypoint list of the wrong length, non-finite numbers, a visibility flag outside
{0, 1, 2}, a degenerate box (or, with ``skip_bad_samples``, is counted and left out by
:class:`~boir_core.data.dataset.KeypointDataset`). Valid but unusual real data is kept: a labelled keypoint
outside the image, boolean ``iscrowd``, float keypoints, nested ``file_name`` paths, extra keys.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

from .profiles import DatasetProfile

__all__ = ["DataError", "read_image", "load_annotation_json", "check_annotation", "index_annotations",
           "num_labelled"]


class DataError(ValueError):
    """Bad input data; the message names the file, image and annotation concerned."""


def read_image(path: str | os.PathLike, image_id: Any = None) -> np.ndarray:
    """Read an image as RGB uint8 [H, W, 3], ignoring EXIF orientation (as the release does)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: image file not found (image id {image_id})")
    img = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if img is None:
        raise DataError(f"{path}: cannot decode image (image id {image_id})")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def load_annotation_json(path: Path) -> dict:
    """The annotation file at ``path``, checked to be an object with ``images`` and ``annotations`` lists."""
    if not path.is_file():
        raise DataError(f"{path}: annotation file not found")
    try:
        with open(path) as f:
            d = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(d, dict):
        raise DataError(f"{path}: top level must be an object with 'images' and 'annotations'")
    for key in ("images", "annotations"):
        if key not in d:
            raise DataError(f"{path}: missing top-level key {key!r}")
        if not isinstance(d[key], list):
            raise DataError(f"{path}: {key!r} must be a list")
    return d


def num_labelled(a: dict) -> int:
    """The labelled keypoints (visibility > 0) of annotation ``a``."""
    kp = a.get("keypoints") or []
    return int(sum(1 for v in kp[2::3] if v > 0))


def check_annotation(a: dict, im: dict, k: int, where: str, profile: DatasetProfile) -> str | None:
    """A message describing what is wrong with annotation ``a`` (of image ``im``, ``k`` keypoints; ``where``
    names it in the message), or None."""
    crowd = bool(a.get("iscrowd", 0))
    if crowd:
        if profile.crowd_ignore_mask and "segmentation" not in a:
            return f"{where}: crowd annotation lacks 'segmentation'"
        return None
    if "keypoints" not in a:
        return f"{where}: missing 'keypoints'"
    kp = a["keypoints"]
    if not isinstance(kp, list) or len(kp) != 3 * k:
        n = len(kp) if isinstance(kp, list) else type(kp).__name__
        return (f"{where}: 'keypoints' has {n} numbers, expected 3 x {k} = {3 * k} for profile "
                f"{profile.name!r}")
    try:
        arr = np.asarray(kp, np.float64).reshape(k, 3)
    except (TypeError, ValueError):
        return f"{where}: 'keypoints' holds non-numbers"
    if not np.isfinite(arr).all():
        return f"{where}: 'keypoints' holds NaN or infinity"
    if not np.isin(arr[:, 2], (0, 1, 2)).all():
        return f"{where}: visibility flags must be 0, 1 or 2, got {sorted(set(arr[:, 2].tolist()))}"
    if not (arr[:, 2] > 0).any():
        return None  # unlabelled person: only used for the ignore mask
    if "bbox" not in a:
        return f"{where}: missing 'bbox'"
    box = a["bbox"]
    if not isinstance(box, list) or len(box) != 4:
        return f"{where}: 'bbox' must be [x, y, w, h], got {box!r}"
    try:
        b = np.asarray(box, np.float64)
    except (TypeError, ValueError):
        return f"{where}: 'bbox' holds non-numbers: {box!r}"
    if not np.isfinite(b).all() or b[2] <= 0 or b[3] <= 0:
        return f"{where}: degenerate bbox {box!r} (width and height must be > 0)"
    # a labelled keypoint outside the image is valid data (a truncated person): kept, counted in the index
    return None


def index_annotations(data: dict, src: Path, profile: DatasetProfile, image_dir: Path, train: bool,
                      bad: Callable[[str], None]) -> tuple[list[dict], dict[str, int]]:
    """Check every image and annotation of ``data`` (read from ``src``); keep the images the split uses, with
    numpy arrays: (records, counts). What is wrong with an image or annotation goes to ``bad`` (which raises
    :class:`DataError`, or records it when bad samples are skipped); such images are left out."""
    k = profile.num_keypoints
    images: dict[Any, dict] = {}
    for i, im in enumerate(data["images"]):
        if not isinstance(im, dict) or "id" not in im or "file_name" not in im:
            raise DataError(f"{src}: images[{i}] lacks 'id' or 'file_name': {str(im)[:120]}")
        images[im["id"]] = im
    per_image: dict[Any, list[dict]] = {iid: [] for iid in images}
    bad_images: set = set()
    for j, a in enumerate(data["annotations"]):
        if not isinstance(a, dict):
            raise DataError(f"{src}: annotations[{j}] is not an object")
        for key in ("id", "image_id"):
            if key not in a:
                raise DataError(f"{src}: annotations[{j}] lacks {key!r}")
        if a["image_id"] not in images:
            raise DataError(f"{src}: annotation id {a['id']} refers to unknown image id {a['image_id']}")
        im = images[a["image_id"]]
        where = f"{src}: annotation id {a['id']} (image id {im['id']}, {im['file_name']})"
        problem = check_annotation(a, im, k, where, profile)
        if problem:
            bad(problem)
            bad_images.add(im["id"])
            continue
        per_image[a["image_id"]].append(a)

    records = []
    stats = dict.fromkeys(("people", "labelled_keypoints", "keypoints_outside_image",
                           "people_with_keypoints_outside", "ignored_annotations"), 0)
    for iid, im in images.items():
        if iid in bad_images:
            continue
        anns = per_image[iid]
        people = [a for a in anns if not a.get("iscrowd", 0) and num_labelled(a) > 0]
        if train:
            if profile.train_filter == "coco" and not people:
                continue
            if profile.train_filter == "any" and not anns:
                continue
        path = image_dir / im["file_name"]
        if not path.is_file():
            ids = ", ".join(str(a["id"]) for a in anns) or "none"
            bad(f"{path}: image file not found (image id {iid}, annotation ids {ids}, listed in {src})")
            continue
        kpts = np.array([a["keypoints"] for a in people], np.float64).reshape(-1, k, 3)
        boxes = np.array([a["bbox"] for a in people], np.float64).reshape(-1, 4)
        ignore = [a for a in anns if a.get("iscrowd", 0) or num_labelled(a) == 0]
        records.append(dict(image_id=iid, path=path, width=im.get("width"), height=im.get("height"),
                            keypoints=kpts, boxes=boxes, ignore=ignore,
                            ann_ids=[a["id"] for a in people]))
        lab = kpts[..., 2] > 0
        stats["people"] += len(people)
        stats["labelled_keypoints"] += int(lab.sum())
        stats["ignored_annotations"] += len(ignore)
        w, h = im.get("width"), im.get("height")
        if w is not None and h is not None:
            x, y = kpts[..., 0], kpts[..., 1]
            out = lab & ((x < 0) | (y < 0) | (x > float(w)) | (y > float(h)))
            stats["keypoints_outside_image"] += int(out.sum())
            stats["people_with_keypoints_outside"] += int(out.any(-1).sum())
    return records, stats
