"""The one error of the config package: a config file, key or value is wrong."""
from __future__ import annotations

__all__ = ["ConfigError"]


class ConfigError(ValueError):
    """A config file, key or value is wrong; the message names it."""
