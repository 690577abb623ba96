"""The four dense task heads that read the neck output (docs/model.md#task-heads).

Every head is ``BasicBlock(256 → 128)`` followed by a 3×3 output conv with bias, producing raw logits:

* ``center_head`` (1 channel): where people are; the only one kept at inference;
* ``buk_head`` (K channels): bottom-up keypoint heatmaps, a training-only auxiliary task;
* ``emb_head`` (D = 128 channels): the instance embedding trained by the Bbox Mask Loss;
* ``bbox_head`` (4 channels): l, t, r, b distances to the person's box, trained by the CIoU loss.

The BasicBlock's shortcut is a 1×1 conv + BN (the paper's appendix says 3×3; the release uses 1×1), with
the release's module names ``downsample.conv`` / ``downsample.norm_layer``.
"""
from __future__ import annotations

from typing import Literal, Optional, Sequence

import torch
import torch.nn as nn

from ..config import switch_value
from ..ops import PRIOR_BIAS
from .neck import ASPP

__all__ = ["BasicBlock", "Shortcut", "Head", "MultiHead", "AUX_HEADS"]

#: Heads that exist only for training (not built at inference).
AUX_HEADS = ("buk_head", "emb_head", "bbox_head")


class Shortcut(nn.Module):
    """1×1 conv + BN projection shortcut (names as released: ``conv``, ``norm_layer``)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 1, bias=False)
        self.norm_layer = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm_layer(self.conv(x))


class BasicBlock(nn.Module):
    """ResNet BasicBlock: (3×3 conv, BN, ReLU, 3×3 conv, BN) + shortcut, then ReLU."""

    def __init__(self, cin: int, planes: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = Shortcut(cin, planes) if cin != planes else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + identity)


class Head(nn.Module):
    """``head = Sequential(BasicBlock(cin → channels), Conv3×3(channels → out, bias))``; returns logits."""

    def __init__(self, cin: int, channels: int, out: int):
        super().__init__()
        self.head = nn.Sequential(BasicBlock(cin, channels), nn.Conv2d(channels, out, 3, padding=1, bias=True))

    @property
    def output_conv(self) -> nn.Conv2d:
        return self.head[1]

    @property
    def hidden_block(self) -> BasicBlock:
        return self.head[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x)


def _init_release_(module: nn.Module) -> None:
    """Release init of the neck and the center/BUK/emb heads: conv weight N(0, 0.001²), bias -4.595."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.normal_(m.weight, std=0.001)
            if m.bias is not None:
                nn.init.constant_(m.bias, PRIOR_BIAS if isinstance(m, nn.Conv2d) else 0.0)


def init_bbox_head_(head: Head, mode: Literal["paper", "release"]) -> None:
    """Initialise the bbox head.

    * ``"release"``: every conv weight 0 and the output bias 1.0 — what the released code does
      (docs/release_vs_paper.md#bbox-head-initialisation, [BUG]): the hidden block outputs exactly 0, so no gradient
      ever reaches its weights, the output weight, the neck or the backbone; only the four output biases learn.
    * ``"paper"`` (old spelling ``"working"``): YOLOv6-style, only the *output* conv weight is 0 (bias
      1.0); the hidden block keeps PyTorch's standard init. The first step trains the output weight, after
      which gradient flows into the hidden block and the shared features.
    """
    mode = switch_value("model.bbox_head_init", mode, name="bbox_head_init")
    if mode == "release":
        for m in head.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.zeros_(m.weight)
    nn.init.zeros_(head.output_conv.weight)
    nn.init.constant_(head.output_conv.bias, 1.0)


class MultiHead(nn.Module):
    """ASPP neck plus the dense heads (released name ``multihead``).

    Args:
        in_channels: C_b.
        num_keypoints: K (channels of the BUK head).
        train_heads: build the training-only heads (BUK, emb, and bbox if ``bbox_head``).
        bbox_head: build the bbox head (False: the Table 4 ablation without it).
        bbox_head_init: ``"paper"`` (default) or ``"release"``; see :func:`init_bbox_head_`.
    """

    def __init__(self, in_channels: int, num_keypoints: int, *, emb_dim: int = 128, train_heads: bool = True,
                 bbox_head: bool = True, bbox_head_init: Literal["paper", "release"] = "paper",
                 neck_channels: int = 256, neck_middle_channels: int = 128,
                 atrous_rates: Sequence[int] = (12, 24, 36), head_channels: int = 128):
        super().__init__()
        # a ModuleList of one neck: the release allows several and names the first "neck.0"
        self.neck = nn.ModuleList([ASPP(in_channels, neck_channels, neck_middle_channels, atrous_rates)])
        self.center_head = Head(neck_channels, head_channels, 1)
        self.buk_head: Optional[Head] = None
        self.emb_head: Optional[Head] = None
        self.bbox_head: Optional[Head] = None
        if train_heads:
            self.buk_head = Head(neck_channels, head_channels, num_keypoints)
            self.emb_head = Head(neck_channels, head_channels, emb_dim)
        # release order: init neck + center/BUK/emb first, then build and init the bbox head
        _init_release_(self)
        if train_heads and bbox_head:
            self.bbox_head = Head(neck_channels, head_channels, 4)
            init_bbox_head_(self.bbox_head, bbox_head_init)

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        """F → {"neck", "center", and "buk"/"emb"/"bbox" for the heads that exist} (all raw)."""
        x = self.neck[0](features)
        out = {"neck": x, "center": self.center_head(x)}
        for name, key in (("buk_head", "buk"), ("emb_head", "emb"), ("bbox_head", "bbox")):
            head = getattr(self, name)
            if head is not None:
                out[key] = head(x)
        return out
