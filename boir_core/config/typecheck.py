"""Checking config values against the dataclass types and merging a (nested) dict into a config: every
key must exist (a near miss is suggested), every value must fit its field's type; old key names and switch
spellings are read with a DeprecationWarning (:mod:`.switches`)."""
from __future__ import annotations

import dataclasses
import difflib
import reprlib
import typing
import warnings
from typing import Any, Literal

import yaml

from .errors import ConfigError
from .switches import DEPRECATED_KEYS, DEPRECATED_VALUES, switch_value

__all__ = ["merge_into", "coerce", "field_types", "unknown_key"]


#: Values in error messages are shown shortened: a YAML file can make a value huge through its aliases (a
#: "billion laughs" nest of lists is a few hundred bytes of YAML and billions of items once written out).
_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxlist, _SHORT.maxtuple, _SHORT.maxdict = 2, 4, 4, 4
_SHORT.maxstring, _SHORT.maxother = 80, 80


def show(value: Any) -> str:
    """``repr(value)``, shortened (bounded whatever the value's size)."""
    return _SHORT.repr(value)


def field_types(obj: Any) -> dict[str, Any]:
    hints = typing.get_type_hints(type(obj))
    return {f.name: hints[f.name] for f in dataclasses.fields(obj)}


def coerce(value: Any, tp: Any, key: str, source: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Union:  # Optional[X]
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "~")):
            if type(None) in args:
                return None
        inner = [a for a in args if a is not type(None)]
        return coerce(value, inner[0], key, source)
    if origin is Literal:
        if isinstance(value, bool) and ("off" if not value else "on") in args:
            value = "off" if not value else "on"  # YAML 1.1 reads a bare off / on as a boolean
        if isinstance(value, str) and value in DEPRECATED_VALUES.get(key, {}):
            value = switch_value(key, value, choices=())  # an old spelling: warns, gives the new word
        if value not in args:
            raise ConfigError(f"{source}: {key}={show(value)} is not one of {list(args)}")
        return value
    if origin is list:
        if isinstance(value, str):
            try:
                value = yaml.safe_load(value)
            except yaml.YAMLError as e:
                raise ConfigError(f"{source}: {key} must be a list, got {show(value)} (not valid YAML: "
                                  f"{getattr(e, 'problem', None) or e})") from None
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{source}: {key} must be a list, got {show(value)}")
        return [coerce(v, args[0], f"{key}[{i}]", source) for i, v in enumerate(value)]
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("false", "no", "0", "off"):
            return False
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise ConfigError(f"{source}: {key} must be true/false, got {show(value)}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{source}: {key} must be an integer, got {show(value)}")
        try:
            f = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{source}: {key} must be an integer, got {show(value)}") from None
        if f != int(f):
            raise ConfigError(f"{source}: {key} must be an integer, got {show(value)}")
        return int(f)
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{source}: {key} must be a number, got {show(value)}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{source}: {key} must be a number, got {show(value)}") from None
    if tp is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{source}: {key} must be a string, got {show(value)}")
        return str(value)
    raise ConfigError(f"{source}: {key}: unsupported type {tp}")  # pragma: no cover


def unknown_key(key: str, prefix: str, choices: list[str], source: str) -> ConfigError:
    near = difflib.get_close_matches(key, choices, n=1)
    hint = f" (did you mean {prefix + near[0]!r}?)" if near else f" (known: {', '.join(choices)})"
    return ConfigError(f"{source}: unknown config key {prefix + key!r}{hint}")


def merge_into(obj: Any, d: dict[str, Any], prefix: str, source: str) -> None:
    if not isinstance(d, dict):
        raise ConfigError(f"{source}: {prefix.rstrip('.') or 'config'} must be a mapping, got {show(d)}")
    types = field_types(obj)
    for k, v in d.items():
        if not isinstance(k, str):
            raise ConfigError(f"{source}: config key {prefix}{show(k)} is not a name (keys are words such as "
                              f"{prefix}{next(iter(types))})")
        if prefix + k in DEPRECATED_KEYS:  # an old key name: warn, then read it as the new one
            new = DEPRECATED_KEYS[prefix + k]
            if new.split(".")[-1] in d:
                raise ConfigError(f"{source}: both {prefix + k!r} (its old name) and {new!r} are set; keep {new!r}")
            warnings.warn(f"{source}: config key {prefix + k!r} is deprecated, it is the old name of {new!r} "
                          f"(accepted until the next release)", DeprecationWarning)
            k = new.split(".")[-1]
        if k not in types:
            raise unknown_key(k, prefix, list(types), source)
        cur = getattr(obj, k)
        if dataclasses.is_dataclass(cur):
            merge_into(cur, v, prefix=f"{prefix}{k}.", source=source)
        else:
            setattr(obj, k, coerce(v, types[k], f"{prefix}{k}", source))
