"""COCO-format person-keypoint annotation files: reading, checking and indexing them (docs/data_format.md).

Everything is checked when the data set is built, before any work (docs/data_format.md#checked-up-front): the
types of every field the kit reads (ids are integers, ``width`` / ``height`` positive whole numbers,
``keypoints`` a list of 3·K numbers, ``bbox`` 4 numbers, ``iscrowd`` 0, 1, true or false, ``num_keypoints`` a
whole number), unique image and annotation ids, and every image file the split uses (complete, and as large
as the file says: :mod:`.imagefiles`, from the file's header).

What is really broken raises :class:`DataError` naming the file, the image and the annotation id, the key and
the value: a malformed file, a field of the wrong type, a duplicate id, a missing, truncated or wrongly sized
image, a keypoint list of the wrong length, non-finite numbers, a visibility flag outside {0, 1, 2}, a
degenerate box (or, with ``skip_bad_samples``, an image with such an annotation or file is counted and left
out by :class:`~boir_core.data.dataset.KeypointDataset`). Valid but unusual real data is kept: a labelled
keypoint outside the image, boolean ``iscrowd``, float keypoints, nested ``file_name`` paths, extra keys.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Sequence

import cv2
import numpy as np

from .errors import DataError
from .imagefiles import image_format, incomplete_reason, inspect_image_file
from .profiles import DatasetProfile

__all__ = ["DataError", "read_image", "load_annotation_json", "check_annotation", "index_annotations",
           "num_labelled"]

_READ_FLAGS = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
_NUMBER_TYPES = {int, float}


def read_image(path: str | os.PathLike, image_id: Any = None) -> np.ndarray:
    """Read an image as RGB uint8 [H, W, 3], ignoring EXIF orientation (as the release does).

    A JPEG or PNG file that is cut short is an error (libjpeg would decode it with the missing part grey and
    only a warning): :func:`boir_core.data.imagefiles.incomplete_reason`."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: image file not found (image id {image_id})")
    data = path.read_bytes()
    problem = incomplete_reason(data, image_format(data[:8]))
    if problem:
        raise DataError(f"{path}: {problem} (image id {image_id}); copy or download the file again")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), _READ_FLAGS) if data else None
    if img is None:
        raise DataError(f"{path}: cannot decode image (image id {image_id})")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_size(v: Any) -> bool:
    """A positive whole number of pixels (640, or 640.0 as some converters write it)."""
    return _is_number(v) and v > 0 and float(v).is_integer()


def _show(v: Any) -> str:
    """A value and its JSON-ish type, short enough for a one-line message."""
    r = repr(v)
    kind = {bool: "boolean", str: "string", int: "integer", float: "number", list: "list", dict: "object",
            type(None): "null"}.get(type(v), type(v).__name__)
    return f"{r if len(r) <= 60 else r[:57] + '...'} (a {kind})"


def read_json_object(path: Path | str, keys: Sequence[str]) -> dict:
    """The JSON object in the file at ``path``; a file that is not JSON, or whose top level is not an object,
    is a :class:`DataError` naming the file (and the ``keys`` it should hold)."""
    try:
        with open(path) as f:
            d = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(d, dict):
        named = ", ".join(f"'{k}'" for k in keys[:-1]) + f" and '{keys[-1]}'" if len(keys) > 1 else f"'{keys[0]}'"
        raise DataError(f"{path}: top level must be an object with {named}")
    return d


def load_annotation_json(path: Path) -> dict:
    """The annotation file at ``path``, checked to be an object with ``images`` and ``annotations`` lists."""
    if not path.is_file():
        raise DataError(f"{path}: annotation file not found")
    d = read_json_object(path, ("images", "annotations"))
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


