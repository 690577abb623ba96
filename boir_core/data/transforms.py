"""Geometric transforms of the data pipeline: the training random affine + flip
(docs/data_format.md#augmentation) and the test-time resize with its inverse (docs/inference.md#test-time-resize).

Conventions
-----------
All matrices are 3×3 homogeneous affines acting on column vectors (x, y, 1). The training affine is built
for the output map (S_out) and the input image (S_in = 4·S_out) from the same parameters, so the two are
exactly proportional: an input pixel x_in corresponds to the output coordinate x_out = x_in / 4.

Horizontal flip. Mirroring the S_in-wide input image maps x_in -> S_in - 1 - x_in. In output coordinates
that is x_out -> (S_in - 1 - 4·x_out)/4 = S_out - 0.25 - x_out. The release labels flipped samples with
x_out -> S_out - 1 - x_out instead (0.75 output px off, docs/release_vs_paper.md#flip-alignment).
``flip_alignment="paper"`` (the default) folds the exact flip into the affine itself, so image, ignore
mask, keypoints and boxes go through one consistent transform; ``"release"`` reproduces the released behaviour.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from ..config import switch_value

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "denormalize_image",
    "AffineParams",
    "Augmentation",
    "NO_AUGMENTATION",
    "crop_affine",
    "sample_affine_params",
    "train_affines",
    "hflip_matrix",
    "apply_affine",
    "warp",
    "normalize_image",
    "eval_resize_size",
    "eval_resize",
    "EvalResize",
    "eval_input",
    "EvalInput",
]

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


@dataclass(frozen=True)
class AffineParams:
    """One draw of the training augmentation (docs/data_format.md#augmentation, HigherHRNet's "scale =
    size / 200" convention).

    ``center`` (x, y) in original pixels, ``scale`` such that the square crop side is 200·scale original
    pixels, ``rotation`` in degrees (counter-clockwise on screen), ``flip`` whether to mirror.
    """

    center: tuple[float, float]
    scale: float
    rotation: float
    flip: bool


def crop_affine(center, scale: float, size: int, rotation: float = 0.0) -> np.ndarray:
    """3×3 affine mapping the square crop (side 200·scale, centred at ``center``) onto ``size``×``size``,
    then rotating by ``rotation`` degrees about the output center."""
    side = 200.0 * scale
    f = size / side
    cx, cy = float(center[0]), float(center[1])
    m = np.array([[f, 0.0, size * (0.5 - cx / side)],
                  [0.0, f, size * (0.5 - cy / side)],
                  [0.0, 0.0, 1.0]])
    if rotation:
        # HigherHRNet rotates by -rot in image coordinates (y down), i.e. counter-clockwise on screen.
        a = math.radians(-rotation)
        c, s = math.cos(a), math.sin(a)
        half = size / 2.0
        to_origin = np.array([[1.0, 0.0, -half], [0.0, 1.0, -half], [0.0, 0.0, 1.0]])
        rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        back = np.array([[1.0, 0.0, half], [0.0, 1.0, half], [0.0, 0.0, 1.0]])
        m = back @ rot @ to_origin @ m
    return m


@dataclass(frozen=True)
class Augmentation:
    """The ranges the training augmentation draws from (docs/data_format.md#augmentation; the config's
    ``data.flip``, ``data.max_rotation``, ``data.min_scale``, ``data.max_scale``, ``data.max_translate``).

    ``flip`` is the probability of a mirror, ``max_rotation`` in degrees, the scale factor is drawn from
    [``min_scale``, ``max_scale``), ``max_translate`` in pixels of the 200-pixel crop. :data:`NO_AUGMENTATION`
    draws the identity (no flip, rotation, zoom or shift).
    """

    flip: float = 0.5
    max_rotation: float = 30.0
    min_scale: float = 0.75
    max_scale: float = 1.5
    max_translate: float = 40.0


#: The identity draw: no flip, no rotation, scale 1, no translation.
NO_AUGMENTATION = Augmentation(flip=0.0, max_rotation=0.0, min_scale=1.0, max_scale=1.0, max_translate=0.0)


def sample_affine_params(rng: np.random.Generator, width: int, height: int,
                         augmentation: Augmentation = Augmentation()) -> AffineParams:
    """Draw scale, rotation, integer translation and flip as the release does (docs/data_format.md#augmentation).

    Base center (w/2, h/2), base scale min(h, w)/200; s = s0·U[min_scale, max_scale); rotation
    U(-max_rotation, max_rotation); translation randint(-max_translate·s, max_translate·s) per axis; a flip
    with probability ``augmentation.flip``.
    """
    a = augmentation
    s = (min(width, height) / 200.0) * rng.uniform(a.min_scale, a.max_scale)
    rot = rng.uniform(-a.max_rotation, a.max_rotation) if a.max_rotation > 0 else 0.0
    t = int(a.max_translate * s)
    dx, dy = (rng.integers(-t, t, size=2, endpoint=False) if t > 0 else (0, 0))
    flip = bool(rng.random() < a.flip)
    return AffineParams(center=(width / 2.0 + float(dx), height / 2.0 + float(dy)), scale=float(s),
                        rotation=float(rot), flip=flip)


def hflip_matrix(width: float) -> np.ndarray:
    """3×3 mirror x -> width - 1 - x (the pixel-grid flip of an image ``width`` pixels wide)."""
    return np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])


def train_affines(params: AffineParams, input_size: int, output_size: int,
                  flip_alignment: str = "paper") -> tuple[np.ndarray, np.ndarray]:
    """(M_in, M_out): original pixels -> input canvas, original pixels -> output map.

    With ``flip_alignment="paper"`` (old spelling ``"correct"``) and ``params.flip``, the exact mirror is
    folded into both matrices (x_in -> S_in - 1 - x_in, equivalently x_out -> S_out - 0.25 - x_out when
    S_in = 4·S_out). With ``"release"`` the matrices never flip; the caller mirrors the arrays and labels afterwards
    (:func:`boir_core.data.dataset` does it the release's way).
    """
    flip_alignment = switch_value("data.flip_alignment", flip_alignment, name="flip_alignment")
    m_in = crop_affine(params.center, params.scale, input_size, params.rotation)
    m_out = crop_affine(params.center, params.scale, output_size, params.rotation)
    if params.flip and flip_alignment == "paper":
        ratio = input_size / output_size
        f_in = hflip_matrix(input_size)
        # the same mirror expressed in output coordinates: x_out -> (S_in - 1)/ratio - x_out
        f_out = np.diag([1.0 / ratio, 1.0 / ratio, 1.0]) @ f_in @ np.diag([ratio, ratio, 1.0])
        m_in = f_in @ m_in
        m_out = f_out @ m_out
    return m_in, m_out


def apply_affine(points: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Transform (..., 2) points (x, y) by a 2×3 or 3×3 affine."""
    pts = np.asarray(points, dtype=np.float64)
    return pts @ m[:2, :2].T + m[:2, 2]


def warp(image: np.ndarray, m: np.ndarray, size: tuple[int, int], interp: int = cv2.INTER_LINEAR) -> np.ndarray:
    """cv2.warpAffine with a black border; ``size`` = (width, height) of the result."""
    return cv2.warpAffine(image, np.ascontiguousarray(m[:2], dtype=np.float64), size, flags=interp,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


#: per-channel lookup table: uint8 value -> (v/255 - mean)/std, float32 [3, 256]
_NORMALIZE_LUT = ((np.arange(256, dtype=np.float32)[None, :] / np.float32(255.0) - IMAGENET_MEAN[:, None])
                  / IMAGENET_STD[:, None]).astype(np.float32)


def normalize_image(image: np.ndarray) -> np.ndarray:
    """uint8 HWC RGB -> float32 CHW, ImageNet-normalised ((x/255 - mean)/std).

    A 256-entry table per channel does the arithmetic once; each pixel is one lookup.
    """
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 uint8 image, got {image.dtype} {image.shape}")
    return np.stack([np.take(_NORMALIZE_LUT[c], image[:, :, c]) for c in range(3)])


def denormalize_image(chw) -> np.ndarray:
    """Inverse of :func:`normalize_image` for display: float CHW (array or tensor) -> HWC RGB in [0, 1]."""
    arr = chw.detach().cpu().numpy() if hasattr(chw, "detach") else np.asarray(chw)
    if arr.ndim != 3 or arr.shape[0] != 3:
        raise ValueError(f"expected a 3xHxW image, got shape {arr.shape}")
    return (arr.transpose(1, 2, 0) * IMAGENET_STD + IMAGENET_MEAN).clip(0, 1)


# ---- test-time resize (docs/inference.md#test-time-resize) ----------------------------------------------------------

def eval_resize_size(width: int, height: int, input_size: int) -> tuple[int, int]:
    """Canvas (W', H'): the short side becomes ``input_size``; the long side is computed as the release does.

    The release (HigherHRNet's ``get_multi_scale_size``) takes x = S / short * long as a float and writes
    the long side as ``int((x + 63) // 64 * 64)``, i.e. floor((x + 63) / 64)·64. That is ceil(x / 64)·64
    except when x lies strictly between 64k and 64k + 1, where it is 64k: the canvas then crops less than
    one pixel of the image instead of padding 63 more. Example: 500x333 at S = 512 gives x = 768.77 and a
    canvas 768 wide, not 832. The operations run in the release's order (S / short first, then times long)
    so the float x, and hence the size, is the same to the last bit.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    if width < height:
        return input_size, int((input_size / width * height + 63) // 64 * 64)
    return int((input_size / height * width + 63) // 64 * 64), input_size


@dataclass(frozen=True)
class EvalResize:
    """The test-time resize of one image: forward matrix, its inverse and HigherHRNet-style meta."""

    matrix: np.ndarray  # 2×3, original -> canvas
    trans_inv: np.ndarray  # 2×3, canvas -> original
    canvas: tuple[int, int]  # (W', H')
    center: tuple[int, int]
    scale: tuple[float, float]  # 200·scale = the original-pixel extent the canvas covers


def eval_resize(width: int, height: int, input_size: int) -> EvalResize:
    """Rotation-free affine of docs/inference.md#test-time-resize.

    The image center, rounded to integers (int(w/2 + 0.5), int(h/2 + 0.5)), maps to the canvas center;
    the scale factor is S_in / short side, so padding (or, see :func:`eval_resize_size`, the sub-pixel
    crop) on the long axis is symmetric. ``trans_inv`` is the exact inverse of ``matrix``.
    """
    cw, ch = eval_resize_size(width, height, input_size)
    cx, cy = int(width / 2.0 + 0.5), int(height / 2.0 + 0.5)
    f = input_size / min(width, height)
    m = np.array([[f, 0.0, cw / 2.0 - f * cx], [0.0, f, ch / 2.0 - f * cy]])
    inv = np.array([[1.0 / f, 0.0, cx - cw / 2.0 / f], [0.0, 1.0 / f, cy - ch / 2.0 / f]])
    return EvalResize(matrix=m, trans_inv=inv, canvas=(cw, ch), center=(cx, cy),
                      scale=(cw / f / 200.0, ch / f / 200.0))


@dataclass(frozen=True)
class EvalInput:
    """One image made ready for the network at test time (:func:`eval_input`)."""

    image: np.ndarray  # [3, H', W'] float32, ImageNet-normalised: the network's input
    canvas: np.ndarray  # [H', W', 3] uint8 RGB: the resized image as the network sees it
    resize: EvalResize  # the affine (``matrix``: original -> canvas, ``trans_inv``: canvas -> original)


def eval_input(image: np.ndarray, input_size: int) -> EvalInput:
    """The test-time sequence :func:`eval_resize` → :func:`warp` → :func:`normalize_image` of an RGB uint8
    image (docs/inference.md#test-time-resize): the one place it is written, for the test data set,
    ``predict`` and the figures."""
    h, w = image.shape[:2]
    tr = eval_resize(w, h, input_size)
    canvas = warp(image, tr.matrix, tr.canvas)
    return EvalInput(image=normalize_image(canvas), canvas=canvas, resize=tr)
