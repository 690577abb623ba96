"""Box loss (docs/release_vs_paper.md#box-loss-and-decoding): anchor-free (YOLOv6-style) l, t, r, b distances read
at the 3×3 window around every instance center, decoded to boxes and scored with 1 − CIoU.

At a window pixel with column x and row y, the bbox head predicts o = (l, t, r, b) and the box is

    x1 = x − l,  y1 = y − t,  w = l + r,  h = t + b          (decode="paper"; old spelling "xy")
    x1 = y − l,  y1 = x − t,  w = l + r,  h = t + b          (decode="release": the released code passes
                                                               the anchor as (y, x), swapping the axes)

CIoU (Zheng et al.) of a predicted box p and the ground truth g, with eps = 1e-10 added to heights:

    CIoU = IoU − ρ²/c² − α·v,   v = 4/π²·(atan(w_g/h_g) − atan(w_p/h_p))²,   α = v / (v − IoU + 1 + eps)

ρ² is the squared distance between the two box centers, c² the squared diagonal of the smallest box
enclosing both; α is treated as a constant (no gradient). The loss is Σ (1 − CIoU) over all window pixels
divided by the number of window pixels (windows are clipped to the map, so border centers have fewer).
An instance whose box is all zeros (the release's dummy) contributes 0 but its pixels still count.
``dummy_instances`` counts the release's dummies without their tensors: each adds the window of a center at
(0, 0), clipped to the map (4 pixels on any map of at least 2×2), to the divisor and nothing to the sum
(docs/release_vs_paper.md#dummy-instance).
"""
from __future__ import annotations

import math

import torch

from ..config import switch_value
from ._common import as_float, check_same_length, check_shape, fp32_loss

__all__ = ["ciou", "decode_ltrb", "center_windows", "bbox_loss", "bbox_loss_per_instance", "dummy_window_pixels",
           "CIOU_EPS"]

#: eps of the release's CIoU (docs/release_vs_paper.md#box-loss-and-decoding).
CIOU_EPS = 1e-10


def ciou(pred_xywh: torch.Tensor, gt_xywh: torch.Tensor, eps: float = CIOU_EPS) -> torch.Tensor:
    """Complete IoU of boxes [..., 4] (xywh) elementwise; α is detached."""
    px1, py1 = pred_xywh[..., 0], pred_xywh[..., 1]
    px2, py2 = px1 + pred_xywh[..., 2], py1 + pred_xywh[..., 3]
    gx1, gy1 = gt_xywh[..., 0], gt_xywh[..., 1]
    gx2, gy2 = gx1 + gt_xywh[..., 2], gy1 + gt_xywh[..., 3]
    pw, ph = px2 - px1, py2 - py1 + eps
    gw, gh = gx2 - gx1, gy2 - gy1 + eps
    inter = (torch.minimum(px2, gx2) - torch.maximum(px1, gx1)).clamp(min=0) * \
            (torch.minimum(py2, gy2) - torch.maximum(py1, gy1)).clamp(min=0)
    union = pw * ph + gw * gh - inter + eps
    iou = inter / union
    cw = torch.maximum(px2, gx2) - torch.minimum(px1, gx1)
    ch = torch.maximum(py2, gy2) - torch.minimum(py1, gy1)
    c2 = cw ** 2 + ch ** 2 + eps
    rho2 = ((px1 + px2 - gx1 - gx2) ** 2 + (py1 + py2 - gy1 - gy2) ** 2) / 4
    v = (4 / math.pi ** 2) * (torch.atan(gw / gh) - torch.atan(pw / ph)) ** 2
    with torch.no_grad():
        alpha = v / (v - iou + (1 + eps))
    return iou - (rho2 / c2 + v * alpha)


def decode_ltrb(ltrb: torch.Tensor, x: torch.Tensor, y: torch.Tensor, decode: str = "paper") -> torch.Tensor:
    """Distances (l, t, r, b) [..., 4] at anchor pixels (column ``x``, row ``y``) -> xywh boxes [..., 4]."""
    decode = switch_value("loss.bbox_decode", decode, name="decode")
    ax, ay = (x, y) if decode == "paper" else (y, x)
    ax, ay = ax.to(ltrb.dtype), ay.to(ltrb.dtype)
    left, top, right, bottom = ltrb.unbind(-1)
    return torch.stack([ax - left, ay - top, left + right, top + bottom], dim=-1)


