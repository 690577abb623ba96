"""boir_core.model — the networks (docs/model.md, docs/model.md#boir-vs-cid) and their weights.

* :class:`BoIR` — HRNet backbone, ASPP neck, center / BUK / emb / bbox heads, instance keypoint head;
* :class:`CID` — the baseline with the same API;
* :func:`build_model` — from a :class:`~boir_core.config.Config`;
* :func:`count_parameters`, :func:`parameter_table` — Table 5;
* :func:`load_weights`, :func:`save_checkpoint`, :func:`load_model`, :func:`export_released` — released,
  ImageNet and our own checkpoints, loaded strictly; :func:`check_weights` — the same checks, nothing loaded;
* :func:`read_checkpoint` — the one reader of every weights file, as data only (``weights_only=True``; a file
  that would need a full unpickling is an :class:`UnsafeCheckpointError`);
* :func:`initialise`, :func:`load_imagenet` — where a training run starts (``model.pretrained``:
  ``timm``, a file or none; ``train.transfer_from``), called by :func:`build_model`.
"""
from .backbone import HRNetBackbone
from .boir import BoIR
from .build import build_model
from .checkpoints import (
    CheckpointError,
    LoadReport,
    UnsafeCheckpointError,
    check_weights,
    load_weights,
    read_checkpoint,
)
from .cid import CID
from .heads import AUX_HEADS, MultiHead
from .instance_head import InstanceKeypointHead, relative_coordinate_maps, sample_instance_params
from .neck import ASPP
from .params import count_parameters, parameter_table
from .pretrained import InitReport, PretrainedUnavailable, initialise, load_imagenet
from .saving import export_released, load_model, save_checkpoint

__all__ = [
    "BoIR", "CID", "build_model", "HRNetBackbone", "ASPP", "MultiHead", "InstanceKeypointHead", "AUX_HEADS",
    "relative_coordinate_maps", "sample_instance_params", "count_parameters", "parameter_table",
    "CheckpointError", "UnsafeCheckpointError", "read_checkpoint", "LoadReport", "load_weights", "check_weights",
    "save_checkpoint", "load_model",
    "export_released", "InitReport", "PretrainedUnavailable", "initialise", "load_imagenet",
]
