"""Training-state checkpoints: atomic writes, full state for exact auto-resume.

A training checkpoint (``<run>/checkpoints/last.pt``) holds everything needed to continue a run where it
stopped: model, optimizer, grad scaler, the position in the learning-rate schedule (epoch and global
iteration), the RNG states and the resolved config. It is written to a temporary file in the same folder
and renamed, so a run killed mid-write never leaves a half-written checkpoint behind.

The model weights inside use the kit's own key layout (``boir_core.model``); ``model_state`` can be
loaded by :func:`boir_core.model.checkpoints.load_weights` too, so a training checkpoint doubles as a
weights file for ``evaluate`` and ``predict``.
"""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..io import atomic_open

__all__ = ["atomic_torch_save", "save_training_state", "load_training_state", "rng_state", "set_rng_state",
           "run_weights"]

FORMAT = "boir-kit-train-state/1"


def run_weights(run_dir: str | os.PathLike) -> Path | None:
    """The weights of a run folder: its ``final.pt``, else (while it trains) ``checkpoints/last.pt``, else
    None. The one place that maps a run folder to its weights file."""
    d = Path(run_dir)
    for cand in (d / "final.pt", d / "checkpoints" / "last.pt"):
        if cand.is_file():
            return cand
    return None


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to a temp file in the destination folder, then ``os.replace`` onto ``path``."""
    with atomic_open(path, "wb") as f:
        torch.save(obj, f)
    return Path(path)


def rng_state() -> dict[str, Any]:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_training_state(path: str | os.PathLike, *, model: torch.nn.Module, optimizer, scaler, epoch: int,
                        global_iter: int, config: dict, extra: dict | None = None) -> Path:
    """Write a complete training checkpoint atomically. ``epoch`` is the next epoch to run."""
    state = {
        "format": FORMAT,
        "model_state": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else None,
        "epoch": int(epoch),
        "global_iter": int(global_iter),
        "rng": rng_state(),
        "config": config,
        "extra": extra or {},
    }
    return atomic_torch_save(state, path)


def load_training_state(path: str | os.PathLike) -> dict[str, Any]:
    """Read a training checkpoint written by :func:`save_training_state`, with a clear error if it is not one."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # corrupt or truncated file
        raise RuntimeError(f"cannot read training checkpoint {path}: {type(e).__name__}: {e}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise RuntimeError(f"{path} is not a BoIR Kit training checkpoint (format {FORMAT!r} expected)")
    return state
