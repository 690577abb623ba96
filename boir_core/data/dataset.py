"""`KeypointDataset`: any COCO-format person-keypoint JSON -> training or test samples (docs/data_format.md,
docs/inference.md#test-time-resize).

Training sample (``train=True``): random affine + flip (docs/data_format.md#augmentation), ignore mask
(docs/data_format.md#ignore-mask) and every target (docs/data_format.md#targets); the keys are exactly those of
CONTRIBUTING.md. Test sample (``train=False``): the image resized so its short side is ``input_size`` and its long side
brought to a multiple of 64 the release's way (docs/inference.md#test-time-resize,
:func:`boir_core.data.transforms.eval_resize_size`), with ``meta["trans_inv"]`` mapping canvas pixels
back to the original image.

Annotations and image files are checked once, when the data set is built (:mod:`.annotations` reads, checks
and indexes the file; :mod:`.imagefiles` reads each image's header). What is really broken raises
:class:`DataError` naming the file, the image and the annotation id: a malformed file, a field of the wrong
type, a duplicate id, a missing or truncated image or one whose size disagrees with the file, a keypoint list
of the wrong length, non-finite numbers, a visibility flag outside {0, 1, 2}, a degenerate box. With
``skip_bad_samples=True`` such images are dropped instead, with one warning that counts them
(``dataset.skipped`` lists the reasons); an image that cannot be decoded at load time is then replaced by the
next good one.

Valid but unusual real data loads without loss: a **labelled keypoint outside the image** (annotators label
truncated people this way; PoseTrack's files hold such points) keeps its annotation. Like every point it is
transformed with the augmentation and drawn only if its pixel lands inside the output map
(docs/data_format.md#targets); it still counts in its person's center and keeps its instance mask of 1.
``dataset.summary()`` counts such keypoints. Boolean ``iscrowd``, float keypoints, nested ``file_name`` paths and
extra keys load as well.
"""
from __future__ import annotations

import contextlib
import io
import os
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from ..config import switch_value
from .annotations import index_annotations, load_annotation_json, read_image
from .custom import profile_for
from .errors import SKIP_HINT, DataError
from .profiles import DatasetProfile, get_profile
from .targets import TargetRules, build_targets
from .transforms import (
    AffineParams,
    Augmentation,
    apply_affine,
    eval_input,
    normalize_image,
    sample_affine_params,
    train_affines,
    warp,
)

__all__ = ["DataError", "DataFiles", "KeypointDataset", "SampleSettings", "EpochSampler",
           "read_image"]  # DataError, read_image: re-exported


def _box_corners(boxes: np.ndarray) -> np.ndarray:
    """COCO xywh [P, 4] -> corners [P, 4, 2] in the order TL, TR, BL, BR."""
    x, y, w, h = boxes.T
    return np.stack([np.stack([x, y], -1), np.stack([x + w, y], -1),
                     np.stack([x, y + h], -1), np.stack([x + w, y + h], -1)], axis=1)


class EpochSampler(torch.utils.data.Sampler):
    """Wraps a sampler with a ``set_epoch`` (e.g. ``DistributedSampler``) and yields ``(epoch, index)``.

    A :class:`KeypointDataset` draws sample i of epoch e from its own stream f(seed, e, i). Persistent
    DataLoader workers keep the copy of the data set they were started with, so ``set_epoch`` in the main
    process would not reach them; carrying the epoch with every index does.
    """

    def __init__(self, sampler: torch.utils.data.Sampler):
        self.sampler = sampler
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def __iter__(self):
        epoch = self.epoch
        return ((epoch, int(i)) for i in self.sampler)

    def __len__(self) -> int:
        return len(self.sampler)


