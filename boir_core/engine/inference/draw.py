"""Drawing poses on images (numpy RGB in, numpy RGB out; no matplotlib needed): `predict` and the figures."""
from __future__ import annotations

import colorsys
from typing import Any, Sequence

import cv2
import numpy as np

__all__ = ["person_colour", "draw_poses"]


def person_colour(i: int) -> tuple[int, int, int]:
    """A distinct, saturated RGB colour for person ``i`` (golden-ratio hue steps)."""
    h = (i * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(h, 0.85, 1.0)
    return int(255 * r), int(255 * g), int(255 * b)


def draw_poses(image: np.ndarray, poses: Sequence[dict[str, Any]], skeleton: Sequence[tuple[int, int]], *,
               min_score: float = 0.0, keypoint_min_score: float = 0.0, thickness: int | None = None
               ) -> np.ndarray:
    """Draw COCO-format poses (``keypoints`` = [x, y, s] * K) with their skeleton on a copy of ``image``.

    People are drawn in order of ascending score so the most confident is on top; each gets its own colour.
    Keypoints whose score is below ``keypoint_min_score`` are left out, with their limbs.
    """
    out = np.ascontiguousarray(image.copy())
    if out.ndim == 2:
        out = np.repeat(out[..., None], 3, axis=2)
    t = thickness or max(1, round(min(out.shape[:2]) / 200))
    order = sorted(range(len(poses)), key=lambda i: poses[i].get("score", 0.0))
    for rank, i in enumerate(order):
        p = poses[i]
        if p.get("score", 1.0) < min_score:
            continue
        kp = np.asarray(p["keypoints"], np.float64).reshape(-1, 3)
        col = person_colour(i)
        ok = kp[:, 2] >= keypoint_min_score
        for a, b in skeleton:
            if a < len(kp) and b < len(kp) and ok[a] and ok[b]:
                cv2.line(out, (int(round(kp[a, 0])), int(round(kp[a, 1]))),
                         (int(round(kp[b, 0])), int(round(kp[b, 1]))), col, t, cv2.LINE_AA)
        for (x, y, s), good in zip(kp, ok):
            if good:
                cv2.circle(out, (int(round(x)), int(round(y))), t + 1, col, -1, cv2.LINE_AA)
    return out
