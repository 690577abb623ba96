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
``boir-kit``              our own file written by :func:`~boir_core.model.saving.save_checkpoint`, or the
                          weights (``model_state``) of our training state ``checkpoints/last.pt``
                          (:data:`TRAIN_STATE_FORMAT`)
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

import io
import os
import pickle
import pickletools
import shlex
import warnings
import zipfile
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
    "UnsafeCheckpointError",
    "read_checkpoint",
    "LoadReport",
    "load_weights",
    "check_weights",
    "ARCHS",
    "TRANSFER_KEYS",
    "AUX_HEAD_PREFIXES",
    "FORMAT_TAG",
    "TRAIN_STATE_FORMAT",
    "saved_config",
]

#: Tag of our own checkpoint format.
FORMAT_TAG = "boir_kit.model"
FORMAT_VERSION = 1
#: Tag of our training state (``checkpoints/last.pt``, :mod:`boir_core.engine.training.checkpointing`): its weights are
#: its ``model_state``, its training config its ``config``.
TRAIN_STATE_FORMAT = "boir-kit-train-state/2"

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


class UnsafeCheckpointError(CheckpointError):
    """A file that only a full unpickling could read (it holds Python objects, not only tensors and plain
    values), refused without unpickling it. ``path``: the file; ``needs``: the Python objects it names;
    ``what``: what the file is, when the caller knows (default: from ``needs``); ``in_place``: the conversion
    the message names rewrites the file itself (a run's training state), else writes ``<stem>.safe.pt``."""

    def __init__(self, path: Union[str, os.PathLike], needs: list[str], *, what: Optional[str] = None,
                 in_place: bool = False):
        self.path = Path(path)
        self.needs = list(needs)
        shown = ", ".join(self.needs[:4]) + (f", ... ({len(self.needs)} in all)" if len(self.needs) > 4 else "")
        if what is None and any(n.startswith("numpy") for n in self.needs):
            what = ("numpy arrays: e.g. a training state written by an older BoIR Kit, which stored numpy's random "
                    "state this way")
        quoted = shlex.quote(str(self.path))
        same = "python -m boir_core convert-checkpoint is the same"
        how = (f"convert it once, in place: boir convert-checkpoint --trust {quoted} -o {quoted} ({same}), then run "
               f"again" if in_place else
               f"convert it once: boir convert-checkpoint --trust {quoted} (writes {self.path.stem}.safe.pt beside "
               f"it, -o to choose; {same}), and use the converted file")
        super().__init__(
            f"{self.path}: refused: the file holds Python objects ({shown}{'; ' + what if what else ''}), not "
            f"only tensors and plain values. Rebuilding them needs a full unpickling, which runs any code the file "
            f"carries, so BoIR Kit reads weights as data only and did not load it. If you trust where the file "
            f"came from, {how}.")


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

def read_checkpoint(path: Union[str, os.PathLike], mmap: bool = False) -> Any:
    """Read a weights or training-state file **as data**: ``torch.load(..., weights_only=True)``, the one reader
    of every checkpoint the kit opens (docs/model.md#loading-is-data-never-code).

    Such a file may hold tensors, numbers, strings, ``None`` and lists / tuples / dicts of them, nothing else:
    a file that needs Python objects rebuilt (a pickled class, a numpy array, a payload that would run code)
    is refused with :class:`UnsafeCheckpointError`, before any of it is executed, naming the file and how to
    convert a trusted one (``boir convert-checkpoint --trust FILE``). ``mmap``: map the file instead of reading
    it (a check that looks at names and shapes only; an old-format file that cannot be mapped is read).
    Any other unreadable file (missing, corrupt, truncated, not a PyTorch file) is a :class:`CheckpointError`
    naming it.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file not found: {path}")
    try:
        with warnings.catch_warnings():  # torch's note on a bare pickle's protocol: the refusal below says more
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            if mmap:
                try:
                    return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
                except RuntimeError:  # not the zip format: no mapping possible
                    pass
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt, truncated, not a torch file, or holds arbitrary objects
        if isinstance(e, pickle.UnpicklingError):
            needs = pickled_objects(path)
            if needs:
                raise UnsafeCheckpointError(path, needs) from None
        raise CheckpointError(f"{path}: cannot be read as a PyTorch checkpoint: corrupt, truncated or not "
                              f"written by torch.save ({type(e).__name__}: {_short_reason(e)})") from None



def _short_reason(e: BaseException) -> str:
    """The line of torch's message that says what is wrong (not its advice to load with weights_only=False)."""
    advice = ("weights only load failed", "pytorch 2.6", "re-running", "please file an issue", "check the "
              "documentation", "do those steps only", "(1) ", "(2) ", "weightsunpickler error:")
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    useful = [ln for ln in lines if not any(a in ln.lower() for a in advice)]
    return (useful or lines or [""])[0][:200]


_STRING_OPS = {"UNICODE", "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "STRING", "BINSTRING",
               "SHORT_BINSTRING"}
_GET_OPS = {"GET", "BINGET", "LONG_BINGET"}
_PUT_OPS = {"PUT", "BINPUT", "LONG_BINPUT"}


