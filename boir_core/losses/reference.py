"""Slow, loop-based reference implementations ("oracles") written straight from the equations.

They loop over images, instances, window pixels and box rows/columns in plain Python, as the equations
read, and exist to check the vectorised losses (tests) and to measure their speed-up (benchmarks). Do not
train with them. Conventions (pixel sets, kernels, averages) are those documented in
:mod:`boir_core.losses.bbox_mask`; the release oracles follow the pseudo-code of
docs/release_vs_paper.md#release-algorithm literally.
"""
from __future__ import annotations

import math
from typing import Optional

import torch

from .bbox_mask_sums import BboxMaskSettings

__all__ = [
    "focal_loss_ref", "ciou_ref", "bbox_loss_ref", "bbox_mask_paper_ref", "bbox_mask_release_ref",
    "ae_loss_ref", "cid_contrastive_ref", "pixel_index", "paper_box_members", "release_box_span",
]


#: the paper's settings (every default of :class:`~boir_core.losses.bbox_mask.BboxMaskSettings`)
PAPER = BboxMaskSettings()


def pixel_index(v: float, n: int) -> int:
    """The pixel that contains coordinate ``v`` on an axis of ``n`` pixels, clipped to the map."""
    return min(max(math.floor(v), 0), n - 1)


def paper_box_members(lo: float, size: float, n: int) -> list[int]:
    """The paper's box pixels along one axis: u with its center u + ½ in [lo, lo + size], plus the pixel that
    contains the box's middle (clipped), so that no box is empty."""
    mid = pixel_index(lo + size / 2, n)
    return [u for u in range(n) if lo <= u + 0.5 <= lo + size or u == mid]


def release_box_span(lo: float, size: float, n: int) -> tuple[int, int]:
    """The release's dilated box along one axis, half-open: clamp(int(lo) − 1) … clamp(int(lo + size) + 1)
    (``int`` rounds toward zero; both ends clamped to 0 … n − 1, so the last pixel is never inside)."""
    return min(max(int(lo) - 1, 0), n - 1), min(max(int(lo + size) + 1, 0), n - 1)


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / torch.sqrt((v * v).sum()).clamp(min=1e-12)


def _unit_map(emb: torch.Tensor) -> torch.Tensor:
    return emb / torch.sqrt((emb * emb).sum(1, keepdim=True)).clamp(min=1e-12)


# ---- focal ----------------------------------------------------------------------------------------

