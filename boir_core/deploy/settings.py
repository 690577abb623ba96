"""``deploy.json``: what a deployment folder's runtime reads (docs/inference.md#deployment-folder).

One module writes the record (:func:`make_settings`, called by ``python -m boir_core export``) and reads it back
(:func:`read_settings`), so the two cannot drift. numpy and the standard library only.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

__all__ = ["FORMAT", "SETTINGS_FILE", "DeploySettingsError", "make_settings", "read_settings"]

FORMAT = "boir-kit-deploy-v1"
SETTINGS_FILE = "deploy.json"
#: ImageNet statistics (boir_core.data.transforms.IMAGENET_MEAN / _STD), RGB order
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_DECODE_KEYS = ("flip_test", "flip_index", "max_proposals", "center_threshold", "center_pool_kernel",
                "oks_nms_threshold", "oks_sigmas")


class DeploySettingsError(ValueError):
    """A deployment folder or its ``deploy.json`` that cannot be used; the message names the file and key."""


def make_settings(*, arch: str, dataset: str, keypoints: Sequence[str], skeleton: Sequence[Sequence[int]],
                  input_size: int, decode: dict[str, Any], kit_version: str, stride: int = 4,
                  mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                  extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``deploy.json`` record. ``decode`` holds :func:`boir_core.engine.inference.decode.decode`'s settings
    (``flip_test``, ``flip_index``, ``max_proposals``, ``center_threshold``, ``center_pool_kernel``,
    ``oks_nms_threshold``, ``oks_sigmas``)."""
    missing = [k for k in _DECODE_KEYS if k not in decode]
    if missing:
        raise DeploySettingsError(f"decode settings lack {missing}")
    return {
        "format": FORMAT,
        "kit_version": kit_version,
        "arch": arch,
        "dataset": dataset,
        "graphs": {"dense": "dense.onnx", "instance": "instance.onnx"},
        "input": {"size": int(input_size), "stride": int(stride), "color": "RGB", "scale": "1/255",
                  "mean": [float(v) for v in mean], "std": [float(v) for v in std],
                  "resize": "short side to size, long side int((x + 63) // 64 * 64) with x = size * long / short, "
                            "image center to canvas center, bilinear, black border "
                            "(docs/inference.md#test-time-resize)"},
        "decode": {"flip_test": bool(decode["flip_test"]), "flip_index": [int(i) for i in decode["flip_index"]],
                   "max_proposals": int(decode["max_proposals"]),
                   "center_threshold": float(decode["center_threshold"]),
                   "center_pool_kernel": int(decode["center_pool_kernel"]),
                   "oks_nms_threshold": float(decode["oks_nms_threshold"]),
                   "oks_sigmas": [float(s) for s in decode["oks_sigmas"]]},
        "keypoints": list(keypoints),
        "skeleton": [[int(a), int(b)] for a, b in skeleton],
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
