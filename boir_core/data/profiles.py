"""Data-set profiles: everything that differs between COCO, CrowdPose, OCHuman and the embedded SynthCrowd.

A :class:`DatasetProfile` is a small frozen record of facts (docs/training.md#released-settings,
docs/data_format.md#data-sets-on-disk):

* the keypoint names, the skeleton (pairs of 0-based keypoint indices) and the **flip index** (which
  keypoint a keypoint becomes when the image is mirrored: left and right swap);
* the OKS sigmas used by evaluation (COCO's 17, CrowdPose's 14);
* where the files are: ``annotations/{dataset}_{split}.json`` and the image folder per split;
* the data-set rules of the release: which training images are kept, whether small people (< 32² input
  px²) lose their center, whether crowd regions form the ignore mask, and whether images carry a
  CrowdPose ``crowdIndex``.

``get_profile("coco")`` returns one; unknown names raise a :class:`KeyError` that lists the known ones.
The names and each one's number of keypoints are spelled once, in :data:`boir_core.config.registry.DATASET_KEYPOINTS`
(the lowest room, so that the config builds ``data.dataset``'s choices and ``Config.num_keypoints`` from it);
:data:`PROFILES` holds a full profile for each of those names, in the same order, and this module refuses to
import when the two disagree. :data:`DATASETS`, :data:`REAL_DATASETS`, :data:`DEMO_DATASETS`, each data set's
evaluation protocol and printed title are read from :data:`PROFILES` everywhere.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..config.registry import DATASET_KEYPOINTS

__all__ = [
    "COCO_KEYPOINTS",
    "CROWDPOSE_KEYPOINTS",
    "COCO_SKELETON",
    "CROWDPOSE_SKELETON",
    "COCO_FLIP_INDEX",
    "CROWDPOSE_FLIP_INDEX",
    "COCO_SIGMAS",
    "CROWDPOSE_SIGMAS",
    "DatasetProfile",
    "PROFILES",
    "DATASETS",
    "REAL_DATASETS",
    "DEMO_DATASETS",
    "get_profile",
]

COCO_KEYPOINTS: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)

#: CrowdPose: 12 body joints, then head (top) and neck.
CROWDPOSE_KEYPOINTS: tuple[str, ...] = (
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "head", "neck",
)

#: COCO's skeleton, 0-based (the JSON stores it 1-based).
COCO_SKELETON: tuple[tuple[int, int], ...] = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8),
    (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)

CROWDPOSE_SKELETON: tuple[tuple[int, int], ...] = (
    (12, 13), (13, 0), (13, 1), (0, 2), (2, 4), (1, 3), (3, 5), (0, 6), (1, 7), (6, 7),
    (6, 8), (8, 10), (7, 9), (9, 11),
)

#: Mirror image: left_* <-> right_*; the nose (and CrowdPose's head, neck) stay.
COCO_FLIP_INDEX: tuple[int, ...] = (0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15)
CROWDPOSE_FLIP_INDEX: tuple[int, ...] = (1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 12, 13)

#: Per-keypoint OKS sigmas (pycocotools' hard-coded values; the release's TEST.OKS_SIGMAS / 10).
COCO_SIGMAS: tuple[float, ...] = (
    0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062, 0.062,
    0.107, 0.107, 0.087, 0.087, 0.089, 0.089,
)
CROWDPOSE_SIGMAS: tuple[float, ...] = (
    0.079, 0.079, 0.072, 0.072, 0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089, 0.079, 0.079,
)


@dataclass(frozen=True)
class DatasetProfile:
    """Facts and rules of one data set (see the module docstring)."""

    name: str
    keypoints: tuple[str, ...]
    skeleton: tuple[tuple[int, int], ...]
    flip_index: tuple[int, ...]
    sigmas: tuple[float, ...]
    #: ``annotations/...`` file name pattern, ``{split}`` is filled in.
    ann_pattern: str
    #: image folder pattern relative to the data root, ``{split}`` is filled in.
    image_pattern: str
    #: "coco": keep a training image if it has a non-crowd person with >= 1 labelled keypoint;
    #: "any": keep it if it has any annotation at all (docs/data_format.md#data-sets-on-disk).
    train_filter: Literal["coco", "any"]
    #: True: people smaller than 32² input px² get no center (trained as a center negative),
    #: docs/data_format.md#targets.
    small_person_no_center: bool
    #: True: crowd regions and unlabelled people form the ignore mask (docs/data_format.md#ignore-mask); else all ones.
    crowd_ignore_mask: bool
    #: True: each image carries a CrowdPose ``crowdIndex`` (easy/medium/hard split in evaluation).
    has_crowd_index: bool
    #: the evaluator named by the release ("pycocotools" or the CrowdPose API "crowdposetools").
    evaluator: str = "pycocotools"
    #: how tables and reports print the name ("CrowdPose").
    title: str = ""
    #: True: the embedded synthetic set the kit generates itself (demo results, not the paper's data).
    synthetic: bool = False

    @property
    def protocol(self) -> str:
        """The evaluation protocol: ``"crowdpose"`` (easy / medium / hard, faster-coco-eval) or ``"coco"``."""
        return "crowdpose" if self.evaluator == "crowdposetools" else "coco"

    @property
    def num_keypoints(self) -> int:
        return len(self.keypoints)

    def ann_file(self, root: str | Path, split: str) -> Path:
        """The annotation JSON of ``split`` under ``root``."""
        return Path(root) / self.ann_pattern.format(split=split)

    def image_dir(self, root: str | Path, split: str) -> Path:
        """The image folder of ``split`` under ``root`` (``file_name`` is relative to it)."""
        return Path(root) / self.image_pattern.format(split=split)


def _coco_like(name: str, ann_pattern: str, image_pattern: str, title: str,
               synthetic: bool = False) -> DatasetProfile:
    return DatasetProfile(
        name=name, keypoints=COCO_KEYPOINTS, skeleton=COCO_SKELETON, flip_index=COCO_FLIP_INDEX,
        sigmas=COCO_SIGMAS, ann_pattern=ann_pattern, image_pattern=image_pattern, train_filter="coco",
        small_person_no_center=True, crowd_ignore_mask=True, has_crowd_index=False, title=title,
        synthetic=synthetic,
    )


def _crowdpose_like(name: str, ann_pattern: str, image_pattern: str, has_crowd_index: bool, title: str,
                    synthetic: bool = False) -> DatasetProfile:
    return DatasetProfile(
        name=name, keypoints=CROWDPOSE_KEYPOINTS, skeleton=CROWDPOSE_SKELETON,
        flip_index=CROWDPOSE_FLIP_INDEX, sigmas=CROWDPOSE_SIGMAS, ann_pattern=ann_pattern,
        image_pattern=image_pattern, train_filter="any", small_person_no_center=False,
        crowd_ignore_mask=False, has_crowd_index=has_crowd_index, evaluator="crowdposetools", title=title,
        synthetic=synthetic,
    )


PROFILES: dict[str, DatasetProfile] = {
    "coco": _coco_like("coco", "annotations/coco_{split}.json", "images/{split}2017", "COCO"),
    "crowdpose": _crowdpose_like("crowdpose", "annotations/crowdpose_{split}.json", "images", True, "CrowdPose"),
    "ochuman": DatasetProfile(
        name="ochuman", keypoints=COCO_KEYPOINTS, skeleton=COCO_SKELETON, flip_index=COCO_FLIP_INDEX,
        sigmas=COCO_SIGMAS, ann_pattern="annotations/ochuman_{split}.json", image_pattern="images",
        train_filter="any", small_person_no_center=True, crowd_ignore_mask=False, has_crowd_index=False,
        title="OCHuman",
    ),
    # the embedded synthetic sets (boir_core.data.sources.synthetic): COCO rules / CrowdPose rules
    "synthcrowd": _coco_like("synthcrowd", "annotations/person_keypoints_{split}.json", "images/{split}",
                             "SynthCrowd", synthetic=True),
    "synthcrowd14": _crowdpose_like(
        "synthcrowd14", "annotations/person_keypoints_{split}.json", "images/{split}", True, "SynthCrowd-14",
        synthetic=True),
}



def _check_agrees_with_registry(profiles: dict[str, DatasetProfile], names_k: dict[str, int]) -> None:
    """The profiles name the registry's data sets in its order, each with the registry's K; else a RuntimeError
    that says which entry differs (a data set added in one place only)."""
    got = {n: p.num_keypoints for n, p in profiles.items()}
    if list(got.items()) != list(names_k.items()):
        raise RuntimeError(f"boir_core.data.profiles.PROFILES ({got}) disagrees with "
                           f"boir_core.config.registry.DATASET_KEYPOINTS ({names_k}): add or change a data set in both")
    for n, p in profiles.items():
        if p.name != n:
            raise RuntimeError(f"boir_core.data.profiles.PROFILES[{n!r}] is named {p.name!r}")


_check_agrees_with_registry(PROFILES, DATASET_KEYPOINTS)

#: Every data-set name the kit knows, in registry order.
DATASETS: tuple[str, ...] = tuple(PROFILES)
#: The paper's data sets (prepared from downloads by :mod:`boir_core.data.sources.prepare`).
REAL_DATASETS: tuple[str, ...] = tuple(n for n, p in PROFILES.items() if not p.synthetic)
#: The embedded synthetic sets (results on them are demo results).
DEMO_DATASETS: tuple[str, ...] = tuple(n for n, p in PROFILES.items() if p.synthetic)


def get_profile(name: str | DatasetProfile) -> DatasetProfile:
    """The profile called ``name`` (a :class:`DatasetProfile` is passed through)."""
    if isinstance(name, DatasetProfile):
        return name
    try:
        return PROFILES[name]
    except (KeyError, TypeError):
        raise KeyError(f"unknown data set profile {name!r}; known: {', '.join(PROFILES)}") from None
