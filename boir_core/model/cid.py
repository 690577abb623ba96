"""CID, the baseline BoIR builds on (Wang & Zhang, CVPR 2022; docs/model.md#boir-vs-cid), with BoIR's API.

CID has no neck and no auxiliary heads:

* ``iia`` ("instance information abstraction"): one 1×1 conv C_b → K+1 on the backbone map, giving K
  bottom-up keypoint heatmaps and the center heatmap as the **last** channel;
* ``gfd`` ("global feature decoupling"): the instance head. Like BoIR's (see
  :mod:`boir_core.model.instance_head`) but hidden width 32, no LayerNorm after the Linear layers, a
  **sigmoid** spatial mask instead of InstanceNorm, and no InstanceNorm after the fuse conv.

State-dict keys follow the released CID code (``backbone.*``, ``iia.keypoint_center_conv.*``,
``gfd.{conv_down, c_attn.atn, s_attn.atn, s_attn.conv, fuse_attn, heatmap_conv}.*``), so
:func:`boir_core.model.load_weights` reads released CID files without renaming.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from ..ops import PRIOR_BIAS
from .backbone import HRNetBackbone
from .instance_head import check_instances, relative_coordinate_maps, sample_instance_params

__all__ = ["CID", "CIDHeatmapHead", "GFDHead"]


class CIDHeatmapHead(nn.Module):
    """1×1 conv F → [K keypoint logits ∥ center logit] (released name ``iia``)."""

    def __init__(self, in_channels: int, num_keypoints: int):
        super().__init__()
        self.keypoint_center_conv = nn.Conv2d(in_channels, num_keypoints + 1, 1)
        nn.init.normal_(self.keypoint_center_conv.weight, std=0.001)
        nn.init.constant_(self.keypoint_center_conv.bias, PRIOR_BIAS)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.keypoint_center_conv(features)


class _LinearAttention(nn.Module):
    def __init__(self, in_channels: int, channels: int, spatial: bool):
        super().__init__()
        self.atn = nn.Linear(in_channels, channels)
        if spatial:
            self.conv = nn.Conv2d(3, 1, 5, padding=2)


class GFDHead(nn.Module):
    """CID's instance head (released name ``gfd``): F, p_i → K heatmap logits per person."""

    def __init__(self, in_channels: int, channels: int, num_keypoints: int):
        super().__init__()
        self.conv_down = nn.Conv2d(in_channels, channels, 1)
        self.c_attn = _LinearAttention(in_channels, channels, spatial=False)
        self.s_attn = _LinearAttention(in_channels, channels, spatial=True)
        self.fuse_attn = nn.Conv2d(2 * channels, channels, 1)
        self.heatmap_conv = nn.Conv2d(channels, num_keypoints, 1)
        # CID init: N(0, 0.001²) weights, zero biases, focal prior only on the output conv
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.normal_(m.weight, std=0.001)
                nn.init.zeros_(m.bias)
        nn.init.constant_(self.heatmap_conv.bias, PRIOR_BIAS)

    def attention_maps(self, features, instance_coord, instance_imgid, params=None) -> dict:
        g, params = self._prepare(features, instance_coord, instance_imgid, params)
        return {"channel": self.c_attn.atn(params), "spatial": self._spatial_mask(g, params, instance_coord)}

    def _prepare(self, features, instance_coord, instance_imgid, params):
        check_instances(features, instance_coord, instance_imgid)
        if params is None:
            params = sample_instance_params(features, instance_coord, instance_imgid)
        g = self.conv_down(features).index_select(0, instance_imgid)
        return g, params.to(g.dtype)

    def _spatial_mask(self, g, params, instance_coord):
        s = torch.einsum("nchw,nc->nhw", g, self.s_attn.atn(params)).unsqueeze(1)
        rel = relative_coordinate_maps(instance_coord, g.shape[2], g.shape[3], dtype=g.dtype)
        return torch.sigmoid(self.s_attn.conv(torch.cat((s, rel), dim=1)))

    def forward(self, features, instance_coord, instance_imgid, params=None) -> torch.Tensor:
        g, params = self._prepare(features, instance_coord, instance_imgid, params)
        zc = g * self.c_attn.atn(params)[:, :, None, None]
        zs = g * self._spatial_mask(g, params, instance_coord)
        return self.heatmap_conv(torch.relu(self.fuse_attn(torch.cat((zc, zs), dim=1))))


class CID(nn.Module):
    """CID with the same API as :class:`boir_core.model.BoIR`.

    ``forward_train`` returns ``features``, ``heatmap`` [B, K+1, H, W] (center last) and
    ``instance_heatmap`` [N, K, H, W], all logits. ``train_heads`` is accepted for symmetry with BoIR and
    changes nothing (CID has no training-only modules).
    """

    arch = "cid"

    def __init__(self, num_keypoints: int, backbone: str = "hrnet_w32", inst_channels: int = 32,
                 train_heads: bool = True):
        super().__init__()
        self.config: dict[str, Any] = dict(num_keypoints=num_keypoints, backbone=backbone,
                                           inst_channels=inst_channels, train_heads=train_heads)
        self.num_keypoints = num_keypoints
        self.backbone = HRNetBackbone(backbone)
        self.iia = CIDHeatmapHead(self.backbone.out_channels, num_keypoints)
        self.gfd = GFDHead(self.backbone.out_channels, inst_channels, num_keypoints)

    @property
    def heatmap_head(self) -> CIDHeatmapHead:
        return self.iia

    @property
    def kpt_head(self) -> GFDHead:
        return self.gfd

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.backbone(images)

    def center_logits(self, features: torch.Tensor) -> torch.Tensor:
        """The center channel (the last of the K+1) [B, 1, H, W]."""
        return self.iia(features)[:, -1:]

    def instance_heatmaps(self, features, instance_coord, instance_imgid, params=None) -> torch.Tensor:
        return self.gfd(features, instance_coord, instance_imgid, params)

    def forward_train(self, images, instance_coord, instance_imgid) -> dict[str, torch.Tensor]:
        feats = self.features(images)
        check_instances(feats, instance_coord, instance_imgid)
        return {"features": feats, "heatmap": self.iia(feats),
                "instance_heatmap": self.gfd(feats, instance_coord, instance_imgid)}

    def forward(self, images, instance_coord, instance_imgid) -> dict[str, torch.Tensor]:
        return self.forward_train(images, instance_coord, instance_imgid)

    @property
    def has_train_heads(self) -> bool:
        return False