def _list_problem(value: Any, key: str, what: str, where: str) -> str | None:
    """What is wrong with ``value`` as a list of numbers (``what`` says how many, in words; the caller checks
    the length), or None."""
    if not isinstance(value, list):
        return f"{where}: {key!r} must be a list of {what}, got {_show(value)}"
    if set(map(type, value)) <= _NUMBER_TYPES:  # the quick test (JSON numbers are exactly int and float)
        return None
    i, v = next((i, v) for i, v in enumerate(value) if not _is_number(v))
    return f"{where}: {key!r} must be a list of {what}; item {i} is {_show(v)}"


def check_annotation(a: dict, im: dict, k: int, where: str, profile: DatasetProfile) -> str | None:
    """A message describing what is wrong with annotation ``a`` (of image ``im``, ``k`` keypoints; ``where``
    names it in the message), or None.

    Types first, for every annotation (crowd regions too): ``iscrowd`` 0, 1, true or false; ``num_keypoints``
    a whole number; ``keypoints`` a list of 3·k numbers and ``bbox`` a list of 4 numbers where present. Then,
    for a person: keypoints present, finite, visibility flags in {0, 1, 2}; a labelled person's box
    non-degenerate."""
    crowd = a.get("iscrowd", 0)
    if not (isinstance(crowd, bool) or (_is_int(crowd) and crowd in (0, 1))):
        return f"{where}: 'iscrowd' must be 0, 1, true or false, got {_show(crowd)}"
    if "num_keypoints" in a and not (_is_int(a["num_keypoints"]) and a["num_keypoints"] >= 0):
        return f"{where}: 'num_keypoints' must be a whole number >= 0, got {_show(a['num_keypoints'])}"
    if "keypoints" in a:
        kp = a["keypoints"]
        problem = _list_problem(kp, "keypoints", f"3 x {k} = {3 * k} numbers", where)
        if problem:
            return problem
        if len(kp) != 3 * k:
            return (f"{where}: 'keypoints' has {len(kp)} numbers, expected 3 x {k} = {3 * k} for profile "
                    f"{profile.name!r}")
    if "bbox" in a:
        problem = _list_problem(a["bbox"], "bbox", "4 numbers [x, y, w, h]", where)
        if problem:
            return problem
        if len(a["bbox"]) != 4:
            return f"{where}: 'bbox' must be [x, y, w, h], got {a['bbox']!r}"
    if crowd:
        if profile.crowd_ignore_mask and "segmentation" not in a:
            return f"{where}: crowd annotation lacks 'segmentation'"
        return None
    if "keypoints" not in a:
        return f"{where}: missing 'keypoints'"
    arr = np.asarray(a["keypoints"], np.float64).reshape(k, 3)
    if not np.isfinite(arr).all():
        return f"{where}: 'keypoints' holds NaN or infinity"
    if not np.isin(arr[:, 2], (0, 1, 2)).all():
        return f"{where}: visibility flags must be 0, 1 or 2, got {sorted(set(arr[:, 2].tolist()))}"
    if not (arr[:, 2] > 0).any():
        return None  # unlabelled person: only used for the ignore mask
    if "bbox" not in a:
        return f"{where}: missing 'bbox'"
    box = a["bbox"]
    b = np.asarray(box, np.float64)
    if not np.isfinite(b).all() or b[2] <= 0 or b[3] <= 0:
        return f"{where}: degenerate bbox {box!r} (width and height must be > 0)"
    # a labelled keypoint outside the image is valid data (a truncated person): kept, counted in the index
    return None


