"""Training targets at output resolution (docs/data_format.md#targets), vectorised with numpy.

Inputs are the people of one augmented sample, already in output-map coordinates:

* ``keypoints`` [P, K, 3] (x, y, v),
* ``corners`` [P, 4, 2] the transformed COCO box corners in the order TL, TR, BL, BR,
* ``areas`` [P] the box area in input-resolution pixels² (for the small-person rule).

What is built:

* **center** of a person = mean (x, y) of its keypoints with v > 0 (a keypoint mean, not the box center);
  invalid without labelled keypoints, and (COCO / OCHuman rules) when the area < 32² input px²;
* **Gaussian size** per person: CornerNet's ``gaussian_radius`` on the side lengths of the possibly rotated
  box, its corners clipped to the map and each side rounded **up** first, gaussian_radius((ceil(h), ceil(w)))
  as in the release (min overlap 0.7, r2 and r3 not divided by 2a as in the release); kernel d = 2r + 1,
  σ = d / 6;
* **multi heatmap** [K + 1, S, S]: every person's keypoints (K bottom-up "BUK" channels), then the
  centers of people with a valid center; Gaussians merge by max and peak at exactly 1.0 at the integer
  pixel (int(x), int(y));
* **instances** in ascending area order: coordinate (y, x) = int(center) jittered by ±1 px (reverted if it
  leaves the map), the first (smallest) person wins a duplicated coordinate; per-instance heatmaps, masks
  (v > 0), the center, the keypoints and the xywh box.

Pixels are taken as the release takes them, with Python's ``int()``: truncation **toward zero**, not floor.
A point at x = -0.6 is drawn at column 0 (floor would drop it); a point at x <= -1 or x >= S is not drawn.
A labelled keypoint outside the map keeps its instance mask of 1 (an all-negative channel).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import switch_value

__all__ = [
    "SMALL_PERSON_AREA",
    "gaussian_radius",
    "gaussian_sigma",
    "keypoint_centers",
    "person_radii",
    "gaussian_maps",
    "boxes_from_corners",
    "TargetRules",
    "select_instances",
    "Targets",
    "build_targets",
]

#: People below this many input pixels² lose their center under the COCO / OCHuman rule.
SMALL_PERSON_AREA = 32.0 ** 2


def gaussian_radius(height, width, min_overlap: float = 0.7) -> np.ndarray:
    """CornerNet's adaptive radius as the release computes it (vectorised over people).

    Three quadratics bound the radius at which a box shifted by r still has IoU >= ``min_overlap``
    with the original; r = max(0, int(min(r1, r2, r3))). As in the release, r2 and r3 are divided by 2
    (not by 2a), so r3 is the smallest and r ≤ 0.137·(h + w): 0.137 for square boxes, 0.123 at 2:1, 0.090 at
    4:1 (before the int). Spec example: 16×8 -> 2, 64×32 -> 11.
    """
    h = np.asarray(height, dtype=np.float64)
    w = np.asarray(width, dtype=np.float64)
    b1 = h + w
    c1 = w * h * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + np.sqrt(b1 ** 2 - 4 * c1)) / 2
    a2, b2, c2 = 4.0, 2 * (h + w), (1 - min_overlap) * w * h
    r2 = (b2 + np.sqrt(b2 ** 2 - 4 * a2 * c2)) / 2
    a3, b3, c3 = 4 * min_overlap, -2 * min_overlap * (h + w), (min_overlap - 1) * w * h
    r3 = (b3 + np.sqrt(b3 ** 2 - 4 * a3 * c3)) / 2
    r = np.minimum(np.minimum(r1, r2), r3)
    return np.maximum(0, np.trunc(r)).astype(np.int64)


def gaussian_sigma(radius) -> np.ndarray:
    """σ = d / 6 with kernel size d = 2r + 1."""
    return (2 * np.asarray(radius, dtype=np.float64) + 1) / 6.0


def keypoint_centers(keypoints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (x, y) of the keypoints with v > 0, per person -> (centers [P, 2], has_keypoints [P])."""
    vis = keypoints[..., 2] > 0
    cnt = vis.sum(-1)
    sums = (keypoints[..., :2] * vis[..., None]).sum(-2)
    centers = sums / np.maximum(cnt, 1)[:, None]
    return centers, cnt > 0


