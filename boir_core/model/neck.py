"""The ASPP "neck" between the backbone and the task heads (docs/model.md#neck-aspp).

DeepLabV3-style atrous spatial pyramid pooling. Five parallel branches look at the backbone map F with
different receptive fields, each giving ``middle_channels`` (128) channels:

====  =========================================  ==============================
 #     branch                                      receptive field of one layer
====  =========================================  ==============================
 0     1×1 conv + BN + ReLU                        1 px
 1-3   3×3 conv, dilation r ∈ {12, 24, 36} + BN    2r + 1 px (25, 49, 73 px at stride 4)
 4     global average pool → 1×1 conv + BN + ReLU  the whole image
====  =========================================  ==============================

They are concatenated (5 × 128 = 640) and projected by 1×1 conv + BN + ReLU to ``channels`` (256). No conv
has a bias; there is no dropout. Module names follow the release (``convs.{0..4}``, ``project``).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["ASPP", "ImagePooling"]


def _conv_bn_relu(cin: int, cout: int, kernel: int, dilation: int = 1) -> nn.Sequential:
    pad = 0 if kernel == 1 else dilation
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, padding=pad, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class ImagePooling(nn.Sequential):
    """Global average pool → 1×1 conv + BN + ReLU → bilinear upsample back to H×W.

    The release applies BatchNorm to a [B, C, 1, 1] tensor, which PyTorch refuses in training mode when
    B = 1 (one value per channel; docs/release_vs_paper.md#release-quirks). Here a training batch of one
    image uses the BN running statistics for this branch instead of crashing (and leaves them unchanged);
    B > 1 behaves as released.
    """

    def __init__(self, cin: int, cout: int):
        super().__init__(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(cin, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        size = x.shape[-2:]
        pool, conv, bn, relu = self
        y = conv(pool(x))
        if self.training and y.shape[0] == 1:
            y = F.batch_norm(y, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)
        else:
            y = bn(y)
        return F.interpolate(relu(y), size=size, mode="bilinear", align_corners=False)


class ASPP(nn.Module):
    """ASPP neck: F [B, C_b, H, W] → N [B, channels, H, W].

    Args:
        in_channels: C_b (480 for W32).
        channels: output channels (256).
        middle_channels: channels of each of the five branches (128; half the parameters of a
            256-channel ASPP, the paper's "50 %").
        atrous_rates: dilations of the three 3×3 branches ([12, 24, 36]).
    """

    def __init__(self, in_channels: int, channels: int = 256, middle_channels: int = 128,
                 atrous_rates: Sequence[int] = (12, 24, 36)):
        super().__init__()
        self.atrous_rates = tuple(int(r) for r in atrous_rates)
        branches = [_conv_bn_relu(in_channels, middle_channels, 1)]
        branches += [_conv_bn_relu(in_channels, middle_channels, 3, dilation=r) for r in self.atrous_rates]
        branches.append(ImagePooling(in_channels, middle_channels))
        self.convs = nn.ModuleList(branches)
        self.project = _conv_bn_relu(middle_channels * len(branches), channels, 1)

    def receptive_fields(self) -> list[int]:
        """Receptive field (in feature-map pixels) of each branch's single layer; 0 stands for 'global'."""
        return [1] + [2 * r + 1 for r in self.atrous_rates] + [0]

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([branch(features) for branch in self.convs], dim=1))