def _globals_of_pickle(f: Any, found: list[str]) -> None:
    """Add to ``found`` the ``module.name`` of every object one pickle in ``f`` would import, read from its
    opcodes (``pickletools.genops`` parses; nothing is imported or run). Raises on a stream that is no pickle."""
    memo: dict[int, Any] = {}
    recent: list[Any] = []  # the values of the last pushes that STACK_GLOBAL may pop (strings only matter)
    for op, arg, _ in pickletools.genops(f):
        name = op.name
        if name in ("GLOBAL", "INST"):
            found.append(str(arg).replace(" ", "."))
        elif name == "STACK_GLOBAL":
            found.append(".".join(str(x) for x in recent[-2:]) if len(recent) >= 2 and
                         all(isinstance(x, str) for x in recent[-2:]) else "<a pickled object>")
        if name in _STRING_OPS:
            recent.append(arg)
        elif name in _GET_OPS:
            recent.append(memo.get(arg))
        elif name == "MEMOIZE":
            memo[len(memo)] = recent[-1] if recent else None
        elif name in _PUT_OPS:
            memo[arg] = recent[-1] if recent else None
        elif name not in ("FRAME", "PROTO"):
            recent.append(None)
        if name == "STOP":
            return


def _allowed_globals() -> set[str]:
    """The globals torch's weights-only reader accepts (only to leave them out of a refusal's message)."""
    try:
        from torch import _weights_only_unpickler as wo  # private: fall back to a prefix rule if it moves

        return set(wo._get_allowed_globals())
    except Exception:  # pragma: no cover - depends on the torch version
        return set()


def pickled_objects(path: Union[str, os.PathLike]) -> list[str]:
    """The Python objects (``module.name``) a pickled file would import beyond tensors and plain values, found
    by reading its opcodes without executing any; empty when the file is no readable pickle (corrupt, not a
    torch file) or names nothing beyond what a weights-only load accepts. Looks into torch's zip format
    (``*/data.pkl``), its legacy format (a few pickles in a row) and a bare pickle."""
    found: list[str] = []
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                pkl = next((n for n in z.namelist() if n == "data.pkl" or n.endswith("/data.pkl")), None)
                if pkl is None:
                    return []
                streams, count = io.BytesIO(z.read(pkl)), 1
        else:
            streams, count = open(path, "rb"), 4  # legacy: magic number, protocol, sys info, the object
        with streams as f:
            for _ in range(count):
                _globals_of_pickle(f, found)
    except Exception:  # the end of the pickles, or not a pickle at all: keep what was found
        pass
    allowed = _allowed_globals()
    if allowed:
        return [n for n in dict.fromkeys(found) if n not in allowed]
    return [n for n in dict.fromkeys(found) if not n.startswith(("torch.", "collections.OrderedDict"))]


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def _unwrap(obj: Any, source: str) -> tuple[dict[str, torch.Tensor], Optional[str], dict]:
    """→ (state_dict in our names, container kind or None, our-format header).

    The one place where a weights file's wrappers are recognised (``load_weights``, ``check_weights`` and the
    engine's inference loading all read files through it): our format (:data:`FORMAT_TAG`), our training
    state (:data:`TRAIN_STATE_FORMAT`, its ``model_state``), a training container (``state_dict`` /
    ``best_state_dict`` / ``model``), and DDP's ``module.`` prefix on the keys.
    """
    sd, container, header = _peel(obj, source)
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in sd.items()}, container, header


def _peel(obj: Any, source: str) -> tuple[dict[str, torch.Tensor], Optional[str], dict]:
    if isinstance(obj, Mapping) and obj.get("format") == FORMAT_TAG:
        sd = obj.get("state_dict")
        if not _is_state_dict(sd):
            raise CheckpointError(f"{source}: BoIR Kit checkpoint without a valid 'state_dict'")
        return dict(sd), "boir-kit", dict(obj)
    if isinstance(obj, Mapping) and obj.get("format") == TRAIN_STATE_FORMAT:
        sd = obj.get("model_state")
        if not _is_state_dict(sd):
            raise CheckpointError(f"{source}: BoIR Kit training state without a valid 'model_state'")
        return dict(sd), "boir-kit-train-state", {}
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


def saved_config(obj: Any) -> Optional[dict]:
    """The training config a weights file carries, as a dict (None: it carries none): our training state's
    ``config``, or the ``extra["config"]`` of our format (``train``'s ``final.pt``)."""
    if not isinstance(obj, Mapping):
        return None
    if obj.get("format") == TRAIN_STATE_FORMAT:
        cfg = obj.get("config")
    else:
        extra = obj.get("extra")
        cfg = extra.get("config") if isinstance(extra, Mapping) else None
    return cfg if isinstance(cfg, dict) else None


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

def _arch_of(model: nn.Module, caller: str) -> str:
    """``model``'s architecture (``boir`` / ``cid``); a TypeError naming ``caller`` for any other object."""
    arch = getattr(model, "arch", None)
    if arch not in ARCHS:
        raise TypeError(f"{caller} expects a BoIR or CID model, got {type(model).__name__}")
    return arch