@dataclass(frozen=True)
class SampleSettings:
    """How a :class:`KeypointDataset` makes its samples: the config's ``data`` section (sizes, augmentation, the
    paper/release switches, ``max_instances_per_image``, ``skip_bad_samples``) and ``train.seed``, in one object.

    ``input_size``, ``output_size``: S_in and S_out (None: S_in // 4). ``flip``, ``max_rotation``,
    ``min_scale``, ``max_scale``, ``max_translate``: the augmentation (docs/data_format.md#augmentation; also
    as one :class:`~boir_core.data.transforms.Augmentation`, :attr:`augmentation`). ``flip_alignment``:
    ``"paper"`` (labels follow the image flip exactly) or ``"release"``. ``box_clipping``: ``"paper"`` (clip
    corners) or ``"release"`` (clip x, y, w, h separately). ``center_jitter``: jitter instance coordinates by
    ±1 px (release: on). ``max_instances``: at most this many instances per image (release: 200). ``seed``:
    None for fresh randomness; an int makes sample ``i`` of epoch ``e`` reproducible (``set_epoch``), also
    across DataLoader workers. ``skip_bad_samples``: drop bad images with a counted warning instead of raising
    :class:`DataError`.
    """

    input_size: int = 512
    output_size: int | None = None
    flip: float = 0.5
    max_rotation: float = 30.0
    min_scale: float = 0.75
    max_scale: float = 1.5
    max_translate: float = 40.0
    flip_alignment: str = "paper"
    box_clipping: str = "paper"
    center_jitter: bool = True
    max_instances: int = 200
    seed: int | None = None
    skip_bad_samples: bool = False

    @classmethod
    def from_config(cls, cfg) -> "SampleSettings":
        """The settings of a :class:`boir_core.config.Config` (``data.*`` and ``train.seed``)."""
        d = cfg.data
        return cls(input_size=d.input_size, output_size=d.output_size, flip=d.flip, max_rotation=d.max_rotation,
                   min_scale=d.min_scale, max_scale=d.max_scale, max_translate=d.max_translate,
                   flip_alignment=d.flip_alignment, box_clipping=d.box_clipping, center_jitter=d.center_jitter,
                   max_instances=d.max_instances_per_image, seed=cfg.train.seed,
                   skip_bad_samples=d.skip_bad_samples)

    @property
    def augmentation(self) -> Augmentation:
        """The augmentation ranges as the one object :func:`~boir_core.data.transforms.sample_affine_params` takes."""
        return Augmentation(flip=self.flip, max_rotation=self.max_rotation, min_scale=self.min_scale,
                            max_scale=self.max_scale, max_translate=self.max_translate)


@dataclass(frozen=True)
class DataFiles:
    """Where a data set's annotation file and images are when they are not where its profile puts them under
    the root (``profile.ann_file(root, split)``, ``profile.image_dir(root, split)``); None keeps the profile's."""

    ann_file: str | os.PathLike | None = None
    image_dir: str | os.PathLike | None = None


