"""Run an exported model without torch: ONNX Runtime for the two graphs, numpy for the decoding, OpenCV for the
resize (docs/inference.md#deployment-folder).

    from boir_core.deploy import BoirDeployment
    dep = BoirDeployment("runs/demo/deploy")          # the folder python -m boir_core export wrote
    poses = dep.predict(rgb_image)                    # HxWx3 uint8, RGB (bgr=True for cv2.imread's order)

``predict`` resizes and normalises as the kit's test-time resize does (:func:`preprocess`,
docs/inference.md#test-time-resize), runs ``dense.onnx`` on [image, mirrored image] (flip test) and
``instance.onnx`` at the centers found, and decodes with :func:`boir_core.deploy.decode_np.decode_np`. It returns
COCO keypoint results in the original image's pixels, as ``python -m boir_core predict`` writes them.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .decode_np import NpDecodeResult, decode_np
from .settings import DecodeSettings, read_settings

__all__ = ["BoirDeployment", "OnnxNetwork", "preprocess", "resize_size", "resize_affine", "normalizer",
           "DeployDependencyError"]


class DeployDependencyError(ImportError):
    """A package the runtime needs (onnxruntime, or OpenCV for the resize) is not installed; the message says
    what to install."""


def _cv2():
    try:
        import cv2  # optional: only the resize and reading image files need OpenCV; the decoder is numpy only
    except ImportError as e:
        raise DeployDependencyError(f"the deployment runtime resizes images with OpenCV, which is not installed ({e}):"
                                    " pip install opencv-python-headless") from None
    return cv2


def resize_size(width: int, height: int, input_size: int) -> tuple[int, int]:
    """Canvas (W', H') of the test-time resize: short side ``input_size``, long side int((x + 63) // 64 * 64)
    with x = input_size / short * long (boir_core.data.transforms.eval_resize_size, the release's arithmetic)."""
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    if width < height:
        return input_size, int((input_size / width * height + 63) // 64 * 64)
    return int((input_size / height * width + 63) // 64 * 64), input_size


def resize_affine(width: int, height: int, input_size: int) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """(matrix 2×3 original → canvas, trans_inv 2×3 canvas → original, canvas (W', H')): the image center
    rounded to integers goes to the canvas center, scale input_size / short side
    (boir_core.data.transforms.eval_resize)."""
    cw, ch = resize_size(width, height, input_size)
    cx, cy = int(width / 2.0 + 0.5), int(height / 2.0 + 0.5)
    f = input_size / min(width, height)
    m = np.array([[f, 0.0, cw / 2.0 - f * cx], [0.0, f, ch / 2.0 - f * cy]])
    inv = np.array([[1.0 / f, 0.0, cx - cw / 2.0 / f], [0.0, 1.0 / f, cy - ch / 2.0 / f]])
    return m, inv, (cw, ch)


def normalizer(mean, std) -> np.ndarray:
    """[3, 256] float32 table: uint8 value v of channel c → (v / 255 − mean_c) / std_c."""
    mean = np.asarray(mean, dtype=np.float32)
    std = np.asarray(std, dtype=np.float32)
    return ((np.arange(256, dtype=np.float32)[None, :] / np.float32(255.0) - mean[:, None]) / std[:, None]
            ).astype(np.float32)


def preprocess(image: np.ndarray, input_size: int, table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """RGB uint8 HxWx3 → (network input [3, H', W'] float32, trans_inv 2×3): the kit's test-time resize
    (bilinear, black border) and normalisation (``table`` from :func:`normalizer`)."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"expected an HxWx3 uint8 image, got {got}")
    cv2 = _cv2()
    h, w = image.shape[:2]
    m, inv, size = resize_affine(w, h, input_size)
    canvas = cv2.warpAffine(image, np.ascontiguousarray(m, dtype=np.float64), size, flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return np.stack([np.take(table[c], canvas[:, :, c]) for c in range(3)]), inv


class OnnxNetwork:
    """The two exported graphs in ONNX Runtime (CPU), with the two calls :func:`decode_np` needs."""

    def __init__(self, dense: str | os.PathLike | bytes, instance: str | os.PathLike | bytes, *,
                 threads: int | None = None, providers: list[str] | None = None):
        try:
            import onnxruntime as ort  # optional at import time: the decoder imports (and is tested) without it
        except ImportError as e:
            raise DeployDependencyError(f"the deployment runtime needs onnxruntime, which is not installed ({e}): "
                                        "pip install onnxruntime") from None
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        providers = providers or ["CPUExecutionProvider"]
        self.sessions = {name: ort.InferenceSession(src if isinstance(src, bytes) else str(src), opts,
                                                    providers=providers)
                         for name, src in (("dense", dense), ("instance", instance))}
        self.variant = f"onnxruntime {ort.__version__}"

    def dense(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        feats, center = self.sessions["dense"].run(None, {"images": np.ascontiguousarray(images, dtype=np.float32)})
        return feats, center

    def instances(self, features: np.ndarray, coords: np.ndarray) -> np.ndarray:
        (out,) = self.sessions["instance"].run(None, {"features": features,
                                                      "coords": np.ascontiguousarray(coords, dtype=np.int64)})
        return out


class BoirDeployment:
    """A deployment folder (``deploy.json``, ``dense.onnx``, ``instance.onnx``) ready to predict.

    Attributes read from ``deploy.json``: ``keypoints`` (names), ``skeleton`` (0-based pairs), ``input_size``,
    ``decode_settings`` (the record's ``decode``, read into :func:`decode_np`'s :class:`DecodeSettings` at every
    image), ``settings`` (the whole record).
    ``last`` is the :class:`NpDecodeResult` of the latest image (its network / decode seconds).
    """

    def __init__(self, folder: str | os.PathLike, *, threads: int | None = None,
                 providers: list[str] | None = None):
        self.folder = Path(folder)
        self.settings = s = read_settings(self.folder)
        self.keypoints: list[str] = list(s["keypoints"])
        self.skeleton: list[tuple[int, int]] = [(int(a), int(b)) for a, b in s["skeleton"]]
        self.input_size = int(s["input"]["size"])
        self.stride = int(s["input"]["stride"])
        self.decode_settings: dict[str, Any] = dict(s["decode"])
        self._table = normalizer(s["input"]["mean"], s["input"]["std"])
        self.network = OnnxNetwork(self.folder / s["graphs"]["dense"], self.folder / s["graphs"]["instance"],
                                   threads=threads, providers=providers)
        self.last: NpDecodeResult | None = None

    def prepare(self, image: np.ndarray, *, bgr: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(network input [3, H', W'], trans_inv) of an HxWx3 uint8 image (RGB; ``bgr=True``: BGR)."""
        if bgr and isinstance(image, np.ndarray) and image.ndim == 3:
            image = np.ascontiguousarray(image[:, :, ::-1])
        return preprocess(image, self.input_size, self._table)

    def predict(self, image: np.ndarray, *, bgr: bool = False, image_id: int = 0) -> list[dict[str, Any]]:
        """The people in ``image`` (HxWx3 uint8, RGB unless ``bgr``) as COCO keypoint results
        ``{"image_id", "category_id": 1, "keypoints": [x1, y1, s1, ...], "score"}`` in its pixels."""
        x, inv = self.prepare(image, bgr=bgr)
        self.last = decode_np(self.network, x, inv, DecodeSettings.of(self.decode_settings), image_id=image_id,
                              stride=self.stride)
        return self.last.poses

    def predict_file(self, path: str | os.PathLike, *, image_id: int = 0) -> list[dict[str, Any]]:
        """:meth:`predict` on an image file read with OpenCV; an unreadable file is an error naming it."""
        cv2 = _cv2()
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path}: no such file")
        data = np.fromfile(str(path), dtype=np.uint8)
        img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
        if img is None:
            raise ValueError(f"{path}: not an image OpenCV can read (unknown format, damaged or empty file)")
        return self.predict(img, bgr=True, image_id=image_id)
