"""HRNet backbone with the all-branch output used by CID and BoIR (docs/model.md#backbone-hrnet).

HRNet keeps four parallel branches at strides 4, 8, 16 and 32 with widths [W, 2W, 4W, 8W]. BoIR does not
use HRNet's classification head: it upsamples branches 1-3 bilinearly (``align_corners=False``) to the
stride-4 branch and concatenates all four, giving one map F with 15·W channels (480 for W32, 720 for W48).

We do not re-implement HRNet. :func:`timm.create_model` builds it (``features_only=True,
feature_location=''`` returns the raw branch outputs) and :class:`HRNetBackbone` adopts timm's
sub-modules under their own names. Those names are exactly the released ``backbone.*`` keys (checked
against ``official_state_dict.txt`` by the tests), so the name mapping between timm and the release is the
identity; :data:`TIMM_TO_RELEASE` records this in one place should a future timm rename something.
"""
from __future__ import annotations

from typing import Dict, List

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    "HRNetBackbone",
    "SUPPORTED_BACKBONES",
    "HRNET_MODULES",
    "TIMM_TO_RELEASE",
    "RELEASE_TO_TIMM",
    "IMAGENET_HEAD_PREFIXES",
    "concat_branches",
]

#: Backbones we accept: the paper's W32 / W48 and two small HRNets for CPU demos.
SUPPORTED_BACKBONES = ("hrnet_w32", "hrnet_w48", "hrnet_w18_small", "hrnet_w18_small_v2", "hrnet_w18")

#: timm's HRNet sub-modules that the all-branch backbone uses, in forward order. Everything else in
#: timm's model (``global_pool``, ``head_drop``, ``classifier``; ``incre_modules`` etc. in the
#: classification model) belongs to the ImageNet head and is not part of BoIR.
HRNET_MODULES = (
    "conv1", "bn1", "act1", "conv2", "bn2", "act2",
    "layer1", "transition1", "stage2", "transition2", "stage3", "transition3", "stage4",
)

#: Top-level prefix renames from timm's parameter names to the released ``backbone.*`` names (after the
#: ``backbone.`` prefix). timm and the release both inherit HRNet's original names, so this is the identity.
TIMM_TO_RELEASE: Dict[str, str] = {name: name for name in HRNET_MODULES}
RELEASE_TO_TIMM: Dict[str, str] = {v: k for k, v in TIMM_TO_RELEASE.items()}

#: Keys of ImageNet classification checkpoints (timm ``hrnet_w*`` and the official HRNet-Image-
#: Classification ``hrnetv2_w48_imagenet_pretrained.pth``) that belong to the classification head and are
#: dropped when the file fills a BoIR backbone.
IMAGENET_HEAD_PREFIXES = ("incre_modules.", "downsamp_modules.", "final_layer.", "classifier.", "fc.", "head.")


def concat_branches(branches: List[torch.Tensor]) -> torch.Tensor:
    """Upsample branches 1.. bilinearly (align_corners=False) to branch 0's size and concatenate them."""
    size = branches[0].shape[-2:]
    ups = [branches[0]] + [
        F.interpolate(b, size=size, mode="bilinear", align_corners=False) for b in branches[1:]
    ]
    return torch.cat(ups, dim=1)


class HRNetBackbone(nn.Module):
    """HRNet trunk (stem → layer1 → stages 2-4) returning the concatenated stride-4 map F.

    Args:
        name: a timm HRNet name, e.g. ``"hrnet_w32"`` (480 output channels), ``"hrnet_w48"`` (720) or
            ``"hrnet_w18_small"`` (240, for quick CPU demos).

    Attributes:
        branch_channels: channels of the four branches (e.g. [32, 64, 128, 256]).
        out_channels: their sum, C_b.
    """

    def __init__(self, name: str = "hrnet_w32"):
        super().__init__()
        if name not in SUPPORTED_BACKBONES:
            raise ValueError(f"backbone {name!r} is not supported; choose one of {list(SUPPORTED_BACKBONES)}")
        import timm  # local import: timm is slow to import

        net = timm.create_model(name, features_only=True, feature_location="", out_indices=(1, 2, 3, 4),
                                pretrained=False)
        self.name = name
        self.branch_channels: List[int] = list(net.feature_info.channels())
        self.out_channels: int = sum(self.branch_channels)
        for module_name in HRNET_MODULES:
            self.add_module(TIMM_TO_RELEASE[module_name], getattr(net, module_name))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Release initialisation (docs/model.md#backbone-hrnet): every conv weight ~ N(0, 0.001²),
        BN weight 1 and bias 0."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.001)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def branches(self, images: torch.Tensor) -> List[torch.Tensor]:
        """The four raw branch outputs at strides 4, 8, 16 and 32."""
        x = self.act1(self.bn1(self.conv1(images)))
        x = self.act2(self.bn2(self.conv2(x)))
        x = self.layer1(x)
        xs = [t(x) for t in self.transition1]
        ys = self.stage2(xs)
        # transition2/3 add one branch from the lowest-resolution output; existing branches pass through.
        xs = [ys[i] if isinstance(t, nn.Identity) else t(ys[-1]) for i, t in enumerate(self.transition2)]
        ys = self.stage3(xs)
        xs = [ys[i] if isinstance(t, nn.Identity) else t(ys[-1]) for i, t in enumerate(self.transition3)]
        return list(self.stage4(xs))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images [B, 3, H, W] → F [B, C_b, H/4, W/4]."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be [B, 3, H, W], got {tuple(images.shape)}")
        return concat_branches(self.branches(images))
