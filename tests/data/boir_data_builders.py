"""Builders for tiny COCO-format keypoint data sets written into a pytest tmp_path."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np


def person(ann_id, image_id, kpts, bbox, iscrowd=0, segmentation=None, **extra):
    """A COCO annotation; ``kpts`` is a list of (x, y, v)."""
    flat = [float(c) for p in kpts for c in p]
    a = {"id": ann_id, "image_id": image_id, "category_id": 1, "iscrowd": iscrowd,
         "keypoints": flat, "num_keypoints": int(sum(1 for p in kpts if p[2] > 0)),
         "bbox": list(map(float, bbox)), "area": float(bbox[2] * bbox[3])}
    if segmentation is not None:
        a["segmentation"] = segmentation
    a.update(extra)
    return a


def write_coco(root: Path, images: list[dict], annotations: list[dict], *, split="train",
               pixels: dict | None = None, ann_name: str | None = None) -> Path:
    """Write ``root/annotations/person_keypoints_{split}.json`` and ``root/images/{split}/*.png``.

    ``images`` hold id, file_name, width, height; ``pixels`` optionally maps image id -> RGB array.
    Returns the annotation path (the SynthCrowd layout, so profile ``synthcrowd`` finds it).
    """
    img_dir = root / "images" / split
    img_dir.mkdir(parents=True, exist_ok=True)
    for im in images:
        arr = (pixels or {}).get(im["id"])
        if arr is None:
            rng = np.random.default_rng(im["id"])
            arr = rng.integers(0, 255, (im["height"], im["width"], 3), dtype=np.uint8)
        cv2.imwrite(str(img_dir / im["file_name"]), arr[..., ::-1])
    ann = root / "annotations" / (ann_name or f"person_keypoints_{split}.json")
    ann.parent.mkdir(parents=True, exist_ok=True)
    ann.write_text(json.dumps({"images": images, "annotations": annotations,
                               "categories": [{"id": 1, "name": "person"}]}))
    return ann


def simple_set(root: Path, k: int = 17, split="train") -> Path:
    """Two 128x96 images: image 1 with two people, image 2 with one labelled person."""
    rng = np.random.default_rng(0)
    images = [{"id": 1, "file_name": "a.png", "width": 128, "height": 96},
              {"id": 2, "file_name": "b.png", "width": 128, "height": 96}]
    anns = []
    for aid, (iid, x0, y0) in enumerate([(1, 10, 10), (1, 60, 20), (2, 30, 30)], start=1):
        kp = [(x0 + rng.uniform(0, 40), y0 + rng.uniform(0, 60), 2) for _ in range(k)]
        anns.append(person(aid, iid, kp, [x0, y0, 40, 60]))
    return write_coco(root, images, anns, split=split)


