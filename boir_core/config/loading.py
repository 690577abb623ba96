"""Loading a config: a YAML file or one of the kit's configs by name, its ``base:`` chain (a file it extends,
read first and merged under it), then ``key=value`` overrides and the preset."""
from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any

import yaml

from .assign import apply_overrides, apply_preset, split_items
from .errors import ConfigError
from .kit_configs import config_names, configs_dir, find_config
from .schema import Config

__all__ = ["load_config"]


def _read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    if path.resolve() in seen:
        raise ConfigError(f"{path}: circular 'base:' chain {' -> '.join(map(str, seen))}")
    try:
        d = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML: {e}") from None
    if not isinstance(d, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    base = d.pop("base", None)
    if base is None:
        return d
    parent = _read_yaml(_base_path(path, base), seen + (path.resolve(),))
    return _deep_merge(parent, d)


def _base_path(path: Path, base: Any) -> Path:
    """The file that ``base:`` in ``path`` names: a path read from ``path``'s folder (absolute paths as they
    are); when no such file exists and ``base`` is a bare name (``coco_w32``, ``coco_w32.yaml``,
    ``ablations/t4_full``), the kit's config of that name (:func:`find_config`). Neither: an error naming
    both places."""
    if not isinstance(base, str) or not base.strip():
        raise ConfigError(f"{path}: key 'base': expected a config file or a config name, got {base!r}")
    here = path.parent / Path(base).expanduser()
    if here.is_file():
        return here
    if not Path(base).is_absolute():
        named = find_config(base)
        if named is not None:
            return named
    raise ConfigError(f"{path}: key 'base': {base!r} is neither a file ({here} does not exist) nor the name of "
                      f"one of the kit's configs in {configs_dir()} ({', '.join(config_names()[:6])}, ...)")


def _deep_merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def load_config(path: str | os.PathLike | None = None, overrides: list[str] | None = None) -> Config:
    """Load a YAML config (or the defaults when ``path`` is None) and apply overrides.

    ``path`` is a YAML file (relative paths from the working folder), or the name of one of the kit's
    configs (``coco_w32``, ``demo``, ``t4_full`` or ``ablations/t4_full``; :func:`find_config`), which ship
    inside the package and are found from any folder. A file of that name in the working folder wins.
    """
    cfg = Config()
    explicit: set[str] = set()
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            named = find_config(path) if p.suffix not in (".yaml", ".yml") or not p.parent.parts else None
            if named is None:
                close = difflib.get_close_matches(str(path), config_names(), n=3)
                hint = (f"; a config of the kit is named without its folder (--config {Path(str(path)).stem})"
                        if find_config(Path(str(path)).stem) is not None else
                        f"; did you mean {' or '.join(close)}?" if close else
                        f"; the kit's configs: {', '.join(config_names())}")
                raise ConfigError(f"config file not found: {path} (no such file from {Path.cwd()}, and no "
                                  f"config of that name in {configs_dir()}){hint}")
            p = named
        d = _read_yaml(p)
        cfg = Config.from_dict(d, source=str(p))
        explicit |= set(_flatten_keys(d))
    overrides = list(overrides or [])
    if overrides:
        apply_overrides(cfg, overrides, _presets=False)
        explicit |= {k for k, _ in split_items(overrides, "override")}
    # the preset fills the switches that neither the YAML chain nor an override writes itself
    apply_preset(cfg, explicit, str(path) if path is not None else "defaults")
    return cfg


def _flatten_keys(d: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for k, v in d.items():
        if isinstance(v, dict):
            out += _flatten_keys(v, f"{prefix}{k}.")
        else:
            out.append(prefix + k)
    return out
