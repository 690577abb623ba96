"""The released decoding (docs/inference.md#decoding-steps) in numpy only: no torch, nor any part of the kit
that imports it.

:func:`decode_np` is :func:`boir_core.engine.inference.decode.decode` step for step, for a deployment that runs the two
exported graphs (docs/inference.md#deployment-folder) with ONNX Runtime. Its network is anything with the two
calls of a backend runner, on numpy arrays:

* ``dense(images [V, 3, H', W'] float32) -> (features [V, C_b, H, W], center_logits [V, 1, H, W])`` (view 0
  the image, view 1 its mirror, the mirrored features flipped back);
* ``instances(features, coords [n, 2] int64 (y, x)) -> instance_logits [V·n, K, H, W]`` (view-major).

Same poses as the torch decoder (tests/deploy/test_decode_np.py holds them to 1e-4 px): every step keeps
torch's float32 arithmetic and its order where the order changes the last bit. The smoothing adds the k×k
window in torch's order (rows, then columns) and divides by k²; the sigmoid rounds ``exp`` once to float32
and then computes 1 / (1 + e) in float32 as torch does (torch's vectorised ``exp`` differs from the correctly
rounded one by one unit in the last place on a few per cent of the values, far below any argmax margin of a
real heatmap); ties are broken as torch breaks them (the first maximum; peaks in index order).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

import numpy as np

from .settings import DecodeSettings

__all__ = ["NpDecodeResult", "Network", "decode_np", "sigmoid_clamp", "smooth_heatmaps", "peak_pool_kernel",
           "find_peaks", "refine_quarter_pixel", "map_to_image", "check_sigmas", "keypoint_box_areas",
           "pairwise_oks", "oks_nms", "CLAMP_EPS"]

#: probabilities are clamped to [CLAMP_EPS, 1 - CLAMP_EPS] after the sigmoid (boir_core.ops.CLAMP_EPS)
CLAMP_EPS = 1e-4
_LO, _HI = np.float32(CLAMP_EPS), np.float32(1 - CLAMP_EPS)
_EPS = 2.220446049250313e-16  # np.spacing(1), as boir_core.engine.inference.oks: a zero area never divides by zero
_CHUNK = 2  # people whose instance heatmaps are decoded together


class Network(Protocol):
    """The two network calls the decoder needs (module docstring)."""

    def dense(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...

    def instances(self, features: np.ndarray, coords: np.ndarray) -> np.ndarray: ...


@dataclass
class NpDecodeResult:
    """The poses of one image (COCO keypoint results) and the seconds spent in the network calls and around them."""

    poses: list[dict[str, Any]]
    time_network: float = 0.0
    time_decode: float = 0.0
    num_proposals: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def time_total(self) -> float:
        return self.time_network + self.time_decode


# ---- building blocks ---------------------------------------------------------------------------------------

def sigmoid_clamp(logits: np.ndarray) -> np.ndarray:
    """float32 sigmoid clamped to [1e-4, 1 - 1e-4] (boir_core.ops.sigmoid_clamp)."""
    x = np.asarray(logits, dtype=np.float32)
    with np.errstate(over="ignore"):  # exp(-x) beyond float32 is inf, as in torch: 1 / (1 + inf) = 0, clamped
        e = np.exp(-x.astype(np.float64)).astype(np.float32)
    return np.clip(np.float32(1) / (np.float32(1) + e), _LO, _HI)


def smooth_heatmaps(maps: np.ndarray, kernel: int) -> np.ndarray:
    """(M + avgpool_k(M)) / 2 over the last two axes, stride 1, zero padding counted in the mean (float32)."""
    if kernel < 1 or kernel % 2 == 0:
        raise ValueError(f"smoothing kernel must be a positive odd integer, got {kernel}")
    m = np.asarray(maps, dtype=np.float32)
    h, w = m.shape[-2:]
    p = (kernel - 1) // 2
    padded = np.zeros(m.shape[:-2] + (h + 2 * p, w + 2 * p), dtype=np.float32)
    padded[..., p:p + h, p:p + w] = m
    total = np.zeros_like(m)
    for dy in range(kernel):  # torch's order: window rows, then columns; padding adds exact zeros
        for dx in range(kernel):
            total += padded[..., dy:dy + h, dx:dx + w]
    pooled = total / np.float32(kernel * kernel)
    return (pooled + m) * np.float32(0.5)


def peak_pool_kernel(height: int, width: int) -> int:
    """Max-pool NMS kernel of the release: 7 if (H + W)/2 > 300, 5 if > 200, else 3 (output-map pixels)."""
    m = (height + width) / 2.0
    return 7 if m > 300 else 5 if m > 200 else 3


def _max_pool(m: np.ndarray, k: int) -> np.ndarray:
    h, w = m.shape
    p = (k - 1) // 2
    padded = np.full((h + 2 * p, w + 2 * p), -np.inf, dtype=m.dtype)
    padded[p:p + h, p:p + w] = m
    out = np.full_like(m, -np.inf)
    for dy in range(k):
        for dx in range(k):
            np.maximum(out, padded[dy:dy + h, dx:dx + w], out=out)
    return out


def find_peaks(center: np.ndarray, max_proposals: int, threshold: float
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Max-pool NMS on a [H, W] map, then the top ``max_proposals`` values above ``threshold``.

    Returns (coords [n, 2] int64 (y, x), scores [n] float32, the NMS-ed map), best score first (equal scores
    in index order)."""
    h, w = center.shape
    peaks = center * (_max_pool(center, peak_pool_kernel(h, w)) == center)
    flat = peaks.reshape(-1)
    order = np.argsort(-flat, kind="stable")[:min(max_proposals, h * w)]
    scores = flat[order]
    keep = scores > np.float32(threshold)
    order, scores = order[keep], scores[keep]
    return np.stack([order // w, order % w], axis=1).astype(np.int64), scores, peaks


def refine_quarter_pixel(heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Argmax of each [H, W] map of [n, K, H, W] plus the quarter-pixel shift towards the larger neighbour
    (none on the border rows / columns). Returns (xy [n, K, 2] float32, peak values [n, K])."""
    n, k, h, w = heatmaps.shape
    flat = heatmaps.reshape(n, k, h * w)
    index = flat.argmax(axis=2)  # first maximum, as torch
    values = np.take_along_axis(flat, index[..., None], axis=2)[..., 0]
    x, y = index % w, index // w

    def at(yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
        return np.take_along_axis(flat, (yy * w + xx)[..., None], axis=2)[..., 0]

    dx = np.sign(at(y, np.minimum(x + 1, w - 1)) - at(y, np.maximum(x - 1, 0)))
    dy = np.sign(at(np.minimum(y + 1, h - 1), x) - at(np.maximum(y - 1, 0), x))
    dx = dx * ((x > 0) & (x < w - 1))
    dy = dy * ((y > 0) & (y < h - 1))
    q = np.float32(0.25)
    xy = np.stack([x.astype(np.float32) + q * dx, y.astype(np.float32) + q * dy], axis=-1)
    return xy.astype(np.float32), values


def map_to_image(xy_map: np.ndarray, trans_inv: Any, stride: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Output-map (x, y) → input canvas (stride·x + stride/2) → original pixels via the 2×3 ``trans_inv``."""
    m = _as_affine(trans_inv)
    canvas = xy_map.astype(np.float64) * stride + stride / 2
    return canvas, canvas @ m[:, :2].T + m[:, 2]


def _as_affine(m: Any) -> np.ndarray:
    a = np.asarray(m, dtype=np.float64)
    if a.shape != (2, 3) or not np.isfinite(a).all():
        raise ValueError(f"trans_inv must be a finite 2x3 affine matrix, got shape {a.shape}: {m!r}")
    return a


# ---- OKS-NMS (boir_core.engine.inference.oks, docs/inference.md#oks-nms) ------------------------------------------

def check_sigmas(sigmas: Sequence[float], num_keypoints: int | None = None) -> np.ndarray:
    """The K true OKS σ as float64; refuses a wrong count or the release's ten-times values (0.26)."""
    s = np.asarray(sigmas, dtype=np.float64).reshape(-1)
    if s.size == 0:
        raise ValueError("oks sigmas: empty list")
    if num_keypoints is not None and s.size != num_keypoints:
        raise ValueError(f"oks sigmas: {s.size} values for {num_keypoints} keypoints")
    if not ((s > 0) & (s < 0.2)).all():
        raise ValueError(f"oks sigmas {s.tolist()} must lie in (0, 0.2): pass the true σ (pycocotools' values, "
                         "e.g. 0.026 for the nose), i.e. the release's TEST.OKS_SIGMAS divided by 10")
    return s


def keypoint_box_areas(keypoints: np.ndarray) -> np.ndarray:
    """Area of the box spanned by each pose's keypoints, [N, K, 2 or 3] → [N] (every keypoint counts)."""
    xy = keypoints[..., :2]
    extent = xy.max(axis=1) - xy.min(axis=1)
    return extent[:, 0] * extent[:, 1]


def pairwise_oks(keypoints: np.ndarray, sigmas: Sequence[float], areas: np.ndarray | None = None) -> np.ndarray:
    """[N, N] release-style OKS: var = (2σ)², area = the mean of the two poses' areas, every keypoint."""
    kp = np.asarray(keypoints, dtype=np.float64)[..., :2]
    var = (2 * check_sigmas(sigmas, kp.shape[1])) ** 2
    a = keypoint_box_areas(kp) if areas is None else np.asarray(areas, dtype=np.float64)
    pair_area = (a[:, None] + a[None, :]) / 2
    d2 = ((kp[:, None] - kp[None, :]) ** 2).sum(-1)
    e = d2 / var / (pair_area[..., None] + _EPS) / 2
    return np.exp(-e).mean(-1)


def oks_nms(keypoints: np.ndarray, scores: np.ndarray, sigmas: Sequence[float], threshold: float,
            areas: np.ndarray | None = None) -> np.ndarray:
    """Greedy OKS-NMS: the kept indices, best score first (equal scores in input order)."""
    n = keypoints.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    oks = pairwise_oks(keypoints, sigmas, areas)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    suppressed = np.zeros(n, dtype=bool)
    keep: list[int] = []
    for i in order.tolist():
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= oks[i] > threshold
    return np.asarray(keep, dtype=np.int64)


# ---- the decoder -------------------------------------------------------------------------------------------

def _check_flip_index(flip_index: Sequence[int], k: int) -> np.ndarray:
    idx = np.asarray(list(flip_index), dtype=np.int64)
    if idx.size != k or sorted(idx.tolist()) != list(range(k)):
        raise ValueError(f"flip_index {list(flip_index)} is not a permutation of the {k} keypoints")
    return idx


def _mean_over_keypoints(scores: np.ndarray) -> np.ndarray:
    """float32 mean over the K keypoints of [n, K]: a running sum, then ÷ K. Torch's reduction groups the sum
    by its vector width (which depends on the CPU), so a person score may differ from torch's in the last
    bit (about 1e-8); it only orders the OKS-NMS."""
    total = np.zeros(scores.shape[0], dtype=np.float32)
    for j in range(scores.shape[1]):
        total += scores[:, j]
    return total / np.float32(scores.shape[1])


def network_views(image: np.ndarray, flip: bool) -> np.ndarray:
    """The dense graph's input for one canvas [3, H', W']: [V, 3, H', W'] float32, the image and, with ``flip``,
    its mirror (view 1), as decoding feeds the network."""
    x = image.astype(np.float32, copy=False)[None]
    return np.ascontiguousarray(np.concatenate([x, x[..., ::-1]], axis=0) if flip else x)


def decode_np(network: Network, image: np.ndarray, trans_inv: Any, settings: DecodeSettings, *,
              image_id: int = 0, stride: int = 4) -> NpDecodeResult:
    """Decode the people in one resized, normalised image ``[3, H', W']`` float32 (the network's canvas) as
    :func:`boir_core.engine.inference.decode.decode` does, with its ``settings``
    (:class:`~.settings.DecodeSettings`, e.g. ``DecodeSettings.of(deploy.json's decode)``); ``trans_inv`` maps canvas
    pixels to the original image."""
    flip_test, flip_index, max_proposals = settings.flip_test, settings.flip_index, settings.max_proposals
    center_pool_kernel = settings.center_pool_kernel
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"image must be a [3, H', W'] array, got shape {image.shape}")
    inv = _as_affine(trans_inv)
    if flip_test and flip_index is None:
        raise ValueError("flip_test=True needs flip_index (deploy.json's decode.flip_index)")
    if max_proposals < 1:
        raise ValueError(f"max_proposals must be >= 1, got {max_proposals}")
    t0 = time.perf_counter()
    x = network_views(image, flip_test)
    t1 = time.perf_counter()
    feats, center_logits = network.dense(x)
    t2 = time.perf_counter()
    probs = sigmoid_clamp(center_logits)[:, 0]  # [V, H, W]
    center_raw = probs[0] if probs.shape[0] == 1 else (probs.sum(axis=0, dtype=np.float32) / np.float32(probs.shape[0]))
    center = smooth_heatmaps(center_raw, center_pool_kernel)
    coords, center_scores, _ = find_peaks(center, max_proposals, settings.center_threshold)
    n = coords.shape[0]
    if n == 0:
        t3 = time.perf_counter()
        return NpDecodeResult([], t2 - t1, (t1 - t0) + (t3 - t2), 0)
    t3 = time.perf_counter()
    inst_logits = network.instances(feats, coords)
    t4 = time.perf_counter()
    k = inst_logits.shape[1]
    sig = check_sigmas(settings.oks_sigmas, k)
    perm = _check_flip_index(flip_index, k) if flip_test else None  # type: ignore[arg-type]
    xy_map = np.empty((n, k, 2), dtype=np.float32)
    peak = np.empty((n, k), dtype=np.float32)
    for a in range(0, n, _CHUNK):  # a few people at a time: their maps stay in the CPU's cache (2x faster at 60)
        b = min(a + _CHUNK, n)
        heat = sigmoid_clamp(inst_logits[a:b])
        if perm is not None:
            heat = (heat + sigmoid_clamp(inst_logits[n + a:n + b])[:, perm]) / np.float32(2)
        xy_map[a:b], peak[a:b] = refine_quarter_pixel(smooth_heatmaps(heat, center_pool_kernel))
    kp_scores = peak * center_scores[:, None]
    _, xy_image = map_to_image(xy_map, inv, stride)
    poses = np.concatenate([xy_image, kp_scores.astype(np.float64)[..., None]], axis=-1)  # [n, K, 3]
    person_scores = _mean_over_keypoints(kp_scores).astype(np.float64)
    keep = oks_nms(poses, person_scores, sig, settings.oks_nms_threshold, areas=keypoint_box_areas(poses))
    results = [{"image_id": int(image_id), "category_id": 1,
                "keypoints": [float(v) for v in poses[i].reshape(-1).tolist()], "score": float(person_scores[i])}
               for i in keep.tolist()]
    t5 = time.perf_counter()
    return NpDecodeResult(results, (t2 - t1) + (t4 - t3), (t1 - t0) + (t3 - t2) + (t5 - t4), n)
