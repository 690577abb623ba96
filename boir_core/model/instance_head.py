"""BoIR's instance keypoint head (InstKptHead, docs/model.md#instance-keypoint-head) and the pieces
it shares with CID's GFD.

For every person i, a vector p_i (by default the backbone vector F[:, y_i, x_i] at the person's center)
conditions a shared map G = conv1×1(F) in two ways:

* **channel attention**: ``a = LayerNorm(Linear(p))``, Z_c = G ⊙ a (one weight per channel);
* **spatial attention**: ``b = LayerNorm(Linear(p))``, s(x, y) = Σ_c G_c(x, y) b_c, stacked with the
  relative-coordinate maps ((x_i − x)/32, (y_i − y)/32), 5×5 conv, InstanceNorm → m; Z_s = G ⊙ m.

``[Z_c, Z_s]`` is fused by conv1×1 + InstanceNorm + ReLU and turned into K heatmap logits by a 1×1 conv.

Everything is batched over people: G is gathered per person with ``index_select`` and the coordinate maps
are built by broadcasting, so there is no Python loop per instance, and N = 0 people works.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn

from ..ops import PRIOR_BIAS

__all__ = [
    "InstanceKeypointHead",
    "sample_instance_params",
    "relative_coordinate_maps",
    "check_instances",
    "RELATIVE_COORD_SCALE",
]

#: The relative-coordinate maps are divided by this (docs/model.md#instance-keypoint-head, as in CID).
RELATIVE_COORD_SCALE = 32.0


def check_instances(features: torch.Tensor, instance_coord: torch.Tensor, instance_imgid: torch.Tensor) -> None:
    """Raise a clear error if instance_coord [N, 2] (y, x) / instance_imgid [N] do not fit F [B, C, H, W]."""
    if instance_coord.dim() != 2 or instance_coord.shape[1] != 2:
        raise ValueError(f"instance_coord must be [N, 2] (y, x), got {tuple(instance_coord.shape)}")
    if instance_imgid.dim() != 1 or instance_imgid.shape[0] != instance_coord.shape[0]:
        raise ValueError(f"instance_imgid must be [N] with N = {instance_coord.shape[0]}, "
                         f"got {tuple(instance_imgid.shape)}")
    if instance_coord.dtype != torch.long or instance_imgid.dtype != torch.long:
        raise TypeError(f"instance_coord and instance_imgid must be int64, got {instance_coord.dtype} "
                        f"and {instance_imgid.dtype}")
    if instance_coord.shape[0]:
        b, _, h, w = features.shape
        bad = ((instance_coord < 0).any(dim=1) | (instance_coord[:, 0] >= h) | (instance_coord[:, 1] >= w)
               | (instance_imgid < 0) | (instance_imgid >= b))
        if bool(bad.any()):
            i = int(bad.nonzero()[0, 0])
            raise ValueError(f"instance {i}: coord (y, x) = {tuple(instance_coord[i].tolist())}, imgid = "
                             f"{int(instance_imgid[i])} is outside the feature map [B={b}, H={h}, W={w}]")


def sample_instance_params(features: torch.Tensor, instance_coord: torch.Tensor,
                           instance_imgid: torch.Tensor) -> torch.Tensor:
    """The backbone vector at each instance center: F[imgid, :, y, x] → [N, C]."""
    check_instances(features, instance_coord, instance_imgid)
    return features[instance_imgid, :, instance_coord[:, 0], instance_coord[:, 1]]


def relative_coordinate_maps(instance_coord: torch.Tensor, height: int, width: int,
                             dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """[N, 2, H, W]: channel 0 = (x_i − x)/32, channel 1 = (y_i − y)/32 for pixel indices x, y (no offset)."""
    dev = instance_coord.device
    n = instance_coord.shape[0]
    xs = torch.arange(width, device=dev, dtype=torch.float32)
    ys = torch.arange(height, device=dev, dtype=torch.float32)
    yi = instance_coord[:, 0].to(torch.float32).view(n, 1, 1)
    xi = instance_coord[:, 1].to(torch.float32).view(n, 1, 1)
    rx = ((xi - xs.view(1, 1, width)) / RELATIVE_COORD_SCALE).expand(n, height, width)
    ry = ((yi - ys.view(1, height, 1)) / RELATIVE_COORD_SCALE).expand(n, height, width)
    return torch.stack((rx, ry), dim=1).to(dtype)


class ChannelAttention(nn.Module):
    """a = LayerNorm(Linear(p)); returns G ⊙ a (released name ``c_attn``, ``atn = [Linear, LayerNorm]``)."""

    def __init__(self, in_channels: int, channels: int):
        super().__init__()
        self.atn = nn.Sequential(nn.Linear(in_channels, channels), nn.LayerNorm(channels))

    def forward(self, g: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        return g * self.atn(params)[:, :, None, None]


class SpatialAttention(nn.Module):
    """m = InstanceNorm(conv5×5([Σ_c G_c b_c, r_x, r_y])); returns (G ⊙ m, m) (released name ``s_attn``)."""

    def __init__(self, in_channels: int, channels: int):
        super().__init__()
        self.atn = nn.Sequential(nn.Linear(in_channels, channels), nn.LayerNorm(channels))
        self.conv = nn.Conv2d(3, 1, 5, padding=2, bias=True)
        self.norm = nn.InstanceNorm2d(1)  # no affine parameters: zero mean, unit variance per person

    def attention_map(self, g: torch.Tensor, params: torch.Tensor, instance_coord: torch.Tensor) -> torch.Tensor:
        b = self.atn(params)
        s = torch.einsum("nchw,nc->nhw", g, b).unsqueeze(1)
        rel = relative_coordinate_maps(instance_coord, g.shape[2], g.shape[3], dtype=g.dtype)
        return self.norm(self.conv(torch.cat((s, rel), dim=1)))

    def forward(self, g: torch.Tensor, params: torch.Tensor, instance_coord: torch.Tensor) -> torch.Tensor:
        return g * self.attention_map(g, params, instance_coord)


class InstanceKeypointHead(nn.Module):
    """Instance keypoint head (released name ``kpt_head``): F, p_i → K heatmap logits per person.

    Args:
        in_channels: C_b (480 / 720).
        channels: hidden width c (64 for W32, 96 for W48).
        num_keypoints: K.
    """

    def __init__(self, in_channels: int, channels: int, num_keypoints: int):
        super().__init__()
        self.conv_down = nn.Conv2d(in_channels, channels, 1)
        self.c_attn = ChannelAttention(in_channels, channels)
        self.s_attn = SpatialAttention(in_channels, channels)
        self.fuse_attn = nn.Sequential(nn.Conv2d(2 * channels, channels, 1), nn.InstanceNorm2d(channels),
                                       nn.ReLU(inplace=True))
        self.heatmap_conv = nn.Conv2d(channels, num_keypoints, 1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Release init: every conv N(0, 0.001²) with bias −4.595; Linear N(0, 0.001²), bias 0."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.001)
                nn.init.constant_(m.bias, PRIOR_BIAS)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.001)
                nn.init.zeros_(m.bias)

    def _prepare(self, features, instance_coord, instance_imgid, params):
        check_instances(features, instance_coord, instance_imgid)
        if params is None:
            params = sample_instance_params(features, instance_coord, instance_imgid)
        if params.shape != (instance_coord.shape[0], features.shape[1]):
            raise ValueError(f"params must be [N, C_b] = [{instance_coord.shape[0]}, {features.shape[1]}], "
                             f"got {tuple(params.shape)}")
        g = self.conv_down(features).index_select(0, instance_imgid)
        return g, params.to(g.dtype)

    def attention_maps(self, features: torch.Tensor, instance_coord: torch.Tensor,
                       instance_imgid: torch.Tensor, params: Optional[torch.Tensor] = None) -> dict:
        """For teaching: the channel weights a [N, c] and the spatial map m [N, 1, H, W] of each person."""
        g, params = self._prepare(features, instance_coord, instance_imgid, params)
        return {"channel": self.c_attn.atn(params), "spatial": self.s_attn.attention_map(g, params, instance_coord)}

    def forward(self, features: torch.Tensor, instance_coord: torch.Tensor, instance_imgid: torch.Tensor,
                params: Optional[torch.Tensor] = None) -> torch.Tensor:
        """F [B, C_b, H, W], coord [N, 2] (y, x), imgid [N] → logits [N, K, H, W]."""
        g, params = self._prepare(features, instance_coord, instance_imgid, params)
        z = torch.cat((self.c_attn(g, params), self.s_attn(g, params, instance_coord)), dim=1)
        return self.heatmap_conv(self.fuse_attn(z))
