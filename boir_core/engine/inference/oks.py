"""Object Keypoint Similarity (OKS) and the greedy OKS-NMS of the released decoder (docs/inference.md#oks-nms).

OKS measures how well two poses of the same K keypoints agree, like IoU does for boxes::

    OKS(a, b) = mean_k exp( -d_k² / (2 · var_k · area) ),     var_k = (2 σ_k)²

where ``d_k`` is the distance between keypoint k of the two poses, ``σ_k`` the per-keypoint spread
(small for eyes, large for hips) and ``area`` the size of the person.

The NMS flavour used at inference differs from the one pycocotools uses for *evaluation*:

* ``area`` is the **mean of the two poses' keypoint-extent box areas** ((max x − min x)·(max y − min y)),
  because neither pose is ground truth;
* **every** keypoint counts (no visibility gating);
* σ are the true per-keypoint spreads (pycocotools' values, e.g. 0.026 for the nose), i.e. the
  release's ``TEST.OKS_SIGMAS`` divided by 10. :func:`check_sigmas` refuses values 10× too large.

NMS is greedy: sort by score, keep the best pose, drop every other pose whose OKS with it is
**greater than** the threshold (0.8; 0.7 for OCHuman), repeat with the best remaining pose.
"""
from __future__ import annotations

from typing import Sequence

import torch

__all__ = ["check_sigmas", "keypoint_box_areas", "pairwise_oks", "oks_nms"]

_EPS = 2.220446049250313e-16  # numpy's np.spacing(1): keeps a zero area from dividing by zero


def check_sigmas(sigmas: Sequence[float] | torch.Tensor, num_keypoints: int | None = None) -> torch.Tensor:
    """Validate per-keypoint OKS sigmas and return them as a float64 tensor.

    Raises ``ValueError`` when the count does not match ``num_keypoints`` or when the values look like
    the release's ``TEST.OKS_SIGMAS`` (10× the true σ: 0.26 instead of 0.026).
    """
    s = torch.as_tensor(sigmas, dtype=torch.float64).flatten().cpu()
    if s.numel() == 0:
        raise ValueError("oks sigmas: empty list")
    if num_keypoints is not None and s.numel() != num_keypoints:
        raise ValueError(f"oks sigmas: {s.numel()} values for {num_keypoints} keypoints")
    if not bool(((s > 0) & (s < 0.2)).all()):
        raise ValueError(
            f"oks sigmas {s.tolist()} must lie in (0, 0.2): pass the true σ (pycocotools' values, "
            "e.g. 0.026 for the nose), i.e. the release's TEST.OKS_SIGMAS divided by 10"
        )
    return s


def keypoint_box_areas(keypoints: torch.Tensor) -> torch.Tensor:
    """Area of the axis-aligned box spanned by each pose's keypoints.

    ``keypoints`` is [N, K, 2 or 3] (x, y[, score]); returns [N]. All keypoints count.
    """
    xy = keypoints[..., :2]
    extent = xy.amax(dim=1) - xy.amin(dim=1)  # [N, 2] = (w, h)
    return extent[:, 0] * extent[:, 1]


def pairwise_oks(keypoints: torch.Tensor, sigmas: Sequence[float] | torch.Tensor,
                 areas: torch.Tensor | None = None) -> torch.Tensor:
    """The [N, N] matrix of release-style OKS between every pair of poses.

    Args:
        keypoints: [N, K, 2 or 3] poses in one coordinate frame (pixels).
        sigmas: K true per-keypoint σ (see :func:`check_sigmas`).
        areas: [N] per-pose areas; default: :func:`keypoint_box_areas`.

    Entry (i, j) uses area = (area_i + area_j) / 2, so the matrix is symmetric with ones on the diagonal.
    """
    if keypoints.dim() != 3 or keypoints.shape[-1] < 2:
        raise ValueError(f"keypoints must be [N, K, 2 or 3], got {tuple(keypoints.shape)}")
    kp = keypoints[..., :2].to(torch.float64)
    s = check_sigmas(sigmas, kp.shape[1]).to(kp.device)
    var = (2 * s) ** 2  # [K]
    a = keypoint_box_areas(kp) if areas is None else torch.as_tensor(areas, dtype=torch.float64, device=kp.device)
    pair_area = (a[:, None] + a[None, :]) / 2  # [N, N]
    d2 = ((kp[:, None] - kp[None, :]) ** 2).sum(-1)  # [N, N, K]
    e = d2 / var / (pair_area[..., None] + _EPS) / 2
    return torch.exp(-e).mean(-1)


def oks_nms(keypoints: torch.Tensor, scores: torch.Tensor, sigmas: Sequence[float] | torch.Tensor,
            threshold: float, areas: torch.Tensor | None = None) -> torch.Tensor:
    """Greedy OKS non-maximum suppression; returns the kept indices, best score first.

    A pose is suppressed when its OKS with an already kept, better-scored pose exceeds ``threshold``.
    The OKS matrix is computed once with tensor ops; only the greedy pass walks the (≤ 30) candidates.
    """
    n = keypoints.shape[0]
    if scores.shape != (n,):
        raise ValueError(f"scores must be [{n}], got {tuple(scores.shape)}")
    if n == 0:
        return torch.zeros(0, dtype=torch.long)
    oks = pairwise_oks(keypoints, sigmas, areas).cpu()
    order = torch.sort(scores.detach().to(torch.float64).cpu(), descending=True, stable=True).indices
    suppressed = torch.zeros(n, dtype=torch.bool)
    keep: list[int] = []
    for i in order.tolist():
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= oks[i] > threshold
    return torch.tensor(keep, dtype=torch.long)
