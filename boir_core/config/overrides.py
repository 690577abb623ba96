"""``key=value`` overrides and presets: applying dotted-key overrides to a config, the values a preset gives
its switches (``preset=release`` fills only the switches not written by hand), and :func:`preset_label`.

:func:`preset_label` lives here, as it reads a stored record through :class:`~.schema.Config`; the rest lives in
:mod:`.assign` (below :mod:`.schema`, whose ``Config.override`` builds on it) and is re-exported from here."""
from __future__ import annotations

from typing import Any

from .assign import apply_overrides, apply_preset, parse_value, preset_values, split_items
from .schema import Config
from .switches import upgrade_config_dict

__all__ = ["apply_overrides", "apply_preset", "preset_values", "preset_label", "split_items", "parse_value"]


def _get(cfg: Any, dotted: str) -> Any:
    obj = cfg
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def preset_label(cfg: "Config | dict") -> str:
    """What produced ``cfg``: ``"paper"``, ``"release"``, or the preset plus the switches that depart from it
    (``"paper + loss.weighting=release"``)."""
    if isinstance(cfg, dict):  # a stored record: old switch spellings are read silently
        cfg = Config.from_dict(upgrade_config_dict(cfg), source="<config dict>")
    diffs = [f"{k}={_get(cfg, k)}" for k, v in preset_values(cfg).items() if _get(cfg, k) != v]
    return cfg.preset + (" + " + ", ".join(diffs) if diffs else "")