def person_radii(corners: np.ndarray, output_size: int) -> np.ndarray:
    """Gaussian radius per person from its 4 box corners (TL, TR, BL, BR), clipped to the map first.

    h = |TL - BL| and w = |TL - TR| are Euclidean side lengths, so rotated boxes keep their size. Both
    are rounded up before the radius, as the release does: gaussian_radius((ceil(h), ceil(w))).
    """
    c = np.clip(corners, 0, output_size - 1)
    h = np.linalg.norm(c[:, 0] - c[:, 2], axis=-1)
    w = np.linalg.norm(c[:, 0] - c[:, 1], axis=-1)
    return gaussian_radius(np.ceil(h), np.ceil(w))


def gaussian_maps(points: np.ndarray, valid: np.ndarray, radius: np.ndarray, size: int) -> np.ndarray:
    """One Gaussian map per point: [..., size, size] float32.

    ``points`` [..., 2] (x, y) float; the Gaussian is centred at the integer pixel (int(x), int(y)), int()
    truncating toward zero as Python's does (so x in (-1, 0) lands on column 0),
    has σ = (2r + 1)/6 and support |dx|, |dy| <= r, and peaks at exactly 1.0. Points that are not
    ``valid`` or whose pixel lies outside [0, size) give an all-zero map. Separable: exp(-(dx²+dy²)/2σ²)
    = gx(x)·gy(y), so the cost is one outer product per point, no Python loop.
    """
    pts = np.asarray(points, dtype=np.float64)
    shape = pts.shape[:-1]
    ix = np.trunc(pts[..., 0])
    iy = np.trunc(pts[..., 1])
    ok = np.asarray(valid, bool) & (ix >= 0) & (iy >= 0) & (ix < size) & (iy < size)
    r = np.broadcast_to(np.asarray(radius, dtype=np.float64), shape)
    sigma = gaussian_sigma(r)
    grid = np.arange(size, dtype=np.float64)
    dx = grid - ix[..., None]
    dy = grid - iy[..., None]
    inv = 1.0 / (2.0 * sigma[..., None] ** 2)
    gx = np.where(np.abs(dx) <= r[..., None], np.exp(-dx * dx * inv), 0.0) * ok[..., None]
    gy = np.where(np.abs(dy) <= r[..., None], np.exp(-dy * dy * inv), 0.0)
    # values below machine-eps of the peak are zeroed in the release; with σ = d/6 the smallest value
    # inside the support is exp(-9) ≫ eps, so the support test above is the whole rule.
    return (gy.astype(np.float32)[..., :, None] * gx.astype(np.float32)[..., None, :])


def boxes_from_corners(corners: np.ndarray, output_size: int, box_clipping: str = "paper") -> np.ndarray:
    """Axis-aligned xywh boxes [P, 4] (output px) from the 4 transformed corners.

    ``"paper"`` (old spelling ``"correct"``): clip the extent's corners to [0, S_out - 1], then
    w = x2 - x1, h = y2 - y1.
    ``"release"``: [min_x, min_y, max_x - min_x, max_y - min_y] with each number clipped on its own to
    [0, S_out - 1] (docs/release_vs_paper.md#box-clipping: a box starting left of the map keeps its full width).
    """
    lo = corners.min(axis=1)
    hi = corners.max(axis=1)
    s1 = output_size - 1
    box_clipping = switch_value("data.box_clipping", box_clipping, name="box_clipping")
    if box_clipping == "paper":
        lo = np.clip(lo, 0, s1)
        hi = np.clip(hi, 0, s1)
        return np.concatenate([lo, hi - lo], axis=-1).astype(np.float32)
    # "release" (switch_value refused anything else)
    return np.clip(np.concatenate([lo, hi - lo], axis=-1), 0, s1).astype(np.float32)


@dataclass(frozen=True)
class TargetRules:
    """The rules that decide who becomes a target and how (docs/data_format.md#targets).

    ``small_person_no_center``: people under :data:`SMALL_PERSON_AREA` input px² get no center (the COCO /
    OCHuman rule of a data-set profile); ``box_clipping``: ``"paper"`` or ``"release"``
    (docs/release_vs_paper.md#box-clipping); ``center_jitter``: instance coordinates jittered by ±1 px;
    ``max_instances``: at most this many instances (None: all).
    """

    small_person_no_center: bool = True
    box_clipping: str = "paper"
    center_jitter: bool = True
    max_instances: int | None = None


