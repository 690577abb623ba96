"""Build the network a :class:`~boir_core.config.Config` describes (the only place the model reads a Config)."""
from __future__ import annotations

import torch.nn as nn

from ..config import Config
from .boir import BoIR
from .cid import CID

__all__ = ["build_model"]


def build_model(cfg: Config, train: bool) -> nn.Module:
    """``cfg.model.arch`` = ``boir`` → :class:`BoIR`, ``cid`` → :class:`CID`, with K = ``cfg.num_keypoints``.

    ``train=True`` builds the training-only heads and loads ``cfg.model.pretrained`` (ImageNet weights:
    a file or ``"hub"``) into the backbone; ``train=False`` builds the inference model and loads nothing
    (the caller loads a checkpoint with :func:`boir_core.model.load_weights`). For CID,
    ``cfg.model.inst_channels`` is the GFD width (32 in the CID configs).
    """
    m = cfg.model
    pretrained = m.pretrained if train else None
    if m.arch == "boir":
        return BoIR(cfg.num_keypoints, backbone=m.backbone, inst_channels=m.inst_channels, emb_dim=m.emb_dim,
                    train_heads=train, bbox_head=m.bbox_head, bbox_head_init=m.bbox_head_init,
                    pretrained=pretrained, neck_channels=m.neck_channels,
                    neck_middle_channels=m.neck_middle_channels, atrous_rates=m.atrous_rates,
                    head_channels=m.head_channels)
    if m.arch == "cid":
        return CID(cfg.num_keypoints, backbone=m.backbone, inst_channels=m.inst_channels, train_heads=train,
                   pretrained=pretrained)
    raise ValueError(f"model.arch={m.arch!r} is not one of ['boir', 'cid']")