def focal_loss_ref(prob: torch.Tensor, target: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Element by element CornerNet focal loss (docs/training.md#focal-loss)."""
    m = torch.ones_like(prob) if mask is None else mask.expand_as(prob)
    pos_sum, neg_sum, num_pos = 0.0, 0.0, 0.0
    for P, Y, M in zip(prob.reshape(-1), target.reshape(-1), m.reshape(-1)):
        if float(Y) == 1.0:
            pos_sum = pos_sum + M * torch.log(P) * (1 - P) ** 2
            num_pos += float(M)
        else:
            neg_sum = neg_sum + M * torch.log(1 - P) * P ** 2 * (1 - Y) ** 4
    if num_pos == 0:
        return -neg_sum * torch.ones((), dtype=prob.dtype)
    return -(pos_sum + neg_sum) / num_pos


# ---- box -------------------------------------------------------------------------------------------

def ciou_ref(pred, gt, eps: float = 1e-10):
    """CIoU of two xywh boxes (sequences of 4 scalar tensors), from Zheng et al.'s definition."""
    px1, py1, pw, ph = pred
    gx1, gy1, gw, gh = gt
    px2, py2, gx2, gy2 = px1 + pw, py1 + ph, gx1 + gw, gy1 + gh
    w1, h1 = px2 - px1, py2 - py1 + eps
    w2, h2 = gx2 - gx1, gy2 - gy1 + eps
    iw = torch.clamp(torch.minimum(px2, gx2) - torch.maximum(px1, gx1), min=0)
    ih = torch.clamp(torch.minimum(py2, gy2) - torch.maximum(py1, gy1), min=0)
    inter = iw * ih
    iou = inter / (w1 * h1 + w2 * h2 - inter + eps)
    c2 = ((torch.maximum(px2, gx2) - torch.minimum(px1, gx1)) ** 2
          + (torch.maximum(py2, gy2) - torch.minimum(py1, gy1)) ** 2 + eps)
    rho2 = ((gx1 + gx2 - px1 - px2) ** 2 + (gy1 + gy2 - py1 - py2) ** 2) / 4
    v = 4 / math.pi ** 2 * (torch.atan(w2 / h2) - torch.atan(w1 / h1)) ** 2
    alpha = (v / (v - iou + (1 + eps))).detach()
    return iou - (rho2 / c2 + v * alpha)


def bbox_loss_ref(bbox_map, instance_coord, instance_imgid, instance_bbox, decode: str = "paper"):
    """Σ over instances and clipped 3×3 window pixels of 1 − CIoU, ÷ number of window pixels.
    ``decode``: ``paper`` (or its old spelling ``xy``) reads the anchor as (x, y), ``release`` as (y, x)."""
    if decode not in ("paper", "xy", "release"):
        raise ValueError(f"decode={decode!r} is not one of ['paper', 'release']")
    _, _, H, W = bbox_map.shape
    total, count = 0.0, 0
    for i in range(instance_coord.shape[0]):
        b = int(instance_imgid[i])
        yc, xc = int(instance_coord[i, 0]), int(instance_coord[i, 1])
        gt = [instance_bbox[i, k].to(bbox_map.dtype) for k in range(4)]
        dummy = all(float(g) == 0 for g in gt)
        for y in range(max(yc - 1, 0), min(yc + 1, H - 1) + 1):
            for x in range(max(xc - 1, 0), min(xc + 1, W - 1) + 1):
                count += 1
                if dummy:
                    continue
                left, top, right, bottom = (bbox_map[b, k, y, x] for k in range(4))
                ax, ay = (y, x) if decode == "release" else (x, y)
                pred = [ax - left, ay - top, left + right, top + bottom]
                total = total + (1 - ciou_ref(pred, gt))
    return total / max(count, 1) * torch.ones((), dtype=bbox_map.dtype)


# ---- Bbox Mask Loss, paper -----------------------------------------------------------------------

def _r(a, b, distance):
    if distance == "l2":
        return ((a - b) ** 2).sum()
    return 2 * (1 - (_unit(a) * _unit(b)).sum())


def bbox_mask_paper_ref(emb, instance_bbox, instance_imgid, instance_center=None, settings=PAPER,
                        similarity_emb=None):
    """Eqs. 1–4 / 7–9 with the conventions of :mod:`boir_core.losses.bbox_mask`, one instance at a time, with the
    kernel, distance, β, τ and instance point of ``settings`` (a ``BboxMaskSettings``). Returns a dict with
    per-instance lists ``pull_in``, ``push_out``, ``push_inst`` and the losses.
    """
    kernel, distance, beta, temperature = settings.kernel, settings.distance, settings.beta, settings.temperature
    e = _unit_map(emb)
    es = _unit_map((emb if similarity_emb is None else similarity_emb).detach())
    B, D, H, W = e.shape
    N = instance_bbox.shape[0]
    kappa = beta / D if kernel == "ae" else 1 / (2 * temperature)
    p, pbar, pout, has_out = [None] * N, [None] * N, [None] * N, [False] * N
    for b in range(B):
        for i in [k for k in range(N) if int(instance_imgid[k]) == b]:
            x, y, w, h = (float(v) for v in instance_bbox[i])
            cols, rows = paper_box_members(x, w, W), paper_box_members(y, h, H)
            if settings.instance_point == "box":
                px, py = pixel_index(x + w / 2, W), pixel_index(y + h / 2, H)
            else:
                px, py = pixel_index(float(instance_center[i, 0]), W), pixel_index(float(instance_center[i, 1]), H)
            p[i] = e[b, :, py, px]
            q = es[b, :, py, px]
            # the box crop B_i, one instance at a time (rows and columns chosen by the loops above)
            rr, cc = torch.tensor(rows), torch.tensor(cols)
            crop = e[b][:, rr][:, :, cc]  # [D, |rows|, |cols|]
            crop_s = es[b][:, rr][:, :, cc]
            if distance == "l2":
                r = ((crop_s - q[:, None, None]) ** 2).sum(0)
            else:
                r = 2 * (1 - (_unit_map(crop_s[None])[0] * _unit(q)[:, None, None]).sum(0))
            s = torch.exp(-kappa * r).detach()  # Eq. 1, no gradient
            den = s.sum()
            pbar[i] = (crop * s).sum((1, 2)) / den if float(den) > 0 else p[i]
            inside = torch.zeros(H, W, dtype=torch.bool)
            inside[rr[:, None], cc[None, :]] = True
            outside = ~inside
            has_out[i] = bool(outside.any())
            pout[i] = e[b][:, outside].mean(1) if has_out[i] else torch.zeros_like(p[i])
    zero = torch.zeros((), dtype=e.dtype)
    pull, out, inst = [zero] * N, [zero] * N, [zero] * N
    for b in range(B):
        idx = [k for k in range(N) if int(instance_imgid[k]) == b]
        n = len(idx)
        for i in idx:
            if kernel == "ae":
                pull[i] = _r(p[i], pbar[i], distance) / D
                out[i] = torch.exp(-beta / D * _r(p[i], pout[i], distance)) if has_out[i] else zero
                if n > 1:
                    inst[i] = sum(torch.exp(-beta / D * _r(p[i], p[j], distance)) for j in idx if j != i) / (n - 1)
            else:
                lg = lambda a, c: -_r(a, c, distance) / (2 * temperature)  # noqa: E731
                pull[i] = -torch.log_softmax(torch.stack([lg(p[i], pbar[j]) for j in idx]), 0)[idx.index(i)]
                if has_out[i]:
                    out[i] = -torch.log_softmax(torch.stack([lg(p[i], pbar[i]), lg(p[i], pout[i])]), 0)[0]
                inst[i] = -torch.log_softmax(torch.stack([lg(p[i], p[j]) for j in idx]), 0)[idx.index(i)]
    losses = {}
    for name, vals, min_n in (("pull_in", pull, 1), ("push_out", out, 1), ("push_inst", inst, 2)):
        per_image = []
        for b in range(B):
            idx = [k for k in range(N) if int(instance_imgid[k]) == b]
            if len(idx) >= min_n:
                per_image.append(sum(vals[k] for k in idx) / len(idx))
        losses[name] = sum(per_image) / len(per_image) if per_image else zero
    losses["bbox_mask"] = losses["pull_in"] + losses["push_out"] + losses["push_inst"]
    return {"per_instance": {"pull_in": pull, "push_out": out, "push_inst": inst}, **losses}


# ---- Bbox Mask Loss, release ---------------------------------------------------------------------

def ae_loss_ref(groups_or_matrix, beta: float = 10.0) -> torch.Tensor:
    """The release's AE loss (docs/release_vs_paper.md#release-algorithm): list of [M_g, D]
    groups, or an [N, D] matrix."""
    if isinstance(groups_or_matrix, (list, tuple)):
        pull = 0.0
        means = []
        for g in groups_or_matrix:
            mu = g.mean(0)
            D = g.shape[1]
            for row in g:
                pull = pull + ((row - mu) ** 2).sum() / D
            means.append(mu)
        u = torch.stack(means)
    else:
        pull = 0.0
        u = groups_or_matrix
    N, D = u.shape
    push = 0.0
    if N > 1:
        for i in range(N):
            for j in range(N):
                d = 0.0 if i == j else ((u[i] - u[j]) ** 2).sum() / D  # diagonal "zeroed" -> exp(0) = 1
                push = push + torch.exp(-beta * torch.as_tensor(d, dtype=u.dtype)) / (N - 1)
        push = push / 2
    return pull + push


def bbox_mask_release_ref(emb, instance_bbox, instance_imgid, level: int = 1, beta: float = 10.0,
                          similarity_emb=None):
    """The released BboxMaskLoss, following the pseudo-code of docs/release_vs_paper.md#release-algorithm line by line.

    Returns (loss, per_image) where per_image[b] = L_inst + L_cross added by image b (before ÷ N).
    """
    e = _unit_map(emb)
    es = _unit_map((emb if similarity_emb is None else similarity_emb).detach())
    B, D, H, W = e.shape
    N = instance_bbox.shape[0]
    per_image = []
    for b in range(B):
        contrib = torch.zeros((), dtype=e.dtype)
        P = []
        M = torch.zeros(H, W, dtype=torch.bool)
        for i in [k for k in range(N) if int(instance_imgid[k]) == b]:
            x, y, w, h = (float(v) for v in instance_bbox[i])
            if level == 0:
                M = torch.zeros(H, W, dtype=torch.bool)
            x1, x2 = release_box_span(x, w, W)
            y1, y2 = release_box_span(y, h, H)
            if x2 - x1 < 2 or y2 - y1 < 2:
                continue
            M[y1:y2, x1:x2] = True
            cx, cy = pixel_index((x + w) / 2, W), pixel_index((y + h) / 2, H)
            p = e[b, :, cy, cx]
            q = es[b, :, cy, cx]
            P.append(p)
            s = torch.exp(-beta * ((q[:, None, None] - es[b, :, y1:y2, x1:x2]) ** 2).sum(0))
            s = s / max(float(s.max()), 1.0)
            if float(s.sum()) < 1e-5:
                pos = p[None]
            else:
                pbar = (e[b, :, y1:y2, x1:x2] * s).sum((1, 2)) / s.sum()
                pos = torch.stack([p, pbar])
            if level == 0:
                out = ~M
                pc = e[b][:, out].sum(1) / (H * W - int(M.sum()))
                contrib = contrib + ae_loss_ref([pos, pc[None]], beta)
        if level == 1 and bool((~M).any()):
            P.append(e[b][:, ~M].mean(1))
        if len(P) > 1:
            contrib = contrib + ae_loss_ref(torch.stack(P), beta)
        per_image.append(contrib)
    total = sum(per_image) / max(N, 1) if per_image else torch.zeros((), dtype=emb.dtype)
    return total, per_image


# ---- CID contrastive -------------------------------------------------------------------------------

def cid_contrastive_ref(features, instance_coord, instance_imgid, temperature: float = 0.05):
    """Per image: normalise the center vectors, logits = cos/τ, CE with identity targets, summed; ÷ N."""
    N = instance_coord.shape[0]
    total = torch.zeros((), dtype=features.dtype)
    for b in range(features.shape[0]):
        idx = [k for k in range(N) if int(instance_imgid[k]) == b]
        if not idx:
            continue
        f = torch.stack([_unit(features[b, :, int(instance_coord[k, 0]), int(instance_coord[k, 1])]) for k in idx])
        logits = f @ f.T / temperature
        total = total + torch.nn.functional.cross_entropy(logits, torch.arange(len(idx)), reduction="sum")
    return total / max(N, 1)
