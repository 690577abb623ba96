"""The BoIR network: HRNet backbone, ASPP neck + dense heads, and the instance keypoint head (docs/model.md).

::

    images [B,3,S,S] ──HRNet──► F [B,C_b,S/4,S/4] ──ASPP──► N [B,256,..] ──► center [B,1]  (inference too)
                                │                                   ├──► buk    [B,K]  (training only)
                                │                                   ├──► emb    [B,D]  (training only)
                                │                                   └──► bbox   [B,4]  (training only)
                                └── F, p_i = F[:, y_i, x_i] ──kpt_head──► instance heatmaps [N,K,..]

Every output is a raw logit (or raw value for emb / bbox); :func:`boir_core.ops.sigmoid_clamp` turns
heatmap logits into probabilities in the losses and the decoder. State-dict keys equal the released ones
(``backbone.*``, ``multihead.neck.0.*``, ``multihead.{center,buk,emb,bbox}_head.head.{0,1}.*``,
``kpt_head.*``).
"""
from __future__ import annotations

from typing import Any, Literal, Optional, Sequence

import torch
import torch.nn as nn

from ..config import switch_value
from .backbone import HRNetBackbone
from .heads import MultiHead
from .instance_head import InstanceKeypointHead, check_instances

__all__ = ["BoIR"]


class BoIR(nn.Module):
    """Box-supervised instance representation network.

    Args:
        num_keypoints: K (17 COCO / OCHuman, 14 CrowdPose).
        backbone: timm HRNet name (``hrnet_w32``, ``hrnet_w48``, or ``hrnet_w18_small`` for CPU demos).
        inst_channels: hidden width of the instance head (64 for W32, 96 for W48).
        emb_dim: D, channels of the embedding head.
        train_heads: build the training-only heads (BUK, emb, bbox). ``False`` builds the inference model:
            backbone, neck, center head and instance head only.
        bbox_head: build the bbox head at all (``False``: Table 4 ablation).
        bbox_head_init: ``"paper"`` (default: only the output conv weight zeroed) or ``"release"``
            (every conv zeroed, as released — the head then never learns;
            docs/release_vs_paper.md#bbox-head-initialisation).
        neck_channels, neck_middle_channels, atrous_rates, head_channels: ASPP / head widths (docs/model.md#neck-aspp).
    """

    arch = "boir"

    def __init__(self, num_keypoints: int, backbone: str = "hrnet_w32", inst_channels: int = 64,
                 emb_dim: int = 128, train_heads: bool = True, bbox_head: bool = True,
                 bbox_head_init: Literal["paper", "release"] = "paper",
                 neck_channels: int = 256, neck_middle_channels: int = 128,
                 atrous_rates: Sequence[int] = (12, 24, 36), head_channels: int = 128):
        super().__init__()
        if num_keypoints < 1:
            raise ValueError(f"num_keypoints must be positive, got {num_keypoints}")
        bbox_head_init = switch_value("model.bbox_head_init", bbox_head_init, name="bbox_head_init")
        #: constructor arguments, enough to rebuild the network from a checkpoint (weights are loaded by
        #: :func:`~boir_core.model.build_model` / :func:`~boir_core.model.load_weights`, never here)
        self.config: dict[str, Any] = dict(
            num_keypoints=num_keypoints, backbone=backbone, inst_channels=inst_channels, emb_dim=emb_dim,
            train_heads=train_heads, bbox_head=bbox_head, bbox_head_init=bbox_head_init,
            neck_channels=neck_channels, neck_middle_channels=neck_middle_channels,
            atrous_rates=list(atrous_rates), head_channels=head_channels)
        self.num_keypoints = num_keypoints
        self.backbone = HRNetBackbone(backbone)
        cb = self.backbone.out_channels
        self.multihead = MultiHead(cb, num_keypoints, emb_dim=emb_dim, train_heads=train_heads,
                                   bbox_head=bbox_head, bbox_head_init=bbox_head_init,
                                   neck_channels=neck_channels, neck_middle_channels=neck_middle_channels,
                                   atrous_rates=atrous_rates, head_channels=head_channels)
        self.kpt_head = InstanceKeypointHead(cb, inst_channels, num_keypoints)

    # ---- the shared API (CONTRIBUTING.md "The networks") ---------------------------------------------
    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Backbone map F [B, C_b, H/4, W/4]."""
        return self.backbone(images)

    def center_logits(self, features: torch.Tensor) -> torch.Tensor:
        """Center heatmap logits [B, 1, H, W] (neck + center head)."""
        return self.multihead.center_head(self.multihead.neck[0](features))

    def instance_heatmaps(self, features: torch.Tensor, instance_coord: torch.Tensor,
                          instance_imgid: torch.Tensor, params: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Instance heatmap logits [N, K, H, W]; ``params`` defaults to F at the (y, x) coordinates."""
        return self.kpt_head(features, instance_coord, instance_imgid, params)

    def forward_train(self, images: torch.Tensor, instance_coord: torch.Tensor,
                      instance_imgid: torch.Tensor) -> dict[str, torch.Tensor]:
        """All training outputs: ``features``, ``center``, ``buk``, ``emb``, ``bbox`` (heads that exist) and
        ``instance_heatmap`` [N, K, H, W]; logits / raw values."""
        feats = self.features(images)
        check_instances(feats, instance_coord, instance_imgid)
        out = self.multihead(feats)
        out.pop("neck")
        out["features"] = feats
        out["instance_heatmap"] = self.instance_heatmaps(feats, instance_coord, instance_imgid)
        return out

    def forward(self, images: torch.Tensor, instance_coord: torch.Tensor,
                instance_imgid: torch.Tensor) -> dict[str, torch.Tensor]:
        """Same as :meth:`forward_train` (so DDP / hooks see one forward)."""
        return self.forward_train(images, instance_coord, instance_imgid)

    @property
    def has_train_heads(self) -> bool:
        return self.multihead.buk_head is not None