def select_instances(centers: np.ndarray, center_ok: np.ndarray, areas: np.ndarray, output_size: int,
                     rng: np.random.Generator | None, rules: TargetRules = TargetRules(),
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Which people become instances, in which order, and at which (y, x) (docs/data_format.md#instances).

    Returns (person indices [n] in ascending area order, coords [n, 2] (y, x) int64). A person is skipped
    when its center is invalid or int(center) (truncation toward zero) is outside the map; the coordinate
    is jittered by a random {-1, 0, 1} per axis (reverted when it would leave the map) when
    ``rules.center_jitter``; of people sharing a coordinate the first (smallest) is kept. At most
    ``rules.max_instances`` are returned (``rules.small_person_no_center`` and ``rules.box_clipping`` play no
    part here).
    """
    order = np.argsort(areas, kind="stable")
    c = np.trunc(centers[order]).astype(np.int64)
    inside = center_ok[order] & (c >= 0).all(-1) & (c < output_size).all(-1)
    order, c = order[inside], c[inside]
    if rules.center_jitter and len(order):
        if rng is None:
            rng = np.random.default_rng()
        j = c + rng.integers(-1, 2, size=c.shape)
        stays = ((j >= 0) & (j < output_size)).all(-1)
        c = np.where(stays[:, None], j, c)
    key = c[:, 1] * output_size + c[:, 0]
    _, first = np.unique(key, return_index=True)
    first.sort()
    if rules.max_instances is not None:
        first = first[:rules.max_instances]
    return order[first], c[first][:, ::-1].copy()


@dataclass
class Targets:
    """All targets of one sample as numpy arrays (see CONTRIBUTING.md for the keys)."""

    multi_heatmap: np.ndarray  # [K+1, S, S] float32
    instance_coord: np.ndarray  # [n, 2] int64 (y, x)
    instance_center: np.ndarray  # [n, 2] float32 (x, y)
    instance_heatmap: np.ndarray  # [n, K, S, S] float32
    instance_mask: np.ndarray  # [n, K] float32
    instance_bbox: np.ndarray  # [n, 4] float32 xywh
    instance_keypoints: np.ndarray  # [n, K, 3] float32
    person_index: np.ndarray  # [n] which input person each instance is
    center_valid: np.ndarray  # [P] bool, per input person
    radius: np.ndarray  # [P] int64, per input person


def build_targets(keypoints: np.ndarray, corners: np.ndarray, areas: np.ndarray, output_size: int, *,
                  rules: TargetRules = TargetRules(), rng: np.random.Generator | None = None) -> Targets:
    """Every target of docs/data_format.md#targets for P people with K keypoints (P may be 0), under ``rules``;
    ``rng`` draws the center jitter (None: fresh randomness)."""
    keypoints = np.asarray(keypoints, dtype=np.float64)
    if keypoints.ndim != 3 or keypoints.shape[-1] != 3:
        raise ValueError(f"keypoints must be [P, K, 3], got shape {keypoints.shape}")
    p, k, _ = keypoints.shape
    s = output_size
    corners = np.asarray(corners, dtype=np.float64).reshape(p, 4, 2)
    areas = np.asarray(areas, dtype=np.float64).reshape(p)

    centers, has_kpts = keypoint_centers(keypoints)
    center_ok = has_kpts.copy()
    if rules.small_person_no_center:
        center_ok &= areas >= SMALL_PERSON_AREA
    radius = person_radii(corners, s) if p else np.zeros(0, np.int64)

    # instances first, so their heatmaps are a contiguous slice of the per-person maps (no copy)
    idx, coords = select_instances(centers, center_ok, areas, s, rng, rules)
    n = len(idx)
    everyone = np.concatenate([idx, np.setdiff1d(np.arange(p), idx)]).astype(np.int64)
    vis = keypoints[..., 2] > 0
    kpt_maps = gaussian_maps(keypoints[everyone, :, :2], vis[everyone], radius[everyone, None], s)  # [P,K,S,S]
    ctr_maps = gaussian_maps(centers, center_ok, radius, s)  # [P, S, S]
    multi = np.zeros((k + 1, s, s), np.float32)
    if p:
        kpt_maps.max(axis=0, out=multi[:k])
        ctr_maps.max(axis=0, out=multi[k])

    boxes = boxes_from_corners(corners, s, rules.box_clipping) if p else np.zeros((0, 4), np.float32)
    return Targets(
        multi_heatmap=multi,
        instance_coord=coords.astype(np.int64).reshape(-1, 2),
        instance_center=centers[idx].astype(np.float32).reshape(-1, 2),
        instance_heatmap=kpt_maps[:n].reshape(-1, k, s, s),
        instance_mask=vis[idx].astype(np.float32).reshape(-1, k),
        instance_bbox=boxes[idx].reshape(-1, 4),
        instance_keypoints=keypoints[idx].astype(np.float32).reshape(-1, k, 3),
        person_index=idx,
        center_valid=center_ok,
        radius=radius,
    )
