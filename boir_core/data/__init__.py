"""boir_core.data: data-set profiles, the COCO-format keypoint data set, augmentation and targets.

- :mod:`.profiles`: COCO / CrowdPose / OCHuman / SynthCrowd facts (names, skeleton, flip index, sigmas,
  file layout, release rules); :func:`get_profile`.
- :mod:`.transforms`: the training random affine + flip and the test-time resize (docs/data_format.md#augmentation,
  docs/inference.md#test-time-resize).
- :mod:`.targets`: centers, Gaussian radii, multi / instance heatmaps, boxes (docs/data_format.md#targets).
- :mod:`.annotations`: reading, checking and indexing a COCO-format keypoint file (:class:`DataError`).
- :mod:`.dataset`: :class:`KeypointDataset` (training and test samples), :class:`SampleSettings` (how they are
  made), :class:`DataFiles` (an annotation file and image folder of one's own).
- :mod:`.custom`: ``data.dataset: custom`` (a keypoint set from its COCO-format file); :func:`profile_for`, a
  config's profile.
- :mod:`.collate`: :func:`collate_train`, :func:`collate_test`.
- :mod:`.sources`: where the files come from, apart from the pipeline: ``synthetic`` (the SynthCrowd
  generator), ``prepare`` (the real data sets from their archives), ``layout`` (imported on use).
"""
from .annotations import DataError, read_image
from .collate import collate_test, collate_train
from .custom import profile_for
from .dataset import DataFiles, EpochSampler, KeypointDataset, SampleSettings
from .profiles import PROFILES, DatasetProfile, get_profile

__all__ = [
    "DataError",
    "DataFiles",
    "DatasetProfile",
    "EpochSampler",
    "KeypointDataset",
    "PROFILES",
    "SampleSettings",
    "collate_test",
    "collate_train",
    "get_profile",
    "profile_for",
    "read_image",
]
