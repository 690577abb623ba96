"""Tiny COCO-format data sets with keypoint sets of their own (K = 5 and K = 21), made from SynthCrowd's images:
a subset of its 17 points renamed as an animal's (K = 5), and its 17 points plus four midpoints (K = 21).

The files lie where ``data.dataset=custom`` looks by default: ``<root>/annotations/{split}.json`` and
``<root>/images/{split}/``."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from boir_core.data.profiles import COCO_KEYPOINTS, COCO_SKELETON

#: K = 5: SynthCrowd's nose, wrists and ankles, named as a four-legged animal's points
ANIMAL5_FROM = (0, 9, 10, 15, 16)
ANIMAL5_NAMES = ("snout", "left_front_paw", "right_front_paw", "left_hind_paw", "right_hind_paw")
ANIMAL5_SKELETON_1BASED = ((1, 2), (1, 3), (2, 4), (3, 5), (4, 5))

#: K = 21: COCO's 17, then four midpoints (each labelled where both its ends are)
MIDPOINTS = {"neck": (5, 6), "pelvis": (11, 12), "left_shin": (13, 15), "right_shin": (14, 16)}
BODY21_NAMES = (*COCO_KEYPOINTS, *MIDPOINTS)


def _subset(kp: list[float], picks) -> list[float]:
    out = []
    for i in picks:
        out += kp[3 * i: 3 * i + 3]
    return out


def _with_midpoints(kp: list[float]) -> list[float]:
    out = list(kp)
    for a, b in MIDPOINTS.values():
        (xa, ya, va), (xb, yb, vb) = kp[3 * a: 3 * a + 3], kp[3 * b: 3 * b + 3]
        out += [(xa + xb) / 2, (ya + yb) / 2, min(va, vb)] if va > 0 and vb > 0 else [0, 0, 0]
    return out


def _category(names, skeleton_1based) -> dict:
    return {"id": 1, "name": "thing", "supercategory": "thing", "keypoints": list(names),
            "skeleton": [list(e) for e in skeleton_1based]}


def convert_synthcrowd(src: Path, dst: Path, k: int) -> Path:
    """SynthCrowd at ``src`` rewritten as a K = ``k`` (5 or 21) custom set at ``dst`` (images copied)."""
    if k == 5:
        category, convert = _category(ANIMAL5_NAMES, ANIMAL5_SKELETON_1BASED), lambda kp: _subset(kp, ANIMAL5_FROM)
    elif k == 21:
        skel = [(a + 1, b + 1) for a, b in COCO_SKELETON] + [(18, 6), (18, 7), (19, 12), (19, 13), (20, 14),
                                                              (20, 16), (21, 15), (21, 17)]
        category, convert = _category(BODY21_NAMES, skel), _with_midpoints
    else:
        raise ValueError(k)
    for split in ("train", "val"):
        data = json.loads((src / "annotations" / f"person_keypoints_{split}.json").read_text())
        for a in data["annotations"]:
            if "keypoints" in a:
                a["keypoints"] = convert(a["keypoints"])
                a["num_keypoints"] = sum(1 for v in a["keypoints"][2::3] if v > 0)
        data["categories"] = [category]
        (dst / "annotations").mkdir(parents=True, exist_ok=True)
        (dst / "annotations" / f"{split}.json").write_text(json.dumps(data))
        shutil.copytree(src / "images" / split, dst / "images" / split)
    return dst
