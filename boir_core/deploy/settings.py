"""``deploy.json``: what a deployment folder's runtime reads (docs/inference.md#deployment-folder).

One module writes the record (:func:`make_settings`, called by ``python -m boir_core export``) and reads it back
(:func:`read_settings`), so the two cannot drift. Its ``decode`` and ``input`` parts are :class:`DecodeSettings`
(what the numpy decoder reads) and :class:`InputSettings`. numpy and the standard library only.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Protocol, Sequence

__all__ = ["FORMAT", "SETTINGS_FILE", "DeploySettingsError", "DecodeSettings", "InputSettings", "KeypointSet",
           "make_settings", "read_settings"]

FORMAT = "boir-kit-deploy-v1"
SETTINGS_FILE = "deploy.json"
#: ImageNet statistics (boir_core.data.transforms.IMAGENET_MEAN / _STD), RGB order
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_DECODE_KEYS = ("flip_test", "flip_index", "max_proposals", "center_threshold", "center_pool_kernel",
                "oks_nms_threshold", "oks_sigmas")


class DeploySettingsError(ValueError):
    """A deployment folder or its ``deploy.json`` that cannot be used; the message names the file and key."""


@dataclass(frozen=True, kw_only=True)
class DecodeSettings:
    """The decoding settings of :func:`boir_core.deploy.decode_np.decode_np` (those of
    :func:`boir_core.engine.inference.decode.decode`; ``deploy.json``'s ``decode``): flip test and the flip index it
    needs, at most ``max_proposals`` centers above ``center_threshold``, the smoothing / peak kernel, OKS-NMS
    threshold and the data set's OKS sigmas. :meth:`of` reads the record;
    ``boir_core.engine.inference.decode_settings.decode_settings_from_config`` makes them from a config."""

    flip_test: bool = True
    flip_index: Optional[Sequence[int]] = None
    max_proposals: int = 30
    center_threshold: float = 0.01
    center_pool_kernel: int = 3
    oks_nms_threshold: float = 0.8
    oks_sigmas: Sequence[float]

    @classmethod
    def of(cls, decode: Mapping[str, Any]) -> "DecodeSettings":
        """The settings of a ``decode`` mapping with every key of :data:`_DECODE_KEYS` (others are an error)."""
        missing = [k for k in _DECODE_KEYS if k not in decode]
        if missing:
            raise DeploySettingsError(f"decode settings lack {missing}")
        return cls(**decode)

    def record(self) -> dict[str, Any]:
        """The JSON form of ``deploy.json``'s ``decode``."""
        return {"flip_test": bool(self.flip_test), "flip_index": [int(i) for i in self.flip_index],
                "max_proposals": int(self.max_proposals), "center_threshold": float(self.center_threshold),
                "center_pool_kernel": int(self.center_pool_kernel),
                "oks_nms_threshold": float(self.oks_nms_threshold), "oks_sigmas": [float(s) for s in self.oks_sigmas]}


@dataclass(frozen=True)
class InputSettings:
    """The network input of ``deploy.json``'s ``input``: the short side ``size``, the output ``stride`` and the
    RGB ``mean`` / ``std`` the image is normalised with."""

    size: int
    stride: int = 4
    mean: Sequence[float] = IMAGENET_MEAN
    std: Sequence[float] = IMAGENET_STD


class KeypointSet(Protocol):
    """A data set's keypoints as a deployment names them (``boir_core.data.DatasetProfile`` is one)."""

    name: str
    keypoints: Sequence[str]
    skeleton: Sequence[Sequence[int]]


def make_settings(*, arch: str, profile: KeypointSet, input: InputSettings, decode: DecodeSettings,
                  kit_version: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``deploy.json`` record of network ``arch``: ``profile``'s data-set name, keypoint names and skeleton,
    the ``input`` and ``decode`` settings, the kit's version and ``extra`` top-level keys."""
    return {
        "format": FORMAT,
        "kit_version": kit_version,
        "arch": arch,
        "dataset": profile.name,
        "graphs": {"dense": "dense.onnx", "instance": "instance.onnx"},
        "input": {"size": int(input.size), "stride": int(input.stride), "color": "RGB", "scale": "1/255",
                  "mean": [float(v) for v in input.mean], "std": [float(v) for v in input.std],
                  "resize": "short side to size, long side int((x + 63) // 64 * 64) with x = size * long / short, "
                            "image center to canvas center, bilinear, black border "
                            "(docs/inference.md#test-time-resize)"},
        "decode": decode.record(),
        "keypoints": list(profile.keypoints),
        "skeleton": [[int(a), int(b)] for a, b in profile.skeleton],
        **(extra or {}),
    }


def read_settings(folder: str | os.PathLike) -> dict[str, Any]:
    """Read and check ``FOLDER/deploy.json`` and that the graphs it names are there."""
    folder = Path(folder)
    path = folder / SETTINGS_FILE
    if not folder.is_dir():
        raise DeploySettingsError(f"{folder}: not a folder (a deployment folder holds {SETTINGS_FILE}, dense.onnx and "
                                  "instance.onnx, written by python -m boir_core export)")
    if not path.is_file():
        raise DeploySettingsError(f"{path}: no such file; export the model again with python -m boir_core export "
                                  "(a folder from an older kit holds only meta.json and the graphs)")
    try:
        s = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DeploySettingsError(f"{path}: cannot be read as JSON ({e})") from None
    if not isinstance(s, dict) or s.get("format") != FORMAT:
        got = s.get("format") if isinstance(s, dict) else type(s).__name__
        raise DeploySettingsError(f"{path}: format is {got!r}, this runtime reads {FORMAT!r}")
    for key in ("graphs", "input", "decode", "keypoints", "skeleton"):
        if key not in s:
            raise DeploySettingsError(f"{path}: key {key!r} is missing")
    missing = [k for k in _DECODE_KEYS if k not in s["decode"]]
    if missing:
        raise DeploySettingsError(f"{path}: decode lacks {missing}")
    for key in ("size", "stride", "mean", "std"):
        if key not in s["input"]:
            raise DeploySettingsError(f"{path}: input lacks {key!r}")
    k = len(s["keypoints"])
    if len(s["decode"]["oks_sigmas"]) != k or len(s["decode"]["flip_index"]) != k:
        raise DeploySettingsError(f"{path}: {k} keypoints but {len(s['decode']['oks_sigmas'])} oks_sigmas and "
                                  f"{len(s['decode']['flip_index'])} flip_index entries")
    for name in ("dense", "instance"):
        g = folder / str(s["graphs"].get(name, ""))
        if not g.is_file():
            raise DeploySettingsError(f"{path}: graphs.{name} names {g}, which is not there")
    return s
