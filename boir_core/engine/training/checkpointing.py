"""Training-state checkpoints: atomic writes, full state for exact auto-resume.

A training checkpoint (``<run>/checkpoints/last.pt``) holds everything needed to continue a run where it
stopped: model, optimizer, grad scaler, the position in the learning-rate schedule (epoch and global
iteration), the RNG states and the resolved config. It is written to a temporary file in the same folder
and renamed, so a run killed mid-write never leaves a half-written checkpoint behind. It holds only tensors
and plain values (numpy's random state as a list of ints, not an array), so it is read back as data, with
``weights_only=True`` (docs/model.md#loading-is-data-never-code); a state written by an older kit (numpy arrays
inside) is refused with the command that converts it (``boir convert-checkpoint --trust``).

The model weights inside use the kit's own key layout (``boir_core.model``); ``model_state`` can be
loaded by :func:`boir_core.model.checkpoints.load_weights` too, so a training checkpoint doubles as a
weights file for ``evaluate`` and ``predict``.
"""
from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...io import atomic_open
from ...model import CheckpointError, UnsafeCheckpointError, read_checkpoint
from ...model.checkpoints import TRAIN_STATE_FORMAT

__all__ = ["atomic_torch_save", "TrainingParts", "save_training_state", "load_training_state", "rng_state",
           "set_rng_state", "upgrade_training_state", "FORMAT", "OLD_FORMATS"]

#: /2: the random states as plain values (tensors, ints, lists), read with ``weights_only=True``. Spelled once in
#: :mod:`boir_core.model.checkpoints`, which recognises it when weights are loaded from a training state.
FORMAT = TRAIN_STATE_FORMAT
#: Earlier layouts: /1 held numpy's random state as a numpy array (readable only by a full unpickling).
OLD_FORMATS = ("boir-kit-train-state/1",)


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to a temp file in the destination folder, then ``os.replace`` onto ``path``."""
    with atomic_open(path, "wb") as f:
        torch.save(obj, f)
    return Path(path)


def _plain_numpy_state(state: Any) -> dict[str, Any]:
    """numpy's legacy random state (the tuple ``np.random.get_state()`` returns, or its dict form) as plain
    values: the MT19937 key as a list of ints instead of a numpy array."""
    if isinstance(state, dict) and "key" in state:  # already plain
        return state
    if isinstance(state, dict):  # np.random.get_state(legacy=False)
        return {"bit_generator": str(state["bit_generator"]), "key": [int(k) for k in state["state"]["key"]],
                "pos": int(state["state"]["pos"]), "has_gauss": int(state["has_gauss"]),
                "gauss": float(state["gauss"])}
    name, key, pos, has_gauss, gauss = state
    return {"bit_generator": str(name), "key": [int(k) for k in key], "pos": int(pos), "has_gauss": int(has_gauss),
            "gauss": float(gauss)}


def rng_state() -> dict[str, Any]:
    """Every random state a run uses, as plain values (a tuple of ints, lists, tensors)."""
    state = {
        "python": random.getstate(),  # (version, tuple of ints, float or None)
        "numpy": _plain_numpy_state(np.random.get_state()),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    npst = _plain_numpy_state(state["numpy"])
    np.random.set_state((npst["bit_generator"], np.asarray(npst["key"], dtype=np.uint32), npst["pos"],
                         npst["has_gauss"], npst["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@dataclass(frozen=True)
class TrainingParts:
    """What a training checkpoint holds the state of: the network (its plain core, not a DDP or compiled wrapper),
    its optimiser and its grad scaler (``None`` for none: the checkpoint then holds ``None`` for it)."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler | None


def save_training_state(path: str | os.PathLike, parts: TrainingParts, *, epoch: int, global_iter: int,
                        config: dict, extra: dict | None = None) -> Path:
    """Write a complete training checkpoint atomically: the state of ``parts``, the position in the run (``epoch``:
    the next epoch to run; ``global_iter``: the optimisation steps done), the RNG states, the resolved ``config``
    and ``extra`` (the run's own records)."""
    state = {
        "format": FORMAT,
        "model_state": {k: v.detach().cpu() for k, v in parts.model.state_dict().items()},
        "optimizer": parts.optimizer.state_dict(),
        "scaler": parts.scaler.state_dict() if parts.scaler is not None else None,
        "epoch": int(epoch),
        "global_iter": int(global_iter),
        "rng": rng_state(),
        "config": config,
        "extra": extra or {},
    }
    return atomic_torch_save(state, path)


def load_training_state(path: str | os.PathLike) -> dict[str, Any]:
    """Read a training checkpoint written by :func:`save_training_state`, as data only, with a clear error if it
    is not one: :class:`~boir_core.model.UnsafeCheckpointError` for a file that would need a full unpickling
    (an older kit's state, or a planted file), naming the command that converts a trusted one."""
    path = Path(path)
    try:
        state = read_checkpoint(path)
    except UnsafeCheckpointError as e:  # an older kit's state (numpy inside) or a planted file
        what = ("a training state written by an older BoIR Kit, with numpy's random state as an array"
                if any(n.startswith("numpy") for n in e.needs) else None)
        raise UnsafeCheckpointError(path, e.needs, what=what, in_place=True) from None
    except CheckpointError as e:  # missing, corrupt or truncated file
        raise CheckpointError(f"cannot read training checkpoint: {e}") from None
    fmt = state.get("format") if isinstance(state, dict) else None
    if fmt in OLD_FORMATS:
        raise CheckpointError(f"{path}: a training state in an older BoIR Kit layout ({fmt}); convert it once, in "
                              f"place, with boir convert-checkpoint --trust {path} -o {path}, then resume")
    if fmt != FORMAT:
        raise CheckpointError(f"{path} is not a BoIR Kit training checkpoint (format {FORMAT!r} expected)")
    return state


def upgrade_training_state(state: Any) -> Any:
    """An older kit's training state (``boir-kit-train-state/1``, numpy's random state as an array), already
    unpickled by the caller, in the current layout (:data:`FORMAT`); anything else is returned as it is. Used by
    ``boir convert-checkpoint``."""
    if isinstance(state, dict) and state.get("format") in OLD_FORMATS:
        state = dict(state)
        rng = dict(state.get("rng") or {})
        if "numpy" in rng:
            rng["numpy"] = _plain_numpy_state(rng["numpy"])
        state["rng"] = rng
        state["format"] = FORMAT
    return state
