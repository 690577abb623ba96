"""Saving a network in the kit's checkpoint format and rebuilding it from one; the released key layout for
sharing weights with the official code. Reading and strict loading are :mod:`boir_core.model.checkpoints`."""
from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path
from typing import Mapping, Optional, Union

import torch
import torch.nn as nn

from ..config import DEPRECATED_VALUES
from ..io import atomic_open
from .checkpoints import ARCHS, FORMAT_TAG, FORMAT_VERSION, CheckpointError, load_weights, read_checkpoint

__all__ = ["export_released", "save_checkpoint", "upgrade_model_config", "load_model"]


def export_released(model: nn.Module) -> "OrderedDict[str, torch.Tensor]":
    """The model's weights in the released key layout (a plain state_dict on the CPU), e.g. to share them
    with the official code. Contains the training-only heads only if the model built them."""
    if getattr(model, "arch", None) not in ARCHS:
        raise TypeError(f"export_released expects a BoIR or CID model, got {type(model).__name__}")
    return OrderedDict((k, v.detach().cpu().clone()) for k, v in model.state_dict().items())


def save_checkpoint(model: nn.Module, path: Union[str, os.PathLike], extra: Optional[dict] = None) -> Path:
    """Write ``model`` in our format, atomically (temp file in the same folder, then ``os.replace``).

    The file holds ``format``, ``version``, ``arch``, ``model_config`` (the constructor arguments, so
    :func:`load_model` can rebuild the network), ``state_dict`` and ``extra`` (plain Python values only,
    e.g. epoch or metrics). :func:`load_weights` reads it back exactly.
    """
    arch = getattr(model, "arch", None)
    if arch not in ARCHS:
        raise TypeError(f"save_checkpoint expects a BoIR or CID model, got {type(model).__name__}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT_TAG, "version": FORMAT_VERSION, "arch": arch, "model_config": dict(model.config),
        "state_dict": OrderedDict((k, v.detach().cpu()) for k, v in model.state_dict().items()),
        "extra": dict(extra or {}),
    }
    with atomic_open(path, "wb") as f:
        torch.save(payload, f)
    return path


def upgrade_model_config(cfg: dict) -> dict:
    """A stored ``model_config`` with an older kit's spelling of ``bbox_head_init`` (``working``) in the
    current word, silently: a record that cannot be rewritten (docs/release_vs_paper.md#switches)."""
    old = cfg.get("bbox_head_init")
    if isinstance(old, str):
        cfg["bbox_head_init"] = DEPRECATED_VALUES["model.bbox_head_init"].get(old, old)
    return cfg


def load_model(path: Union[str, os.PathLike], train_heads: Optional[bool] = None) -> nn.Module:
    """Rebuild a network saved by :func:`save_checkpoint` and load its weights.

    ``train_heads=False`` rebuilds the inference model from a training checkpoint (aux heads dropped).
    """
    obj = read_checkpoint(Path(path))
    if not (isinstance(obj, Mapping) and obj.get("format") == FORMAT_TAG):
        raise CheckpointError(f"{path}: not a BoIR Kit checkpoint (no format tag {FORMAT_TAG!r}); build the "
                              f"model yourself and call load_weights")
    cfg = upgrade_model_config(dict(obj["model_config"]))
    if train_heads is not None:
        cfg["train_heads"] = train_heads
    cls = ARCHS.get(obj.get("arch"))
    if cls is None:
        raise CheckpointError(f"{path}: unknown arch {obj.get('arch')!r}")
    model = cls(**cfg)
    load_weights(model, obj)
    return model
