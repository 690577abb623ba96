"""Where a training run's backbone starts: ImageNet weights (docs/model.md#backbone-hrnet), a
transfer checkpoint, or nothing.

``model.pretrained`` takes one of

* ``timm`` (alias ``hub``): timm's ImageNet weights of the backbone (``hrnet_w32.ms_in1k``,
  ``hrnet_w48.ms_in1k``: the official HRNet classification weights, ported by timm), fetched once through
  the Hugging Face hub into its cache (``~/.cache/huggingface/hub``, or ``$HF_HUB_CACHE``) and read from
  there afterwards, offline too;
* a local file: the official ``hrnetv2_w32_imagenet_pretrained.pth`` / ``hrnetv2_w48_...`` of
  HRNet-Image-Classification, or a timm checkpoint (``hrnet_w32-36af842e.pth`` as the release used, a timm
  ``model.safetensors`` / ``pytorch_model.bin``, or a timm training checkpoint holding ``state_dict``).
  Both name the trunk's tensors as our ``backbone.*`` does (:data:`~boir_core.model.backbone.TIMM_TO_RELEASE`);
  the classification head is dropped; every backbone tensor must be there (the error names the missing ones);
* ``none``: from scratch, on purpose (the CPU demo).

:func:`initialise` is what :func:`~boir_core.model.build_model` calls for a training model. A finetune
(``train.transfer_from``, docs/training.md#transfer-to-crowdpose) loads the COCO checkpoint instead: its backbone
tensors would replace every ImageNet tensor, so the ImageNet weights are not read at all (the release loads
them and overwrites them).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch
import torch.nn as nn

from .checkpoints import CheckpointError, LoadReport, load_weights, read_checkpoint

__all__ = ["TIMM_WEIGHTS", "PretrainedUnavailable", "InitReport", "pretrained_source", "imagenet_state_dict",
           "load_imagenet", "initialise"]

#: timm's ImageNet weights for each backbone (the official Microsoft HRNet weights, "ms_in1k").
TIMM_WEIGHTS = {
    "hrnet_w32": "hrnet_w32.ms_in1k",
    "hrnet_w48": "hrnet_w48.ms_in1k",
    "hrnet_w18": "hrnet_w18.ms_in1k",
    "hrnet_w18_small": "hrnet_w18_small.ms_in1k",
    "hrnet_w18_small_v2": "hrnet_w18_small_v2.ms_in1k",
}
_OFFICIAL_FILE = {"hrnet_w32": "hrnetv2_w32_imagenet_pretrained.pth",
                  "hrnet_w48": "hrnetv2_w48_imagenet_pretrained.pth"}


class PretrainedUnavailable(CheckpointError):
    """``model.pretrained=timm`` but the weights are neither cached nor downloadable; says both ways out."""


@dataclass
class InitReport:
    """How a training model was initialised: ``source`` in words (printed by ``train`` and ``--dry-run``)
    and the :class:`~boir_core.model.LoadReport` of each file read (``imagenet`` and / or ``transfer``)."""

    source: str
    imagenet: Optional[LoadReport] = None
    transfer: Optional[LoadReport] = None
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [self.source]
        for rep in (self.imagenet, self.transfer):
            if rep is not None:
                lines += ["  " + line for line in rep.summary().splitlines()]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    __str__ = summary


def pretrained_source(value: Optional[str]) -> Optional[str]:
    """``model.pretrained`` normalised: None (from scratch), ``"timm"``, or a path string."""
    if value is None:
        return None
    text = str(value).strip()
    if text.lower() in ("", "none", "null", "false", "scratch"):
        return None
    if text.lower() in ("timm", "hub"):
        return "timm"
    return text


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _ways_out(backbone: str) -> str:
    tag = TIMM_WEIGHTS.get(backbone, backbone)
    official = _OFFICIAL_FILE.get(backbone, f"{backbone}_imagenet.pth")
    return (f"Either (1) set model.pretrained=/path/to/{official} (the official HRNet-Image-Classification "
            f"file) or a timm checkpoint of {backbone} (.pth / .safetensors), or (2) go online so timm "
            f"downloads {tag} once into the Hugging Face cache (unset HF_HUB_OFFLINE; the kit's Makefile sets "
            f"it), or pre-populate that cache: on a machine with internet run python -c \"import timm; "
            f"timm.create_model('{tag}', pretrained=True)\" and copy ~/.cache/huggingface/hub/"
            f"models--timm--{tag} to the same place here (or to $HF_HUB_CACHE). To train from scratch on "
            f"purpose: model.pretrained=none.")


def _timm_state_dict(backbone: str) -> tuple[dict[str, torch.Tensor], str]:
    import timm  # local import: timm is slow to import (seconds) and only a timm source needs it

    tag = TIMM_WEIGHTS.get(backbone)
    if tag is None:
        raise PretrainedUnavailable(f"model.pretrained=timm: no ImageNet weights known for backbone {backbone!r} "
                                    f"(known: {', '.join(TIMM_WEIGHTS)})")
    try:
        net = timm.create_model(tag, pretrained=True)
    except Exception as e:
        why = ("HF_HUB_OFFLINE is set and they are not in the local Hugging Face cache" if _offline()
               else "the download failed")
        first = str(e).splitlines()[0] if str(e) else ""
        raise PretrainedUnavailable(
            f"model.pretrained=timm: timm's ImageNet weights {tag} are unavailable: {why} "
            f"({type(e).__name__}: {first[:200]}). {_ways_out(backbone)}") from None
    return net.state_dict(), f"timm:{tag}"


def _file_state_dict(path: Path, backbone: str) -> tuple[dict[str, torch.Tensor], str]:
    if not path.is_file():
        raise CheckpointError(f"model.pretrained={path}: file not found. {_ways_out(backbone)}")
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file  # local: optional package, only .safetensors files need it
        except ImportError:  # pragma: no cover - safetensors comes with timm
            raise CheckpointError(f"{path}: reading .safetensors needs the safetensors package") from None
        try:
            return dict(load_file(str(path))), str(path)
        except Exception as e:
            raise CheckpointError(f"{path}: cannot be read as a safetensors file ({type(e).__name__}: {e})") from None
    return read_checkpoint(path), str(path)


def imagenet_state_dict(source: str, backbone: str) -> tuple[dict, str]:
    """The ImageNet checkpoint object named by ``source`` (``"timm"`` or a path) and its name for reports."""
    src = pretrained_source(source)
    if src is None:
        raise ValueError("no ImageNet source (model.pretrained is none)")
    if src == "timm":
        return _timm_state_dict(backbone)
    return _file_state_dict(Path(src).expanduser(), backbone)


def load_imagenet(model: nn.Module, source: str) -> LoadReport:
    """Fill ``model.backbone`` with ImageNet weights from ``source`` (``"timm"`` or a file), strictly: every
    backbone tensor must be in the file (missing ones are named), the classification head is dropped and
    reported. Returns the :class:`LoadReport`."""
    obj, name = imagenet_state_dict(source, model.backbone.name)
    return load_weights(model, obj, expect="imagenet", source_name=name)


def initialise(model: nn.Module, pretrained: Optional[str], transfer_from: Optional[str] = None) -> InitReport:
    """Load the starting weights of a training run into ``model`` (see the module docstring)."""
    if transfer_from:
        rep = load_weights(model, transfer_from, transfer=True, allow_missing_aux_heads=True)
        init = InitReport(source=f"transfer from {transfer_from} ({rep.kind}; keypoint-output tensors dropped)",
                          transfer=rep)
        if pretrained_source(pretrained) is not None:
            init.notes.append(f"model.pretrained={pretrained} not read: the transfer checkpoint replaces every "
                              f"backbone tensor")
        return init
    src = pretrained_source(pretrained)
    if src is None:
        return InitReport(source="none: the backbone starts from random weights (model.pretrained=none)")
    rep = load_imagenet(model, src)
    return InitReport(source=f"ImageNet: {rep.source} ({len(rep.loaded)} backbone tensors)", imagenet=rep)
