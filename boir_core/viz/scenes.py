"""The pictures the notebooks show a trained model: SynthCrowd val images with their people.

* :func:`synthcrowd_root` — the kit's SynthCrowd (``data/synthcrowd``) when it has been generated, else a
  small set of the same first images generated once under a notebook's work folder (never touching a full
  set);
* :func:`val_pictures` — the first ``count`` images of a split with their people (annotations that are not
  crowd regions and have labelled keypoints), as :class:`Picture`;
* :func:`keypoint_center` — a person's keypoint-mean center (the instance center the networks read).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from .. import paths
from ..data import get_profile
from ..data.annotations import read_image
from ..data.sources.synthetic import SynthCrowdSpec, ensure_synthcrowd

__all__ = ["FULL_SET", "synthcrowd_root", "Picture", "val_pictures", "keypoint_center"]

#: where ``make demo`` (and ``boir_core.data.sources.synthetic``) generate the full SynthCrowd, relative to the
#: kit's root
FULL_SET = "data/synthcrowd"


def synthcrowd_root(fallback_dir: str | os.PathLike, num_val: int, num_keypoints: int = 17,
                    split: str = "val") -> Path:
    """``data/synthcrowd`` (read from the kit's root) when its ``split`` annotations exist; otherwise
    ``fallback_dir/synthcrowd``, generated once with ``num_val`` val images (and 16 train images). SynthCrowd
    draws image i from its own seed, so the small set's images are the full set's first ones."""
    full = paths.resolve(FULL_SET)
    profile = get_profile("synthcrowd")
    if full is not None and profile.ann_file(full, split).is_file():
        return full
    root = Path(fallback_dir) / "synthcrowd"
    ensure_synthcrowd(root, SynthCrowdSpec(num_keypoints=num_keypoints, num_train=16, num_val=max(int(num_val), 1)))
    return root


@dataclass
class Picture:
    """One image: its file ``name``, RGB ``image`` [H, W, 3] uint8, its ``people`` (COCO annotations) and
    their ``boxes`` (``xywh`` in image pixels)."""

    name: str
    image: np.ndarray
    people: list[dict[str, Any]] = field(default_factory=list)

    @property
    def boxes(self) -> list[list[float]]:
        return [list(map(float, a["bbox"])) for a in self.people]


def val_pictures(root: str | os.PathLike, count: int, split: str = "val",
                 dataset: str = "synthcrowd") -> list[Picture]:
    """The first ``count`` images of ``split`` (file order of the annotation file) with their people: the
    annotations that are not crowd regions and have at least one labelled keypoint."""
    profile = get_profile(dataset)
    ann_file = profile.ann_file(root, split)
    if not Path(ann_file).is_file():
        raise FileNotFoundError(f"no {dataset} {split} annotations: {ann_file} does not exist")
    data = json.loads(Path(ann_file).read_text())
    by_image: dict[Any, list[dict[str, Any]]] = {}
    for a in data.get("annotations", []):
        if not a.get("iscrowd", 0) and a.get("num_keypoints", 1) > 0:
            by_image.setdefault(a["image_id"], []).append(a)
    return [Picture(im["file_name"], read_image(Path(profile.image_dir(root, split)) / im["file_name"]),
                    by_image.get(im["id"], []))
            for im in data.get("images", [])[: max(int(count), 0)]]


def keypoint_center(annotation: dict[str, Any]) -> Optional[tuple[float, float]]:
    """(x, y) mean of a person's labelled keypoints (v > 0), in image pixels; None when none is labelled."""
    k = np.asarray(annotation.get("keypoints", []), dtype=np.float64).reshape(-1, 3)
    k = k[k[:, 2] > 0]
    return (float(k[:, 0].mean()), float(k[:, 1].mean())) if len(k) else None
