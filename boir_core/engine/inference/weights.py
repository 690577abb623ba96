"""Which weights, into which inference network: every weights file the kit knows, loaded strictly.

:func:`load_inference_model` accepts our ``final.pt``, a run folder, a training state ``checkpoints/last.pt``, a
released BoIR / CID ``.pth`` and the shipped demo weights (``shipped:boir``), and fails loudly on anything else;
the file's wrappers are recognised in one place, :mod:`boir_core.model.checkpoints`. :func:`checkpoint_config`
finds the config that belongs to a weights file. :class:`boir_core.engine.inference.predictor.Predictor` builds on
these.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ...config import Config, ConfigError, load_config, preset_label, upgrade_config_dict
from ...model import build_model, check_weights, load_weights, read_checkpoint
from ...model.checkpoints import saved_config
from ...model.demo_weights import shipped_arch, shipped_checkpoint

__all__ = ["run_weights", "resolve_checkpoint", "checkpoint_config", "load_inference_model", "check_inference_weights"]


def run_weights(run_dir: str | os.PathLike) -> Path | None:
    """The weights of a run folder: its ``final.pt``, else (while it trains) ``checkpoints/last.pt``, else
    None. The one place that maps a run folder to its weights file."""
    d = Path(run_dir)
    for cand in (d / "final.pt", d / "checkpoints" / "last.pt"):
        if cand.is_file():
            return cand
    return None


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """A run folder means its ``final.pt`` (or ``checkpoints/last.pt`` while training); ``shipped:boir`` /
    ``shipped:cid`` (a string) always mean the demo weights shipped inside the package, checksum verified: a
    file or folder of that name in the working folder is never consulted (``./shipped:boir`` or a ``Path``
    names it)."""
    arch = shipped_arch(path)
    if arch is not None:
        return shipped_checkpoint(arch)
    p = Path(path)
    if p.is_dir():
        weights = run_weights(p)
        if weights is not None:
            return weights
        raise FileNotFoundError(f"{p} is a folder without final.pt or checkpoints/last.pt")
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint not found: {p}")
    return p


def checkpoint_config(checkpoint: str | os.PathLike | None, config: str | os.PathLike | None = None,
                      overrides: list[str] | tuple[str, ...] = (), fallback: str = "demo") -> Config:
    """The config to use with ``checkpoint``: ``config`` when given; else the one saved with the weights (the
    run folder's ``config.yaml`` beside them, or the config stored inside our ``final.pt``); else ``fallback``.
    ``overrides`` (``key=value``) are applied last."""
    if config is not None and str(config) != "":
        return load_config(config, list(overrides))
    if checkpoint is not None:
        path = resolve_checkpoint(checkpoint)
        run_dir = path.parent.parent if path.parent.name == "checkpoints" else path.parent
        for cand in (run_dir / "config.yaml",):
            if cand.is_file():
                return load_config(cand, list(overrides))
        obj = read_checkpoint(path)  # as data only; names the file if it cannot be read
        saved = saved_config(obj)  # final.pt's extra["config"], a training state's config
        if saved is not None:
            # a stored record, possibly in an older kit's switch words: read without a deprecation warning
            return Config.from_dict(upgrade_config_dict(saved), source=f"{path} (saved config)").override(*overrides)
    return load_config(fallback, list(overrides))


def load_inference_model(cfg: Config, checkpoint: str | os.PathLike | None, device: torch.device | str = "cpu"):
    """The inference network of ``cfg`` with ``checkpoint`` loaded strictly (None: random weights)."""
    obj = path = None
    if checkpoint is not None:  # read before the network is built: a file that is refused costs nothing
        path = resolve_checkpoint(checkpoint)
        obj = read_checkpoint(path)  # as data only; names the file if it cannot be read
    model = build_model(cfg, train=False)
    report = None
    if path is not None:
        source: Any = obj if isinstance(obj, dict) else path  # not a dict: load_weights names what it holds
        # load_weights peels every wrapper (a training state's model_state, a release container, DDP's module.)
        report = load_weights(model, source, source_name=str(path))
        model.weights_preset = _weights_preset(report.kind, saved_config(obj))
        model.weights_batch = _weights_batch(obj)
    return model.to(device).eval(), report


def check_inference_weights(cfg: Config, checkpoint: str | os.PathLike):
    """Would :func:`load_inference_model` load ``checkpoint`` into ``cfg``'s network? Checked without building
    real weights (the network on the ``meta`` device) or reading the tensors (the file is memory-mapped).

    Returns the :class:`~boir_core.model.LoadReport` of the load; raises
    :class:`~boir_core.model.CheckpointError` naming the file and every missing, unexpected or mis-shaped
    tensor (another backbone width, another keypoint count, the other architecture).
    """
    path = resolve_checkpoint(checkpoint)
    with torch.device("meta"):
        model = build_model(cfg, train=False, initialise=False)
    obj = read_checkpoint(path, mmap=True)  # as data only; names the file if it cannot be read
    return check_weights(model, obj if isinstance(obj, dict) else path, source_name=str(path))

def _weights_batch(obj: Any) -> dict[str, Any] | None:
    """The effective batch our training recorded with the weights (``extra.batch`` of ``final.pt`` / ``last.pt``:
    :meth:`~.effective_batch.EffectiveBatch.to_dict`), None when the file records none (older or foreign
    weights)."""
    extra = obj.get("extra") if isinstance(obj, dict) else None
    batch = extra.get("batch") if isinstance(extra, dict) else None
    if isinstance(batch, dict) and isinstance(batch.get("effective"), int):
        return {k: batch.get(k) for k in ("effective", "paper", "world_size", "batch_size", "accumulate",
                                          "lr_scaling")}
    return None


def _weights_preset(kind: str, train_config: Any) -> str:
    """What produced a weights file: the authors' release, or the preset of the config that trained ours."""
    if kind.endswith("-release") or kind.endswith("-release-training"):
        return "release (released weights)"
    if isinstance(train_config, dict):
        try:
            return preset_label(train_config)
        except (ConfigError, TypeError, AttributeError):
            pass
    return "not recorded in the weights"
