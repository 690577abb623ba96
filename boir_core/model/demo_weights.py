"""The demo weights shipped inside the package: a small BoIR and a small CID trained on SynthCrowd.

They live in ``boir_core/weights/`` (package data, so an installed wheel has them too) beside a manifest,
``demo_weights.json``, that records for each file its SHA-256, its size, the full config it was trained with,
the exact command that reproduces it, a summary of its training log (the log itself is in
``boir_core/weights/logs/``) and the AP it reaches on SynthCrowd val::

    from boir_core.model.demo_weights import shipped_checkpoint, shipped_config
    path = shipped_checkpoint("boir")   # verified against the manifest's SHA-256, else ChecksumError
    cfg = shipped_config("boir")        # the config it was trained with

:func:`export_demo_weights` writes them from a finished run folder (fp16, at most :data:`MAX_BYTES`);
``python -m boir_core ship-demo`` (:mod:`boir_core.engine.jobs.ship_demo`) exports, evaluates and records them.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..config import Config, apply_overrides, upgrade_config_dict
from ..io import atomic_open, atomic_write_json, atomic_write_text
from .checkpoints import CheckpointError, read_checkpoint

__all__ = ["WEIGHTS_DIR", "MANIFEST_NAME", "MAX_BYTES", "ARCHS", "SHIPPED_PREFIX", "ChecksumError", "shipped_arch",
           "shipped_checkpoint",
           "shipped_config", "shipped_manifest", "shipped_entry", "sha256_of", "DemoRecord", "export_demo_weights"]

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
MANIFEST_NAME = "demo_weights.json"
MAX_BYTES = 5 * 1024 * 1024  # each shipped file: at most 5 MiB
ARCHS = ("boir", "cid")
FORMAT = "boir-kit-demo-weights"
#: The command line names the shipped weights ``shipped:boir`` / ``shipped:cid`` (``--checkpoint shipped:boir``).
SHIPPED_PREFIX = "shipped:"


class ChecksumError(CheckpointError):
    """A shipped weights file does not have the SHA-256 its manifest records (corrupted or replaced)."""


def sha256_of(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def _arch(arch: str) -> str:
    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {', '.join(ARCHS)}, got {arch!r}")
    return arch


def shipped_arch(name: Any) -> str | None:
    """``"boir"`` for the name ``shipped:boir`` (``"cid"`` for ``shipped:cid``); ``None`` for anything that is not
    such a name (a path). ``shipped:<other>`` is a :class:`CheckpointError` naming the valid names."""
    if not isinstance(name, str) or not name.startswith(SHIPPED_PREFIX):
        return None
    arch = name[len(SHIPPED_PREFIX):]
    if arch not in ARCHS:
        raise CheckpointError(f"checkpoint {name!r}: the shipped demo weights are named "
                              f"{', '.join(SHIPPED_PREFIX + a for a in ARCHS)}")
    return arch


def shipped_manifest(weights_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """The manifest ``demo_weights.json`` (raises FileNotFoundError naming it when the kit ships none)."""
    path = Path(weights_dir or WEIGHTS_DIR) / MANIFEST_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no shipped demo weights: {path} does not exist (they are written by "
                                f"boir_core.model.demo_weights.export_demo_weights)")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: not valid JSON ({e})") from None
    if manifest.get("format") != FORMAT or not isinstance(manifest.get("weights"), dict):
        raise CheckpointError(f"{path}: not a demo-weights manifest (format {FORMAT!r} with a 'weights' table)")
    return manifest


def shipped_entry(arch: str = "boir", weights_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """The manifest's record of the shipped ``arch`` weights (file, sha256, config, command, training, AP)."""
    manifest = shipped_manifest(weights_dir)
    entry = manifest["weights"].get(_arch(arch))
    if entry is None:
        raise FileNotFoundError(f"{Path(weights_dir or WEIGHTS_DIR) / MANIFEST_NAME} lists no {arch!r} weights "
                                f"(it has: {', '.join(manifest['weights']) or 'none'})")
    return entry


def shipped_checkpoint(arch: str = "boir", weights_dir: str | os.PathLike | None = None) -> Path:
    """Path of the shipped demo ``arch`` weights ("boir" or "cid"), after checking its SHA-256.

    Raises FileNotFoundError when the file or its manifest is missing and :class:`ChecksumError` (naming the
    file, the expected and the actual checksum) when the file is not the one the manifest describes.
    """
    entry = shipped_entry(arch, weights_dir)
    path = Path(weights_dir or WEIGHTS_DIR) / entry["file"]
    if not path.is_file():
        raise FileNotFoundError(f"shipped {arch} weights missing: {path} (listed in {MANIFEST_NAME})")
    actual = sha256_of(path)
    if actual != entry["sha256"]:
        raise ChecksumError(f"{path} is corrupted or was replaced: its SHA-256 is {actual}, but "
                            f"{MANIFEST_NAME} records {entry['sha256']}. Restore the file from the kit "
                            f"(git checkout -- {path.name}, or reinstall boir_core).")
    return path