def center_windows(instance_coord: torch.Tensor, height: int, width: int):
    """The 3×3 window around every (y, x) center: rows [N,9], columns [N,9] (clipped to the map, long)
    and a validity mask [N,9] (False where the window leaves the map). Row-major from the top-left: window
    pixel k is (y + k // 3 − 1, x + k % 3 − 1) before clipping, the center the fifth (k = 4)."""
    d = torch.arange(-1, 2, device=instance_coord.device)
    dy, dx = torch.meshgrid(d, d, indexing="ij")
    ys = instance_coord[:, 0:1] + dy.reshape(1, 9)
    xs = instance_coord[:, 1:2] + dx.reshape(1, 9)
    valid = (ys >= 0) & (ys < height) & (xs >= 0) & (xs < width)
    return ys.clamp(0, height - 1), xs.clamp(0, width - 1), valid


def dummy_window_pixels(height: int, width: int) -> int:
    """The window pixels of the release's dummy instance, centered at (0, 0) and clipped to an H×W map (4)."""
    return min(2, height) * min(2, width)


def bbox_loss(bbox_map: torch.Tensor, instance_coord: torch.Tensor, instance_imgid: torch.Tensor,
              instance_bbox: torch.Tensor, decode: str = "paper", dummy_instances: int | torch.Tensor = 0
              ) -> torch.Tensor:
    """Mean 1 − CIoU over the 3×3 windows around the (jittered) instance centers.

    ``bbox_map`` [B,4,H,W] raw l, t, r, b; ``instance_coord`` [N,2] (y, x); ``instance_imgid`` [N];
    ``instance_bbox`` [N,4] xywh in output pixels. ``dummy_instances``: how many of the release's dummies the
    batch holds (one per image without instances, ``loss.dummy_instance=release``); each adds
    :func:`dummy_window_pixels` to the divisor and nothing to the sum. :func:`bbox_loss_per_instance` also
    gives each instance's share.
    """
    return bbox_loss_per_instance(bbox_map, instance_coord, instance_imgid, instance_bbox, decode, dummy_instances)[0]


@fp32_loss
def bbox_loss_per_instance(bbox_map: torch.Tensor, instance_coord: torch.Tensor, instance_imgid: torch.Tensor,
                           instance_bbox: torch.Tensor, decode: str = "paper",
                           dummy_instances: int | torch.Tensor = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, per_instance, count): :func:`bbox_loss` (same arguments), the summed 1 − CIoU of each instance's
    window [N] and its pixel count [N] (real instances only)."""
    check_shape("bbox", bbox_map, 4)
    if bbox_map.shape[1] != 4:
        raise ValueError(f"bbox must have 4 channels (l, t, r, b), got {bbox_map.shape[1]}")
    check_shape("instance_coord", instance_coord, 2, 2)
    check_shape("instance_bbox", instance_bbox, 2, 4)
    check_shape("instance_imgid", instance_imgid, 1)
    check_same_length(instance_coord=instance_coord, instance_imgid=instance_imgid, instance_bbox=instance_bbox)
    decode = switch_value("loss.bbox_decode", decode, name="decode")
    bbox_map = as_float(bbox_map)
    _, _, height, width = bbox_map.shape
    ys, xs, valid = center_windows(instance_coord.long(), height, width)
    b = instance_imgid.long()[:, None].expand_as(ys)
    ltrb = bbox_map[b, :, ys, xs]  # [N, 9, 4]: advanced indices first, then the channel
    pred = decode_ltrb(ltrb, xs, ys, decode)
    gt = as_float(instance_bbox).to(pred.dtype)
    real = gt.ne(0).any(-1, keepdim=True)  # all-zero boxes (dummies) add nothing
    per_pixel = (1 - ciou(pred, gt[:, None, :].expand_as(pred))) * (valid & real).to(pred.dtype)
    per_instance = per_pixel.sum(1)
    count = valid.sum(1).to(pred.dtype)
    pixels = count.sum() + dummy_instances * dummy_window_pixels(height, width)
    return per_instance.sum() / pixels.clamp(min=1), per_instance, count
