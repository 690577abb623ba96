"""INT8 post-training quantisation of the dense graph (``test.backend=onnxruntime_int8``, ``boir export --int8``).

The dense graph (backbone, neck, center head) is almost all of the network's time
(docs/inference.md#int8-post-training-quantisation), so it is the one quantised: ONNX Runtime's static
quantisation in the QDQ format, weights signed 8-bit per output channel, activations unsigned 8-bit per tensor
with ranges read from calibration images (min / max of each activation). The instance head stays fp32: it is
small and runs once per person, and its 1x1 products are what the keypoint peaks are read from.

``reduce_range`` (on by default) keeps the weights to 7 bits. On CPUs without VNNI (AVX2 ones) ONNX Runtime's
u8 x s8 kernels add pairs of products in 16 bits, which can saturate with full 8-bit weights; 7 bits cannot.

Calibration images are network inputs exactly as decoding makes them (:func:`boir_core.data.transforms.eval_input`:
the test-time resize and normalisation, then the image and its mirror when ``test.flip_test``), taken from the
config's **train** split (never the split that is scored) or from a folder of images the user names. The same
images give the same graph: the quantisation is deterministic.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Iterable, Sequence

import cv2
import numpy as np

from ...data import KeypointDataset
from ...data.errors import DataError
from ...data.transforms import eval_input
from ...deploy.decode_np import network_views

__all__ = ["CALIBRATION_IMAGES", "calibration_inputs", "folder_images", "quantize_dense", "int8_graphs"]

#: How many images calibrate the activation ranges when none are named (``test.calibration_images``).
CALIBRATION_IMAGES = 16
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def _ort_quantization():
    try:
        from onnxruntime import quantization  # optional dependency: the onnx extra
    except ImportError as e:
        raise ImportError(f"INT8 quantisation needs onnxruntime, which is not installed ({e}): "
                          "pip install 'boir-kit[onnx]'") from None
    return quantization


def folder_images(folder: str | os.PathLike, count: int) -> list[np.ndarray]:
    """Up to ``count`` images (RGB uint8, sorted by name) of the folder a user named for calibration."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"calibration folder {root} does not exist or is not a folder")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"calibration folder {root} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    out = []
    for p in files[:count]:
        img = cv2.imdecode(np.fromfile(str(p), np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            raise ValueError(f"calibration image {p} cannot be read as an image")
        out.append(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
    return out


def calibration_inputs(cfg, *, count: int | None = None, folder: str | os.PathLike | None = None) -> list[np.ndarray]:
    """Network inputs [V, 3, H', W'] (float32) to calibrate on: ``count`` images (default
    ``cfg.test.calibration_images``) of ``folder`` when given, else of the config's train split, each resized
    and normalised as for testing (``data.input_size``) and mirrored beside itself when ``test.flip_test``."""
    n = int(cfg.test.calibration_images if count is None else count)
    if n < 1:
        raise ValueError(f"test.calibration_images must be at least 1, got {n}")
    flip = bool(cfg.test.flip_test)
    if folder is not None:
        return [network_views(eval_input(img, cfg.data.input_size).image, flip) for img in folder_images(folder, n)]
    try:
        ds = KeypointDataset.from_config(cfg, split=cfg.data.train_split, train=False)
    except (FileNotFoundError, DataError) as e:
        raise DataError(f"{e} (INT8 calibration reads the train split's images: set data.root, or name a folder "
                        "of images: boir export --int8 --calibration DIR)") from None
    if len(ds) == 0:
        raise ValueError(f"the train split {cfg.data.train_split!r} of {cfg.data.root} has no images to calibrate on")
    step = max(1, len(ds) // n)  # spread over the split, not its first images only
    return [network_views(ds.load_test(i)["image"].numpy(), flip) for i in range(0, len(ds), step)[:n]]


class _Reader:
    """ONNX Runtime's calibration data reader over a list of inputs (one ``get_next`` per image)."""

    def __init__(self, inputs: Iterable[np.ndarray]):
        self._it = iter(list(inputs))

    def get_next(self):
        x = next(self._it, None)
        return None if x is None else {"images": x}


def quantize_dense(dense: bytes, inputs: Sequence[np.ndarray], *, reduce_range: bool = True) -> bytes:
    """The dense graph (ONNX bytes, :func:`boir_core.engine.inference.export.onnx_graphs`) quantised to INT8 with the
    activation ranges of ``inputs`` (network inputs [V, 3, H', W'])."""
    if not inputs:
        raise ValueError("INT8 quantisation needs at least one calibration input")
    q = _ort_quantization()
    with tempfile.TemporaryDirectory(prefix="boir_int8_") as tmp:
        src, pre, out = (Path(tmp) / n for n in ("dense.onnx", "dense_pre.onnx", "dense_int8.onnx"))
        src.write_bytes(dense)
        # shape inference + graph clean-up first (what ONNX Runtime recommends before quantising)
        q.shape_inference.quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        q.quantize_static(str(pre), str(out), _Reader(inputs), quant_format=q.QuantFormat.QDQ,
                          activation_type=q.QuantType.QUInt8, weight_type=q.QuantType.QInt8, per_channel=True,
                          reduce_range=reduce_range, calibrate_method=q.CalibrationMethod.MinMax,
                          extra_options={"CalibTensorRangeSymmetric": False})
        return out.read_bytes()


def int8_graphs(graphs: dict[str, bytes], inputs: Sequence[np.ndarray], *, reduce_range: bool = True
                ) -> dict[str, bytes]:
    """``graphs`` with the dense one quantised (:func:`quantize_dense`); the instance graph as it is."""
    return {**graphs, "dense": quantize_dense(graphs["dense"], inputs, reduce_range=reduce_range)}