def _check_images(images: list, src: Path) -> dict[int, dict]:
    """The image entries by id, each checked: an object with an integer ``id`` (unique), a non-empty string
    ``file_name`` and, where given, positive whole ``width`` / ``height``; else :class:`DataError`."""
    by_id: dict[int, dict] = {}
    position: dict[int, int] = {}
    for i, im in enumerate(images):
        if not isinstance(im, dict) or "id" not in im or "file_name" not in im:
            raise DataError(f"{src}: images[{i}] lacks 'id' or 'file_name': {str(im)[:120]}")
        iid, name = im["id"], im["file_name"]
        if not _is_int(iid):
            raise DataError(f"{src}: images[{i}] ({name}): 'id' must be an integer, got {_show(iid)}")
        if not isinstance(name, str) or not name:
            raise DataError(f"{src}: images[{i}] (image id {iid}): 'file_name' must be a non-empty string, "
                            f"got {_show(name)}")
        for key in ("width", "height"):
            if im.get(key) is not None and not _is_size(im[key]):
                raise DataError(f"{src}: images[{i}] (image id {iid}, {name}): {key!r} must be a positive whole "
                                f"number of pixels, got {_show(im[key])}")
        if iid in by_id:
            j = position[iid]
            raise DataError(f"{src}: images[{j}] ({by_id[iid]['file_name']}) and images[{i}] ({name}) both have "
                            f"image id {iid}; image ids must be unique (the annotations of one would be given "
                            "to the other)")
        by_id[iid] = im
        position[iid] = i
    return by_id


def _image_file_problem(path: Path, im: dict, anns: list[dict], src: Path) -> str | None:
    """What is wrong with the image file of ``im`` (cut short, or another size than ``src`` says), from its
    header (:mod:`.imagefiles`), or None."""
    ids = ", ".join(str(a["id"]) for a in anns) or "none"
    named = f"image id {im['id']}, annotation ids {ids}, listed in {src}"
    try:
        info = inspect_image_file(path)
    except OSError as e:
        return f"{path}: cannot read the image file ({e.strerror or e}) ({named})"
    if info is None:
        return None  # not a JPEG or PNG: OpenCV decodes it (and its size is compared) when it is read
    if info.problem:
        return f"{path}: {info.problem} ({named}); copy or download the file again"
    w, h = im.get("width"), im.get("height")
    if info.size is not None and w is not None and h is not None and info.size != (int(w), int(h)):
        return (f"{path}: the image is {info.size[0]}x{info.size[1]} pixels but {src} says width {w}, "
                f"height {h} ({named})")
    return None


def index_annotations(data: dict, src: Path, profile: DatasetProfile, image_dir: Path, train: bool,
                      bad: Callable[[str], None]) -> tuple[list[dict], dict[str, int]]:
    """Check every image and annotation of ``data`` (read from ``src``); keep the images the split uses, with
    numpy arrays: (records, counts). A malformed image entry, an annotation without an integer ``id`` and
    ``image_id``, a duplicate id or an annotation of an unknown image raises :class:`DataError`. What is wrong
    with one annotation or with an image file the split uses goes to ``bad`` (which raises
    :class:`DataError`, or records it when bad samples are skipped); such images are left out."""
    k = profile.num_keypoints
    images = _check_images(data["images"], src)
    per_image: dict[Any, list[dict]] = {iid: [] for iid in images}
    bad_images: set = set()
    seen: dict[int, int] = {}
    for j, a in enumerate(data["annotations"]):
        if not isinstance(a, dict):
            raise DataError(f"{src}: annotations[{j}] is not an object")
        for key in ("id", "image_id"):
            if key not in a:
                raise DataError(f"{src}: annotations[{j}] lacks {key!r}")
        for key in ("id", "image_id"):
            if not _is_int(a[key]):
                raise DataError(f"{src}: annotations[{j}] (annotation id {a['id']!r}, image id {a['image_id']!r}): "
                                f"{key!r} must be an integer, got {_show(a[key])}")
        if a["id"] in seen:
            i = seen[a["id"]]
            raise DataError(f"{src}: annotations[{i}] (image id {data['annotations'][i]['image_id']}) and "
                            f"annotations[{j}] (image id {a['image_id']}) both have annotation id {a['id']}; "
                            "annotation ids must be unique (COCO's evaluation looks annotations up by id)")
        seen[a["id"]] = j
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
        problem = _image_file_problem(path, im, anns, src)
        if problem:
            bad(problem)
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
