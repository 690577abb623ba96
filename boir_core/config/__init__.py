"""One typed configuration for the whole kit.

A :class:`Config` is a tree of dataclasses. It loads from YAML (one of the kit's configs by name, shipped in
``boir_core/configs/``, or any YAML file; a file may name a ``base:`` file or config it extends), accepts
``key=value`` overrides with dotted keys (``train.epochs=5``), checks every key and value against the
dataclass types, prints as YAML and is dumped next to every result.

Names follow the paper and the released settings (docs/training.md#released-settings). Where the release
and the paper differ, one switch says which behaviour you get (``model.bbox_head_init: release``,
``loss.bbox_mask_variant: release-image``, ...); the defaults are the paper's method with the release's bugs fixed.

``preset: release`` (in a YAML file or as the override ``preset=release``) turns the seven release switches of
:data:`RELEASE_PRESET` on at once; ``preset: paper`` (the default) leaves them at the paper's values. A
preset only fills the switches that are not written explicitly: a switch set in the YAML chain or in a
``key=value`` override wins over it. A config may list extra ``key=value`` pairs its released setting
changed under the release preset (``release_settings``, e.g. the finetune configs' per-instance Bbox Mask
Loss). :func:`preset_label` names what produced a resolved config ("paper", "release", or "paper +
loss.weighting=release" where a switch departs from its preset).

Every two-way switch says ``paper`` or ``release`` (a switch with a third value, ``loss.bbox_mask_variant``,
names its release values ``release-image`` / ``release-instance``). The paper side of four switches used to be
spelled ``working`` (``model.bbox_head_init``), ``correct`` (``data.flip_alignment``, ``data.box_clipping``)
and ``xy`` (``loss.bbox_decode``): :data:`DEPRECATED_VALUES`. Those spellings still load, for one release,
with a :class:`DeprecationWarning` naming the key, the old and the new value, and are stored as ``paper``.
Configs the kit itself stored with the old words (inside weights files and the shipped demo manifest) are
read through :func:`upgrade_config_dict`, without a warning.

Its modules: :mod:`.schema` (the dataclasses), :mod:`.switches` (presets, deprecated spellings, upgrading
stored configs), :mod:`.typecheck` (keys and values against the types), :mod:`.assign` (``key=value`` items and
presets applied to a config; below :mod:`.schema`, as ``Config.override`` uses it), :mod:`.overrides` (the same
names and :func:`preset_label`, which reads a stored record through ``Config``), :mod:`.loading` (YAML files and
their ``base:`` chain), :mod:`.kit_configs` (the shipped configs by name), :mod:`.registry` (the names of the data
sets, their K, and the inference backends, spelled once), :mod:`.errors`. Import the names below from
``boir_core.config``.
"""
from __future__ import annotations

from .errors import ConfigError
from .kit_configs import config_names, configs_dir, find_config
from .loading import load_config
from .overrides import apply_overrides, preset_label, preset_values
from .registry import BACKENDS, CUSTOM, DATASET_KEYPOINTS, DATASET_NAMES
from .schema import Config, DataConfig, KeypointsConfig, LossConfig, ModelConfig, TestConfig, TrainConfig
from .switches import (
                       DEPRECATED_KEYS,
                       DEPRECATED_VALUES,
                       PAPER_PRESET,
                       PRESETS,
                       RELEASE_PRESET,
                       switch_value,
                       upgrade_config_dict,
)

__all__ = [
    "ConfigError",
    "DataConfig",
    "KeypointsConfig",
    "ModelConfig",
    "LossConfig",
    "TrainConfig",
    "TestConfig",
    "Config",
    "load_config",
    "configs_dir",
    "config_names",
    "find_config",
    "apply_overrides",
    "PRESETS",
    "RELEASE_PRESET",
    "PAPER_PRESET",
    "preset_values",
    "preset_label",
    "DEPRECATED_VALUES",
    "DEPRECATED_KEYS",
    "switch_value",
    "upgrade_config_dict",
    "DATASET_KEYPOINTS",
    "DATASET_NAMES",
    "CUSTOM",
    "BACKENDS",
]