class KeypointDataset(torch.utils.data.Dataset):
    """COCO-format multi-person keypoint data set.

    Args:
        root: data root; the JSON is ``profile.ann_file(root, split)`` and images lie in
            ``profile.image_dir(root, split)`` unless ``files`` says otherwise (:class:`DataFiles`).
        profile: a profile name (``coco``, ``crowdpose``, ``ochuman``, ``synthcrowd``, ``synthcrowd14``) or
            a :class:`DatasetProfile`.
        split: ``train``, ``val``, ``test``, ``trainval``...
        train: training samples (augmentation + targets) or test samples (resize + meta).
        settings: sizes, augmentation, switches, seed and the bad-data policy (:class:`SampleSettings`; its
            fields are also this object's attributes: ``input_size``, ``flip``, ``seed``...).
        files: the annotation file and image folder when not the profile's (:class:`DataFiles`).

    :meth:`from_config` builds one from a :class:`boir_core.config.Config`.
    """

    def __init__(self, root: str | os.PathLike, profile: str | DatasetProfile, split: str = "train",
                 train: bool = True, *, settings: SampleSettings = SampleSettings(),
                 files: DataFiles = DataFiles()) -> None:
        self.profile = get_profile(profile)
        self.root = Path(root)
        self.split = split
        self.train = bool(train)
        st = settings
        self.input_size = int(st.input_size)
        self.output_size = int(st.output_size) if st.output_size is not None else self.input_size // 4
        if self.input_size <= 0 or self.output_size <= 0:
            raise ValueError(f"input_size and output_size must be positive, got {st.input_size}, {st.output_size}")
        flip_alignment = switch_value("data.flip_alignment", st.flip_alignment, name="flip_alignment")
        box_clipping = switch_value("data.box_clipping", st.box_clipping, name="box_clipping")
        if not 0.0 < st.min_scale <= st.max_scale:
            raise ValueError(f"need 0 < min_scale <= max_scale, got {st.min_scale}, {st.max_scale}")
        self.flip = float(st.flip)
        self.max_rotation = float(st.max_rotation)
        self.min_scale = float(st.min_scale)
        self.max_scale = float(st.max_scale)
        self.max_translate = float(st.max_translate)
        self.flip_alignment = flip_alignment
        self.box_clipping = box_clipping
        self.center_jitter = bool(st.center_jitter)
        self.max_instances = int(st.max_instances)
        self.seed = st.seed
        self.epoch = 0
        self.skip_bad_samples = bool(st.skip_bad_samples)
        self.settings = replace(st, input_size=self.input_size, output_size=self.output_size,
                                flip_alignment=flip_alignment, box_clipping=box_clipping)
        self.augmentation = self.settings.augmentation
        self.target_rules = TargetRules(small_person_no_center=self.profile.small_person_no_center,
                                        box_clipping=self.box_clipping, center_jitter=self.center_jitter,
                                        max_instances=self.max_instances)
        self.ann_file = (Path(files.ann_file) if files.ann_file is not None
                         else self.profile.ann_file(self.root, split))
        self.image_dir = (Path(files.image_dir) if files.image_dir is not None
                          else self.profile.image_dir(self.root, split))
        self.skipped: list[str] = []
        self.num_load_skips = 0

        data = load_annotation_json(self.ann_file)
        self.records, counts = index_annotations(data, self.ann_file, self.profile, self.image_dir, self.train,
                                                 self._bad)
        self.stats = {"images": len(self.records), **counts, "skipped": len(self.skipped)}
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
            self.coco = COCO()
            self.coco.dataset = data
            self.coco.createIndex()
        if self.skipped:
            warnings.warn(f"{self.ann_file}: skipped {len(self.skipped)} bad image(s) or annotation(s); "
                          f"first: {self.skipped[0]}", stacklevel=2)

    # ---- construction ---------------------------------------------------------------------------
    @classmethod
    def from_config(cls, cfg, split: str | None = None, train: bool = True, **changes) -> "KeypointDataset":
        """Build from a :class:`boir_core.config.Config` (``split`` defaults to the train/test split; the profile is
        :func:`~boir_core.data.custom.profile_for`'s: a custom data set's comes from ``data.keypoints``).
        ``changes``: :class:`SampleSettings` fields that differ from the config's (e.g. ``flip=0.0``)."""
        d = cfg.data
        return cls(d.root, profile_for(cfg), split or (d.train_split if train else d.test_split), train,
                   settings=replace(SampleSettings.from_config(cfg), **changes))

    def _bad(self, msg: str) -> None:
        if not self.skip_bad_samples:
            raise DataError(f"{msg}; {SKIP_HINT}")
        self.skipped.append(msg)

    def summary(self) -> dict[str, int]:
        """Counts over the images this data set uses: ``images``, ``people`` (non-crowd, at least one labelled
        keypoint), ``labelled_keypoints``, ``keypoints_outside_image`` (labelled keypoints outside
        [0, width] x [0, height] of their image; kept, see the module notes) and
        ``people_with_keypoints_outside``, ``ignored_annotations`` (crowd or unlabelled: the ignore mask)
        and ``skipped`` (bad images or annotations dropped with ``skip_bad_samples``)."""
        return dict(self.stats)

    # ---- access    # ---- access ----------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.records)

    @property
    def num_keypoints(self) -> int:
        return self.profile.num_keypoints

    @property
    def image_ids(self) -> list:
        return [r["image_id"] for r in self.records]

    def set_epoch(self, epoch: int) -> None:
        """Change the augmentation stream (only matters with a fixed ``seed``)."""
        self.epoch = int(epoch)

    def rng_for(self, index: int) -> np.random.Generator:
        if self.seed is None:
            return np.random.default_rng()
        return np.random.default_rng([int(self.seed), self.epoch, int(index)])

    def __getitem__(self, index: int | tuple[int, int]) -> dict:
        """Sample ``index``; an ``(epoch, index)`` pair also sets the epoch first (:class:`EpochSampler`)."""
        if isinstance(index, tuple):
            epoch, index = index
            self.set_epoch(epoch)
        tries = len(self) if self.skip_bad_samples else 1
        for t in range(tries):
            i = (index + t) % len(self)
            try:
                return self.load_train(i) if self.train else self.load_test(i)
            except DataError as e:
                if not self.skip_bad_samples:
                    raise
                self.num_load_skips += 1
                warnings.warn(f"skipping sample {i} ({self.num_load_skips} skipped so far): {e}")
        raise DataError(f"{self.ann_file}: no readable image left in the data set")

    def read(self, index: int) -> np.ndarray:
        rec = self.records[index]
        img = read_image(rec["path"], rec["image_id"])
        w, h = rec["width"], rec["height"]
        if w is not None and h is not None and (int(w), int(h)) != (img.shape[1], img.shape[0]):
            raise DataError(f"{rec['path']}: image is {img.shape[1]}x{img.shape[0]} but {self.ann_file} "
                            f"says {w}x{h} (image id {rec['image_id']})")
        return img

    def ignore_mask(self, index: int, height: int, width: int) -> np.ndarray | None:
        """uint8 [H, W], 255 = train, 0 = ignore (crowd + unlabelled people); None when nothing is ignored."""
        rec = self.records[index]
        if not self.profile.crowd_ignore_mask or not rec["ignore"]:
            return None
        acc = np.zeros((height, width), np.uint8)
        for a in rec["ignore"]:
            seg = a.get("segmentation")
            if not seg:
                continue
            if isinstance(seg, list):
                rle = mask_utils.merge(mask_utils.frPyObjects(seg, height, width))
            elif isinstance(seg, dict) and isinstance(seg.get("counts"), list):
                rle = mask_utils.frPyObjects(seg, height, width)
            elif isinstance(seg, dict):
                rle = seg
            else:
                raise DataError(f"{self.ann_file}: annotation id {a.get('id')}: unreadable segmentation")
            with warnings.catch_warnings():  # pycocotools' numpy-2 copy= deprecation, not ours
                warnings.simplefilter("ignore", DeprecationWarning)
                acc |= mask_utils.decode([rle])[:, :, 0].astype(np.uint8)
        return np.where(acc > 0, 0, 255).astype(np.uint8)

    # ---- training sample -------------------------------------------------------------------------
    def load_train(self, index: int, timings: dict[str, float] | None = None,
                   params: AffineParams | None = None) -> dict:
        """One augmented training sample; ``timings`` (if given) accumulates seconds per step.

        ``params`` pins the augmentation draw (center, scale, rotation, flip) instead of drawing it from
        the sample's random stream, e.g. to compare targets with another implementation on the same draw.
        """
        clock = time.perf_counter
        t0 = clock()
        rec = self.records[index]
        img = self.read(index)
        h, w = img.shape[:2]
        t1 = clock()

        rng = self.rng_for(index)
        s_in, s_out = self.input_size, self.output_size
        if params is None:
            params = sample_affine_params(rng, w, h, self.augmentation)
        m_in, m_out = train_affines(params, s_in, s_out, self.flip_alignment)
        image = warp(img, m_in, (s_in, s_in))
        kpts = rec["keypoints"].copy()
        kpts[..., :2] = apply_affine(kpts[..., :2], m_out)
        corners = apply_affine(_box_corners(rec["boxes"]), m_out)
        areas = rec["boxes"][:, 2] * rec["boxes"][:, 3] * (s_in / (200.0 * params.scale)) ** 2
        t2 = clock()

        valid = self.ignore_mask(index, h, w)
        if valid is None:
            valid = np.full((h, w), 255, np.uint8)
        mask = (warp(valid, m_out, (s_out, s_out)).astype(np.float32) / 255.0 > 0.5).astype(np.float32)
        t3 = clock()

        if params.flip:
            if self.flip_alignment == "release":
                image = image[:, ::-1]
                mask = mask[:, ::-1]
                kpts[..., 0] = s_out - 1 - kpts[..., 0]
                corners[..., 0] = s_out - 1 - corners[..., 0]
            kpts = kpts[:, list(self.profile.flip_index)]
            corners = corners[:, [1, 0, 3, 2]]  # TL, TR, BL, BR of the mirrored box
        tg = build_targets(kpts, corners, areas, s_out, rules=self.target_rules, rng=rng)
        t4 = clock()

        sample = {
            "image": torch.from_numpy(normalize_image(np.ascontiguousarray(image))),
            "multi_heatmap": torch.from_numpy(tg.multi_heatmap),
            "multi_mask": torch.from_numpy(np.ascontiguousarray(mask)[None]),
            "instance_coord": torch.from_numpy(tg.instance_coord),
            "instance_center": torch.from_numpy(tg.instance_center),
            "instance_heatmap": torch.from_numpy(np.ascontiguousarray(tg.instance_heatmap)),
            "instance_mask": torch.from_numpy(tg.instance_mask),
            "instance_bbox": torch.from_numpy(tg.instance_bbox),
            "instance_keypoints": torch.from_numpy(tg.instance_keypoints),
            "image_id": int(rec["image_id"]),
        }
        if timings is not None:
            t5 = clock()
            for key, dt in (("read", t1 - t0), ("affine", t2 - t1), ("mask", t3 - t2),
                            ("targets", t4 - t3), ("to_tensor", t5 - t4)):
                timings[key] = timings.get(key, 0.0) + dt
        return sample

    # ---- test sample -----------------------------------------------------------------------------
    def load_test(self, index: int) -> dict:
        """Resized test image (short side S_in, long side a multiple of 64 as in the release) and its meta."""
        rec = self.records[index]
        img = self.read(index)
        h, w = img.shape[:2]
        x = eval_input(img, self.input_size)
        tr = x.resize
        return {
            "image": torch.from_numpy(x.image),
            "image_id": int(rec["image_id"]),
            "meta": {
                "center": np.asarray(tr.center, np.float64),
                "scale": np.asarray(tr.scale, np.float64),
                "size": (int(w), int(h)),
                "trans_inv": tr.trans_inv.copy(),
            },
        }

    def __repr__(self) -> str:
        mode = "train" if self.train else "test"
        st = self.stats
        return (f"KeypointDataset({self.profile.name!r}, split={self.split!r}, {mode}, {len(self)} images, "
                f"{st.get('people', 0)} people, {st.get('labelled_keypoints', 0)} labelled keypoints "
                f"({st.get('keypoints_outside_image', 0)} outside their image), S_in={self.input_size}, "
                f"S_out={self.output_size}, ann_file={str(self.ann_file)!r})")