def shipped_config(arch: str = "boir", overrides: list[str] | None = None,
                   weights_dir: str | os.PathLike | None = None):
    """The :class:`~boir_core.config.Config` the shipped ``arch`` weights were trained with (+ overrides)."""
    entry = shipped_entry(arch, weights_dir)
    # the manifest records the config in the words of the kit that trained it (old switch spellings)
    cfg = Config.from_dict(upgrade_config_dict(entry["config"]), source=f"{MANIFEST_NAME}[{arch}]")
    return apply_overrides(cfg, list(overrides or []), source="override") if overrides else cfg


@dataclass(frozen=True)
class DemoRecord:
    """What the manifest records about shipped weights beside the file: the exact training ``command``, the
    ``config_file`` it named, the ``metrics`` of the exported file and the ``learning_curve``
    ([{steps, AP, ...}] of intermediate checkpoints)."""

    command: str
    config_file: str | None = None
    metrics: dict[str, Any] | None = None
    learning_curve: list[dict[str, Any]] | None = None


def export_demo_weights(run_dir: str | os.PathLike, arch: str, record: DemoRecord, *,
                        weights_dir: str | os.PathLike | None = None, max_bytes: int = MAX_BYTES) -> dict[str, Any]:
    """Write ``<run_dir>/final.pt`` as the shipped ``arch`` weights (fp16) and record it, with ``record``, in the
    manifest.

    The file keeps the kit's checkpoint format (``load_weights`` / ``load_inference_model`` read it as any
    other) with every floating-point tensor in fp16; the training log (``metrics.jsonl``) is copied to
    ``logs/demo_<arch>.metrics.jsonl``. Refuses a file larger than ``max_bytes``. Returns the manifest entry.
    """
    _arch(arch)
    run_dir = Path(run_dir)
    out = Path(weights_dir or WEIGHTS_DIR)
    src = run_dir / "final.pt"
    if not src.is_file():
        raise FileNotFoundError(f"{src} does not exist: train the run to its end first")
    obj = read_checkpoint(src)  # as data only: a run folder's file is no reason to run code
    if not isinstance(obj, dict) or obj.get("arch") != arch:
        found = obj.get("arch") if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointError(f"{src} holds a {found!r} model, not {arch!r}")
    obj["state_dict"] = {k: (v.half() if v.is_floating_point() else v) for k, v in obj["state_dict"].items()}
    obj.setdefault("extra", {})["dtype"] = "float16"
    name = f"demo_{arch}.pt"
    out.mkdir(parents=True, exist_ok=True)
    with atomic_open(out / name, "wb") as f:
        torch.save(obj, f)
    size = (out / name).stat().st_size
    if size > max_bytes:
        (out / name).unlink()
        raise ValueError(f"{out / name} would be {size} bytes, more than the {max_bytes} allowed; "
                         "train a smaller model")
    log_rel = None
    if (run_dir / "metrics.jsonl").is_file():
        log_rel = f"logs/demo_{arch}.metrics.jsonl"
        atomic_write_text(out / log_rel, (run_dir / "metrics.jsonl").read_text())
    extra = obj.get("extra", {})
    plan = extra.get("plan") or {}
    epochs = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()
              if '"epoch"' in line] if log_rel else []
    epochs = [r for r in epochs if r.get("type") == "epoch"]
    steps = plan.get("total_steps") or (epochs[-1].get("iter") if epochs else None)  # older runs: from the log
    training = {"steps": steps, "batch_size": extra.get("config", {}).get("train", {})
                .get("batch_size"), "seconds": round(sum(r.get("seconds", 0.0) for r in epochs), 1),
                "final_loss": epochs[-1].get("total") if epochs else None, "log": log_rel,
                "schedule": plan}
    entry = {"file": name, "sha256": sha256_of(out / name), "bytes": size, "dtype": "float16",
             "config_file": record.config_file, "config": extra.get("config"), "command": record.command,
             "training": training, "metrics": record.metrics or {}, "learning_curve": record.learning_curve or []}
    try:
        manifest = shipped_manifest(out)
    except FileNotFoundError:
        manifest = {"format": FORMAT, "version": 1, "weights": {}}
    manifest["weights"][arch] = entry
    atomic_write_json(out / MANIFEST_NAME, manifest, indent=2)
    return entry
