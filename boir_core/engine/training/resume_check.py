"""Resuming a run: which config differences make a checkpoint belong to another run.

:func:`~boir_core.engine.training.train.train` refuses (:class:`ResumeMismatchError`) to resume from a checkpoint whose
config differs in a key that changes what is trained; keys in :data:`RESUME_FREE_KEYS` (where and how the run
runs) may differ.
"""
from __future__ import annotations

__all__ = ["ResumeMismatchError", "RESUME_FREE_KEYS", "config_changes", "with_defaults"]


class ResumeMismatchError(RuntimeError):
    """The run folder's checkpoint was trained with a different config."""


#: Config keys that may differ between a run and its resumption (where and how it runs, not what it trains).
RESUME_FREE_KEYS = ("name", "output_dir", "train.device", "train.log_every", "data.workers", "test.",
                    "train.paper_effective_batch")


def config_changes(old: dict, new: dict, prefix: str = "") -> list[str]:
    """``key: old -> new`` for every training-relevant difference between two config dicts."""
    out = []
    for k in sorted(set(old) | set(new)):
        key = prefix + k
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += config_changes(a, b, key + ".")
        elif a != b and not any(key == f or (f.endswith(".") and key.startswith(f)) for f in RESUME_FREE_KEYS):
            out.append(f"{key}: {a!r} -> {b!r}")
    return out


def with_defaults(old: dict, defaults: dict) -> dict:
    """``old`` with the keys it lacks taken from ``defaults``: a checkpoint written before a config field
    existed was trained with that field's default."""
    out = dict(old)
    for k, v in defaults.items():
        if k not in out:
            out[k] = v
        elif isinstance(v, dict) and isinstance(out[k], dict):
            out[k] = with_defaults(out[k], v)
    return out
