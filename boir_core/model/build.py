"""Build the network a :class:`~boir_core.config.Config` describes (the only place the model reads a Config)."""
from __future__ import annotations

from typing import Optional

import torch.nn as nn

from ..config import Config
from ..data.custom import profile_for
from .boir import BoIR
from .cid import CID
from .pretrained import initialise as _initialise

__all__ = ["build_model"]


def build_model(cfg: Config, train: bool, *, initialise: Optional[bool] = None) -> nn.Module:
    """``cfg.model.arch`` = ``boir`` → :class:`BoIR`, ``cid`` → :class:`CID`, with K = the data set's
    (:func:`boir_core.data.profile_for`: the registry's, or a custom data set's annotation file).

    ``train=True`` builds the training-only heads; ``train=False`` builds the inference model (the caller
    loads a checkpoint with :func:`boir_core.model.load_weights`). For CID, ``cfg.model.inst_channels`` is
    the GFD width (32 in the CID configs).

    ``initialise`` (default: ``train``) loads the starting weights of a training run
    (:func:`boir_core.model.pretrained.initialise`): ``train.transfer_from`` when set (a finetune), else the
    ImageNet weights of ``model.pretrained`` (``timm``, a file, or none). ``initialise=False`` leaves the
    random initialisation (parameter counting, a model about to load a checkpoint). The model gets
    ``init_report`` (an :class:`~boir_core.model.pretrained.InitReport` or None) and ``pretrained_report``
    (the ImageNet :class:`~boir_core.model.LoadReport` or None).
    """
    m = cfg.model
    k = profile_for(cfg).num_keypoints
    if m.arch == "boir":
        model: nn.Module = BoIR(k, backbone=m.backbone, inst_channels=m.inst_channels,
                                emb_dim=m.emb_dim, train_heads=train, bbox_head=m.bbox_head,
                                bbox_head_init=m.bbox_head_init, neck_channels=m.neck_channels,
                                neck_middle_channels=m.neck_middle_channels, atrous_rates=m.atrous_rates,
                                head_channels=m.head_channels)
    elif m.arch == "cid":
        model = CID(k, backbone=m.backbone, inst_channels=m.inst_channels, train_heads=train)
    else:
        raise ValueError(f"model.arch={m.arch!r} is not one of ['boir', 'cid']")
    model.init_report = None
    model.pretrained_report = None
    if train if initialise is None else initialise:
        model.init_report = _initialise(model, m.pretrained, cfg.train.transfer_from)
        model.pretrained_report = model.init_report.imagenet
    return model
