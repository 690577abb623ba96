"""``key=value`` items applied to a config: parsing an item (:func:`split_items`, :func:`parse_value`), setting
dotted keys in place (:func:`apply_overrides`) and the values a preset gives its switches (:func:`preset_values`;
``preset=release`` fills only the switches not written by hand, :func:`apply_preset`).

These work on any tree of config dataclasses (a :class:`~boir_core.config.schema.Config`, checked field by field by
:mod:`.typecheck`) and import nothing of :mod:`.schema`: ``Config.override`` builds on them, so they sit below it.
:mod:`.overrides` re-exports them beside :func:`~boir_core.config.overrides.preset_label`, which needs ``Config``."""
from __future__ import annotations

from typing import Any, Optional, TypeVar

import yaml

from .errors import ConfigError
from .switches import PRESETS
from .typecheck import merge_into

__all__ = ["apply_overrides", "apply_preset", "preset_values", "split_items", "parse_value"]

#: the config :func:`apply_overrides` is given (a :class:`~boir_core.config.schema.Config`), returned as it came
_ConfigT = TypeVar("_ConfigT")


def split_items(items: list[str], source: str) -> list[tuple[str, str]]:
    out = []
    for item in items:
        if "=" not in item:
            raise ConfigError(f"{source}: {item!r} is not of the form key=value")
        key, raw = item.split("=", 1)
        out.append((key.strip(), raw))
    return out


def preset_values(cfg: Any, preset: Optional[str] = None) -> dict[str, Any]:
    """``{dotted key: value}`` that ``preset`` (default: ``cfg.preset``) gives the switches of ``cfg``: the
    seven :data:`RELEASE_PRESET` / :data:`PAPER_PRESET` values, plus ``cfg.release_settings`` for release."""
    preset = cfg.preset if preset is None else preset
    if preset not in PRESETS:
        raise ConfigError(f"preset={preset!r} is not one of {list(PRESETS)}")
    values: dict[str, Any] = dict(PRESETS[preset])
    if preset == "release":
        for (key, raw), item in zip(split_items(list(cfg.release_settings), "release_settings"),
                                    cfg.release_settings):
            values[key] = parse_value(raw, f"release_settings {item!r}")
    return values


def parse_value(raw: str, source: str) -> Any:
    """The YAML value of an override's right-hand side; malformed YAML is a :class:`ConfigError` that names
    ``source`` (the override) and says what is wrong and how to write it."""
    if raw.strip() == "":
        return ""
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError as e:
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        mark = getattr(e, "problem_mark", None)
        where = f" at character {mark.column + 1}" if mark is not None and mark.line == 0 else ""
        raise ConfigError(f"{source}: the value {raw!r} is not valid YAML ({problem}{where}); write a number, "
                          f"true/false, a word, a complete list such as [1, 2, 3] or quoted text such as "
                          f"\"a: b\"") from None


def apply_preset(cfg: Any, explicit: set[str], source: str) -> None:
    """Set the preset's switches of ``cfg`` that are not in ``explicit`` (dotted keys written by hand)."""
    items = [f"{k}={v}" for k, v in preset_values(cfg).items() if k not in explicit]
    apply_overrides(cfg, items, source=f"{source} (preset={cfg.preset})", _presets=False)


def apply_overrides(cfg: _ConfigT, items: list[str], source: str = "override",
                    _presets: bool = True) -> _ConfigT:
    """Apply ``a.b=value`` strings to ``cfg`` in place (values parsed as YAML scalars) and return it.

    A ``preset=...`` item also sets the preset's switches, except the ones these items set themselves: the
    items win over the preset whatever their order."""
    pairs = split_items(items, source)
    for (key, raw), item in zip(pairs, items):
        parts = key.split(".")
        value = parse_value(raw, f"{source} {item!r}")
        nested: Any = value
        for p in reversed(parts):
            nested = {p: nested}
        merge_into(cfg, nested, prefix="", source=f"{source} {item!r}")
    if _presets and any(k == "preset" for k, _ in pairs):
        apply_preset(cfg, {k for k, _ in pairs}, source)
        # the items win: re-apply the ones that name a preset switch
        switch = [it for (k, _), it in zip(pairs, items) if k in preset_values(cfg)]
        apply_overrides(cfg, switch, source=source, _presets=False)
    return cfg