def _match(model: nn.Module, name: str, obj: Any, *, transfer: bool, allow_missing_aux_heads: bool,
           expect: Optional[str]) -> tuple[dict[str, torch.Tensor], LoadReport, dict[str, str]]:
    """Match the tensors of ``obj`` (read from the source ``name``, :func:`_read_source`) to ``model``'s, by name
    and shape, without loading anything.

    Returns (the state_dict in our names, the report so far, model keys allowed to stay initialised); an
    ImageNet file comes back unmatched (kind ``imagenet``). Raises :class:`CheckpointError` as
    :func:`load_weights` documents.
    """
    arch = model.arch
    sd, container, header = _unwrap(obj, name)
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
    report = _report_of(name, arch, container, header)
    target = model.state_dict()
    allowed_missing = _drop_and_allow(sd, target, arch, report, transfer, allow_missing_aux_heads)
    _check_fit(model, name, report.kind, sd, target, allowed_missing)
    return sd, report, allowed_missing


def _read_source(source, source_name: Optional[str], mmap: bool) -> tuple[str, Any]:
    """(the name errors use, the object read as data) of a state dict or a file."""
    if isinstance(source, Mapping):
        return source_name or "<state_dict>", source
    if isinstance(source, str) and source in ("hub", "timm"):
        raise CheckpointError(f"load_weights({source!r}): timm's ImageNet weights are loaded by "
                              f"boir_core.model.load_imagenet(model, {source!r}) (or model.pretrained={source} "
                              f"through build_model)")
    return str(source), read_checkpoint(Path(source), mmap=mmap)


def _report_of(name: str, arch: str, container: str, header: Mapping[str, Any]) -> LoadReport:
    """The load report of a file of ``arch`` in ``container`` (what :func:`_unwrap` recognised)."""
    if container in ("boir-kit", "boir-kit-train-state"):
        kind = "boir-kit"
    elif container == "training":
        kind = f"{arch}-release-training"
    else:
        kind = f"{arch}-release"
    report = LoadReport(source=name, kind=kind)
    if container == "training":
        report.notes.append(f"took the '{header['container_key']}' entry of a training checkpoint")
    elif container == "boir-kit-train-state":
        report.notes.append("took the 'model_state' of a BoIR Kit training state")
    return report


def _drop_and_allow(sd: dict[str, torch.Tensor], target: Mapping[str, torch.Tensor], arch: str, report: LoadReport,
                    transfer: bool, allow_missing_aux_heads: bool) -> dict[str, str]:
    """Drop from ``sd`` what this model does not take (a transfer's keypoint outputs, training-only heads it
    does not build), noting each in ``report``; returns the model keys allowed to stay initialised."""
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
    return allowed_missing


def _check_fit(model: nn.Module, name: str, kind: str, sd: Mapping[str, torch.Tensor],
               target: Mapping[str, torch.Tensor], allowed_missing: Mapping[str, str]) -> None:
    """:class:`CheckpointError` naming every missing, unexpected and mis-shaped tensor (and another K)."""
    arch = model.arch
    unexpected = [k for k in sd if k not in target]
    missing = [k for k in target if k not in sd and k not in allowed_missing]
    shapes = [f"{k}: file {tuple(sd[k].shape)} vs model {tuple(target[k].shape)}"
              for k in sd if k in target and sd[k].shape != target[k].shape]
    if not (unexpected or missing or shapes):
        return
    parts = [f"{name} ({kind}) does not fit {type(model).__name__}({model.config})"]
    if missing:
        aux = all(k.startswith(AUX_HEAD_PREFIXES) for k in missing)
        parts.append(f"missing {len(missing)} tensors: {_fmt(missing)}" + (
            " (an inference checkpoint? pass allow_missing_aux_heads=True to keep these heads initialised)"
            if aux else ""))
    if unexpected:
        parts.append(f"unexpected {len(unexpected)} tensors: {_fmt(unexpected)}")
    if shapes:
        k_file, k_model = _keypoints(sd, arch), _keypoints(target, arch)
        hint = ""
        if k_file is not None and k_model is not None and k_file != k_model:
            hint = (f" (the file has K={k_file} keypoints, the model K={k_model}: weights of another "
                    f"data set; a finetune passes transfer=True)")
        parts.append(f"{len(shapes)} shape mismatches: {_fmt(shapes)}{hint}")
    raise CheckpointError("\n  ".join(parts), missing=missing, unexpected=unexpected, mismatched=shapes)


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
    _arch_of(model, "load_weights")
    name, obj = _read_source(source, source_name, mmap=False)
    sd, report, allowed_missing = _match(model, name, obj, transfer=transfer,
                                         allow_missing_aux_heads=allow_missing_aux_heads, expect=expect)
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
    _arch_of(model, "check_weights")
    name, obj = _read_source(source, source_name, mmap=True)
    sd, report, allowed_missing = _match(model, name, obj, transfer=transfer,
                                         allow_missing_aux_heads=allow_missing_aux_heads, expect=None)
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
