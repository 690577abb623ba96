"""Loading and saving network weights: one call, :func:`load_weights`, for every kind of file.

What it accepts (recognised from the keys, not the file name):

========================  ===================================================================================
kind                      what it is
========================  ===================================================================================
``boir-release``          a released BoIR model: a plain state_dict with the official names (``backbone.*``,
                          ``multihead.*``, ``kpt_head.*``), COCO (K=17) or CrowdPose (K=14), with or
                          without the training-only heads
``boir-release-training`` the release's ``checkpoint.pth.tar``: a dict holding ``state_dict`` (with DDP's
                          ``module.`` prefix) and ``best_state_dict``; we take ``state_dict``
``cid-release``           a released CID model (``backbone.*``, ``iia.*``, ``gfd.*``)
``boir-kit``              our own file written by :func:`~boir_core.model.saving.save_checkpoint`
``imagenet``              ImageNet HRNet weights (timm ``hrnet_w32`` naming or the official HRNet
                          classification file), from a file or the state_dict that
                          :func:`~boir_core.model.load_imagenet` reads (timm's hub too). Only the
                          backbone is filled; classification-head keys (:data:`IMAGENET_HEAD_PREFIXES`)
                          are dropped
========================  ===================================================================================

Loading is **strict**, unlike the release's ``strict=False`` (docs/release_vs_paper.md#checkpoint-loading, which
silently loads nothing from a training checkpoint). Every missing, unexpected or mis-shaped tensor
is reported by name in a :class:`CheckpointError`. The only exceptions are documented, opt-in or
structural, and each one is listed in the returned :class:`LoadReport`:

* tensors of training-only heads (BUK, emb, bbox) that the model does not build (an inference model, or
  ``bbox_head=False``) are dropped: the model has no place for them by design;
* ``allow_missing_aux_heads=True`` lets a training model load an inference checkpoint; its BUK / emb / bbox
  heads keep their initial values;
* ``transfer=True`` (COCO → CrowdPose, docs/training.md#transfer-to-crowdpose) drops exactly the
  four keypoint-output tensors (:data:`TRANSFER_KEYS`), which then keep their initial values;
* ImageNet files leave everything but the backbone initialised, and may lack ``num_batches_tracked``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import torch
import torch.nn as nn

from .backbone import IMAGENET_HEAD_PREFIXES
from .boir import BoIR
from .cid import CID

__all__ = [
    "CheckpointError",
    "LoadReport",
    "load_weights",
    "check_weights",
    "ARCHS",
    "TRANSFER_KEYS",
    "AUX_HEAD_PREFIXES",
    "FORMAT_TAG",
]

#: Tag of our own checkpoint format.
FORMAT_TAG = "boir_kit.model"
FORMAT_VERSION = 1

#: The networks this module loads and saves, by their ``arch``. Their module names equal the released ones
#: (``backbone.*``, ``multihead.*``, ``kpt_head.*`` / ``iia.*``, ``gfd.*``), so released state_dicts load as
#: they are, with no renaming.
ARCHS: dict[str, type[nn.Module]] = {"boir": BoIR, "cid": CID}

#: Tensors that depend on K and are dropped when transferring between datasets
#: (docs/training.md#transfer-to-crowdpose). For CID the analogue: its K+1 heatmap conv and the GFD output conv.
TRANSFER_KEYS: dict[str, tuple[str, ...]] = {
    "boir": ("multihead.buk_head.head.1.weight", "multihead.buk_head.head.1.bias",
             "kpt_head.heatmap_conv.weight", "kpt_head.heatmap_conv.bias"),
    "cid": ("iia.keypoint_center_conv.weight", "iia.keypoint_center_conv.bias",
            "gfd.heatmap_conv.weight", "gfd.heatmap_conv.bias"),
}

#: Training-only heads of BoIR (absent from inference models and inference checkpoints).
AUX_HEAD_PREFIXES = ("multihead.buk_head.", "multihead.emb_head.", "multihead.bbox_head.")

_CONTAINER_KEYS = ("state_dict", "best_state_dict", "model")  # looked for in this order


class CheckpointError(RuntimeError):
    """A checkpoint cannot be read or does not fit the model; the message names the file and the keys.

    When the tensors do not fit, the full lists are also attributes: ``missing``, ``unexpected`` and
    ``mismatched`` (the message shows the first 40 of each).
    """

    def __init__(self, message: str, *, missing=(), unexpected=(), mismatched=()):
        super().__init__(message)
        self.missing = list(missing)
        self.unexpected = list(unexpected)
        self.mismatched = list(mismatched)


@dataclass
class LoadReport:
    """What :func:`load_weights` did.

    Attributes:
        source: the file (or ``"<state_dict>"`` / ``"hub:<name>"``).
        kind: ``boir-release``, ``boir-release-training``, ``cid-release``, ``boir-kit`` or ``imagenet``.
        loaded: model keys filled from the checkpoint.
        left_initialised: model keys that keep their initial values, with the reason.
        dropped: checkpoint keys not used, with the reason.
    """

    source: str
    kind: str
    loaded: list[str] = field(default_factory=list)
    left_initialised: dict[str, str] = field(default_factory=dict)
    dropped: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"{self.source}: {self.kind}, loaded {len(self.loaded)} tensors"]
        for title, d in (("left initialised", self.left_initialised), ("dropped", self.dropped)):
            by_reason: dict[str, list[str]] = {}
            for k, why in d.items():
                by_reason.setdefault(why, []).append(k)
            for why, keys in by_reason.items():
                shown = ", ".join(keys[:4]) + (f", ... ({len(keys)} in all)" if len(keys) > 4 else "")
                lines.append(f"  {title} ({why}): {shown}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    __str__ = summary


# ---- reading ------------------------------------------------------------------------------------------

def _read_file(path: Path, mmap: bool = False) -> Any:
    """``torch.load`` of a weights-only file; ``mmap``: map it instead of reading it (a check that looks at
    names and shapes only; an old-format file that cannot be mapped is read)."""
    if not path.is_file():
        raise CheckpointError(f"checkpoint file not found: {path}")
    try:
        if mmap:
            try:
                return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError:  # not the zip format: no mapping possible
                pass
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt, truncated, not a torch file, or holds arbitrary objects
        raise CheckpointError(f"{path}: cannot be read as a PyTorch checkpoint ({type(e).__name__}: "
                              f"{str(e).splitlines()[0] if str(e) else ''})") from None


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def _unwrap(obj: Any, source: str) -> tuple[dict[str, torch.Tensor], Optional[str], dict]:
    """→ (state_dict, container kind or None, our-format header)."""
    if isinstance(obj, Mapping) and obj.get("format") == FORMAT_TAG:
        sd = obj.get("state_dict")
        if not _is_state_dict(sd):
            raise CheckpointError(f"{source}: BoIR Kit checkpoint without a valid 'state_dict'")
        return dict(sd), "boir-kit", dict(obj)
    if _is_state_dict(obj):
        return dict(obj), None, {}
    if isinstance(obj, Mapping):
        for key in _CONTAINER_KEYS:
            if _is_state_dict(obj.get(key)):
                return dict(obj[key]), "training", {"container_key": key}
        bad = next((k for k, v in obj.items() if not isinstance(v, torch.Tensor)), None)
        raise CheckpointError(f"{source}: not a state_dict (key {bad!r} holds a {type(obj.get(bad)).__name__}) "
                              f"and no {' / '.join(_CONTAINER_KEYS)} entry holding one")
    raise CheckpointError(f"{source}: holds a {type(obj).__name__}, not a state_dict")


def _strip_module(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in sd.items()}


def _layout(sd: Mapping[str, torch.Tensor]) -> Optional[str]:
    keys = list(sd)
    if any(k.startswith(("multihead.", "kpt_head.")) for k in keys):
        return "boir"
    if any(k.startswith(("iia.", "gfd.")) for k in keys):
        return "cid"
    if "conv1.weight" in sd and any(k.startswith("stage4.") for k in keys) and \
            not any(k.startswith("backbone.") for k in keys):
        return "imagenet"
    return None


def _fmt(keys, n: int = 40) -> str:
    keys = list(keys)
    return ", ".join(keys[:n]) + (f", ... ({len(keys)} in all)" if len(keys) > n else "")


def _keypoints(sd: Mapping[str, torch.Tensor], arch: str) -> Optional[int]:
    """K of a state_dict in our names, read from its keypoint-output conv (None: not there)."""
    key = {"boir": "kpt_head.heatmap_conv.bias", "cid": "gfd.heatmap_conv.bias"}[arch]
    return int(sd[key].shape[0]) if key in sd else None


# ---- loading ------------------------------------------------------------------------------------------

def _match(model: nn.Module, source: Union[str, os.PathLike, Mapping[str, Any]], *, transfer: bool,
           allow_missing_aux_heads: bool, expect: Optional[str], source_name: Optional[str], caller: str,
           mmap: bool = False) -> tuple[dict[str, torch.Tensor], LoadReport, dict[str, str]]:
    """Read ``source`` and match its tensors to ``model``'s, by name and shape, without loading anything.

    Returns (the state_dict in our names, the report so far, model keys allowed to stay initialised); an
    ImageNet file comes back unmatched (kind ``imagenet``). Raises :class:`CheckpointError` as
    :func:`load_weights` documents.
    """
    arch = getattr(model, "arch", None)
    if arch not in ARCHS:
        raise TypeError(f"{caller} expects a BoIR or CID model, got {type(model).__name__}")

    if isinstance(source, Mapping):
        name, obj = source_name or "<state_dict>", source
    elif isinstance(source, str) and source in ("hub", "timm"):
        raise CheckpointError(f"load_weights({source!r}): timm's ImageNet weights are loaded by "
                              f"boir_core.model.load_imagenet(model, {source!r}) (or model.pretrained={source} "
                              f"through build_model)")
    else:
        name = str(source)
        obj = _read_file(Path(source), mmap=mmap)

    sd, container, header = _unwrap(obj, name)
    sd = _strip_module(sd)
    layout = _layout(sd)
    if layout is None:
        raise CheckpointError(f"{name}: matches no known layout (BoIR release, CID release, BoIR Kit, ImageNet "
                              f"HRNet); its first keys are: {_fmt(sd, 6)}")
    if expect is not None and layout != expect:
        raise CheckpointError(f"{name}: expected a {expect} checkpoint, found a {layout} one")
    if layout == "imagenet":
        return sd, LoadReport(source=name, kind="imagenet"), {}
    if layout != arch:
        raise CheckpointError(f"{name}: holds a {layout.upper()} checkpoint but the model is "
                              f"{type(model).__name__} ({arch})")
    if container == "boir-kit":
        kind = "boir-kit"
    elif container == "training":
        kind = f"{arch}-release-training"
    else:
        kind = f"{arch}-release"
    report = LoadReport(source=name, kind=kind)
    if container == "training":
        report.notes.append(f"took the '{header['container_key']}' entry of a training checkpoint")

    target = model.state_dict()
    allowed_missing: dict[str, str] = {}

    if transfer:
        for k in TRANSFER_KEYS[arch]:
            if k in sd:
                report.dropped[k] = "transfer: keypoint-output tensor, K differs between datasets"
                del sd[k]
            if k in target:
                allowed_missing[k] = "transfer: keypoint-output tensor, trained from scratch"
        report.notes.append(f"transfer: dropped the keypoint-output tensors {', '.join(TRANSFER_KEYS[arch])}")

    for k in list(sd):  # tensors of training-only heads this model does not build
        if k.startswith(AUX_HEAD_PREFIXES) and k not in target:
            head = k.split(".")[1]
            if not any(t.startswith(f"multihead.{head}.") for t in target):
                report.dropped[k] = f"{head} is training-only and not built in this model"
                del sd[k]
    if allow_missing_aux_heads:
        for k in target:
            if k.startswith(AUX_HEAD_PREFIXES) and k not in sd:
                allowed_missing[k] = "training-only head absent from the checkpoint (allow_missing_aux_heads)"

    unexpected = [k for k in sd if k not in target]
    missing = [k for k in target if k not in sd and k not in allowed_missing]
    shapes = [f"{k}: file {tuple(sd[k].shape)} vs model {tuple(target[k].shape)}"
              for k in sd if k in target and sd[k].shape != target[k].shape]
    if unexpected or missing or shapes:
        parts = [f"{name} ({kind}) does not fit {type(model).__name__}({model.config})"]
        if missing:
            aux = all(k.startswith(AUX_HEAD_PREFIXES) for k in missing)
            parts.append(f"missing {len(missing)} tensors: {_fmt(missing)}" + (
                " (an inference checkpoint? pass allow_missing_aux_heads=True to keep these heads initialised)"
                if aux else ""))
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} tensors: {_fmt(unexpected)}")
        if shapes:
            k_file = _keypoints(sd, arch)
            k_model = _keypoints(target, arch)
            hint = ""
            if k_file is not None and k_model is not None and k_file != k_model:
                hint = (f" (the file has K={k_file} keypoints, the model K={k_model}: weights of another "
                        f"data set; a finetune passes transfer=True)")
            parts.append(f"{len(shapes)} shape mismatches: {_fmt(shapes)}{hint}")
        raise CheckpointError("\n  ".join(parts), missing=missing, unexpected=unexpected, mismatched=shapes)
    return sd, report, allowed_missing


def load_weights(model: nn.Module, source: Union[str, os.PathLike, Mapping[str, Any]], *,
                 transfer: bool = False, allow_missing_aux_heads: bool = False,
                 expect: Optional[str] = None, source_name: Optional[str] = None) -> LoadReport:
    """Load weights into a :class:`~boir_core.model.BoIR` or :class:`~boir_core.model.CID` model, strictly.

    Args:
        model: the network to fill (its tensors are overwritten in place).
        source: a file path or an in-memory state_dict / checkpoint dict. (timm's ImageNet weights are read
            by :func:`boir_core.model.load_imagenet`, which hands them to this function.)
        transfer: drop the four keypoint-output tensors (:data:`TRANSFER_KEYS`) and keep their initial
            values: fine-tuning a COCO (K=17) model on CrowdPose (K=14), docs/training.md#transfer-to-crowdpose.
        allow_missing_aux_heads: let a training model load a checkpoint without the BUK / emb / bbox
            heads (they stay initialised; the report lists them).
        expect: if given (e.g. ``"imagenet"``), the file must be of that layout (``boir``, ``cid``,
            ``imagenet``).
        source_name: how reports and errors name an in-memory ``source`` (default ``"<state_dict>"``).

    Returns:
        a :class:`LoadReport`.

    Raises:
        CheckpointError: unreadable file, unknown layout, or any missing / unexpected / mis-shaped tensor.
    """
    sd, report, allowed_missing = _match(model, source, transfer=transfer,
                                         allow_missing_aux_heads=allow_missing_aux_heads, expect=expect,
                                         source_name=source_name, caller="load_weights")
    if report.kind == "imagenet":
        return _load_imagenet(model, sd, report.source)
    target = model.state_dict()
    result = model.load_state_dict(sd, strict=False)
    # (BatchNorm fills an absent num_batches_tracked itself, so it may not be reported as missing)
    assert not result.unexpected_keys and set(result.missing_keys) <= set(allowed_missing), result
    report.loaded = list(sd)
    report.left_initialised = {k: allowed_missing[k] for k in target if k in allowed_missing}
    return report


def check_weights(model: nn.Module, source: Union[str, os.PathLike, Mapping[str, Any]], *,
                  transfer: bool = False, allow_missing_aux_heads: bool = False,
                  source_name: Optional[str] = None) -> LoadReport:
    """Would ``source`` load into ``model``? The same strict checks as :func:`load_weights` (layout,
    architecture, every tensor's name and shape), nothing loaded.

    ``model`` may live on the ``meta`` device (shapes only: a W48 check allocates no weights) and a file is
    memory-mapped, not read, so a pre-flight over many released files costs little. ImageNet backbone files
    are refused: they hold no heads to evaluate. Raises :class:`CheckpointError` naming the file and the
    keys; returns the :class:`LoadReport` the load would give (``loaded`` = the tensors it would fill).
    """
    sd, report, allowed_missing = _match(model, source, transfer=transfer,
                                         allow_missing_aux_heads=allow_missing_aux_heads, expect=None,
                                         source_name=source_name, caller="check_weights", mmap=True)
    if report.kind == "imagenet":
        raise CheckpointError(f"{report.source}: ImageNet backbone weights (no neck, no heads), not a "
                              f"{model.arch.upper()} checkpoint to evaluate")
    report.loaded = list(sd)
    report.left_initialised = dict(allowed_missing)
    return report


def _load_imagenet(model: nn.Module, sd: dict[str, torch.Tensor], name: str) -> LoadReport:
    """Fill ``model.backbone`` from ImageNet HRNet classification weights (head keys dropped)."""
    report = LoadReport(source=name, kind="imagenet")
    target = model.backbone.state_dict()
    body = {}
    for k, v in sd.items():
        if k.startswith(IMAGENET_HEAD_PREFIXES):
            report.dropped[k] = "ImageNet classification head (not part of the all-branch backbone)"
        else:
            body[k] = v
    unexpected = [k for k in body if k not in target]
    missing = [k for k in target if k not in body and not k.endswith("num_batches_tracked")]
    shapes = [f"{k}: file {tuple(body[k].shape)} vs model {tuple(target[k].shape)}"
              for k in body if k in target and body[k].shape != target[k].shape]
    if unexpected or missing or shapes:
        parts = [f"{name} (ImageNet HRNet) does not fit the {model.backbone.name} backbone"]
        if missing:
            parts.append(f"missing {len(missing)} tensors: {_fmt(missing)}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} tensors: {_fmt(unexpected)}")
        if shapes:
            parts.append(f"{len(shapes)} shape mismatches (another HRNet width?): {_fmt(shapes)}")
        raise CheckpointError("\n  ".join(parts), missing=missing, unexpected=unexpected, mismatched=shapes)
    model.backbone.load_state_dict(body, strict=False)
    report.loaded = ["backbone." + k for k in body]
    for k in model.state_dict():
        if not k.startswith("backbone."):
            report.left_initialised[k] = "not in ImageNet weights"
        elif k[len("backbone."):] not in body:
            report.left_initialised[k] = "num_batches_tracked absent from the file"
    report.notes.append(f"filled {len(body)} of {len(target)} backbone tensors; dropped "
                        f"{len(report.dropped)} classification-head tensors "
                        f"(prefixes {', '.join(IMAGENET_HEAD_PREFIXES)})")
    return report
