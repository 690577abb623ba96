"""The kit's named choices, each spelled once: the data sets (name → number of keypoints K) and the inference
backends.

They live in the config room, the lowest, so that the config's types are built from them
(:class:`~boir_core.config.DataConfig` ``dataset``, :class:`~boir_core.config.TestConfig` ``backend``,
``Config.num_keypoints``) and every higher room reads the same table: :mod:`boir_core.data.profiles` holds each
data set's full profile (keypoint names, skeleton, sigmas, files, rules) and checks on import that it agrees
with :data:`DATASET_KEYPOINTS`; :mod:`boir_core.engine.inference.backends` builds a runner for each name of
:data:`BACKENDS`.

A new data set: its line here and its profile in ``data/profiles.py``. A new backend: its name here and, in
``engine/inference/backends.py``, its runner class and its ``RUNNERS`` entry (docs/architecture.md#where-to-add-things).
A data set of one's own needs neither: ``data.dataset: custom`` (:data:`CUSTOM`)
takes its keypoints from its annotation file and the config's ``data.keypoints`` block
(:mod:`boir_core.data.custom`, docs/custom_keypoints.md).
"""
from __future__ import annotations

__all__ = ["DATASET_KEYPOINTS", "CUSTOM", "DATASET_NAMES", "BACKENDS"]

#: Every data set the kit knows, in registry order, and its number of keypoints K (COCO's 17, CrowdPose's 14);
#: the synthetic sets follow COCO's and CrowdPose's keypoints.
DATASET_KEYPOINTS: dict[str, int] = {"coco": 17, "crowdpose": 14, "ochuman": 17, "synthcrowd": 17, "synthcrowd14": 14}
#: A data set described by its own COCO-format file: K, names, skeleton from its ``categories``, the rest from
#: ``data.keypoints`` (no fixed K, so not in :data:`DATASET_KEYPOINTS`).
CUSTOM = "custom"
#: The data-set names (``data.dataset`` accepts exactly these): the registry's, in order, then :data:`CUSTOM`.
DATASET_NAMES: tuple[str, ...] = (*DATASET_KEYPOINTS, CUSTOM)
#: Who runs the network at inference (``test.backend``): PyTorch as trained (``exact``, the release's poses),
#: PyTorch with eval-only speed-ups (``torch``), the two pip extras that run the exported ONNX graphs, and ONNX
#: Runtime on the dense graph quantised to INT8 (``onnxruntime_int8``, calibrated on ``test.calibration_images``
#: train images; docs: :mod:`boir_core.engine.inference.backends`, docs/inference.md#exact-and-fast-inference).
BACKENDS: tuple[str, ...] = ("exact", "torch", "onnxruntime", "openvino", "onnxruntime_int8")
