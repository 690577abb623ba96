"""The paper-vs-release switches: the two presets, the deprecated spellings of switch values and config keys,
and how old spellings are read (with a warning from a user's config, silently from a stored record).

Every two-way switch says ``paper`` or ``release`` (docs/release_vs_paper.md#switches).
"""
from __future__ import annotations

import warnings
from typing import Any, Optional

__all__ = ["RELEASE_PRESET", "PAPER_PRESET", "PRESETS", "DEPRECATED_VALUES", "DEPRECATED_KEYS", "switch_value",
           "upgrade_config_dict"]


#: The seven behaviours of the README's "Paper vs release" table, as the release had them.
RELEASE_PRESET: dict[str, str] = {
    "model.bbox_head_init": "release",
    "loss.bbox_mask_variant": "release-image",
    "loss.bbox_decode": "release",
    "loss.weighting": "release",
    "data.flip_alignment": "release",
    "data.box_clipping": "release",
    "loss.dummy_instance": "release",
}
#: The same switches with the paper's method (the defaults).
PAPER_PRESET: dict[str, str] = {
    "model.bbox_head_init": "paper",
    "loss.bbox_mask_variant": "paper",
    "loss.bbox_decode": "paper",
    "loss.weighting": "paper",
    "data.flip_alignment": "paper",
    "data.box_clipping": "paper",
    "loss.dummy_instance": "paper",
}
PRESETS = {"paper": PAPER_PRESET, "release": RELEASE_PRESET}

#: Old spellings of a switch value → the current word, per dotted key. Accepted, with a DeprecationWarning,
#: until the next release.
DEPRECATED_VALUES: dict[str, dict[str, str]] = {
    "model.bbox_head_init": {"working": "paper"},
    "data.flip_alignment": {"correct": "paper"},
    "data.box_clipping": {"correct": "paper"},
    "loss.bbox_decode": {"xy": "paper"},
}

#: Old names of config keys → the current ones (same section), accepted with a DeprecationWarning until the next
#: release. ``data.max_instances`` was renamed because ``loss.max_instances`` means another cap;
#: ``test.keypoint_threshold`` because it thresholds the center scores, not keypoints;
#: ``train.max_iters_per_epoch`` because the kit says "step" for one optimisation step everywhere.
DEPRECATED_KEYS: dict[str, str] = {"data.max_instances": "data.max_instances_per_image",
                                   "test.keypoint_threshold": "test.center_threshold",
                                   "train.max_iters_per_epoch": "train.max_steps_per_epoch"}

# show each deprecated-spelling warning once (Python hides DeprecationWarnings outside __main__ by default)
warnings.filterwarnings("once", category=DeprecationWarning, module=r"boir_core\.config(\.\w+)?$")


def switch_value(key: str, value: Any, name: Optional[str] = None,
                 choices: tuple[str, ...] = ("paper", "release")) -> Any:
    """``value`` of the switch ``key`` (dotted config key) in the current words: an old spelling
    (:data:`DEPRECATED_VALUES`) gives a DeprecationWarning naming the key, the old and the new value, and
    returns the new one; a value outside ``choices`` is a ValueError naming ``name`` (default: ``key``).
    Library functions that take a switch value as an argument call this with their argument's name."""
    new = DEPRECATED_VALUES.get(key, {}).get(value) if isinstance(value, str) else None
    if new is not None:
        shown = key if name is None or name == key else f"{name} (config key {key})"
        warnings.warn(f"{shown}: {value!r} is deprecated, it is the old spelling of {new!r} (accepted until "
                      f"the next release; write {key.rsplit('.', 1)[-1]}: {new})", DeprecationWarning)
        return new
    if choices and value not in choices:
        raise ValueError(f"{name or key} must be one of {list(choices)}, got {value!r}")
    return value


def upgrade_config_dict(d: Any) -> Any:
    """A copy of a stored config dict (``Config.to_dict()`` written by an older kit: a weights file's
    config, the shipped demo manifest) with the old switch spellings replaced by the current ones, silently:
    the words changed, not the behaviour, and such records cannot be rewritten."""
    if not isinstance(d, dict):
        return d
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in d.items()}
    for old, new in DEPRECATED_KEYS.items():
        section, old_name = old.split(".")
        sub = out.get(section)
        if isinstance(sub, dict) and old_name in sub and new.split(".")[1] not in sub:
            sub[new.split(".")[1]] = sub.pop(old_name)
    for key, table in DEPRECATED_VALUES.items():
        section, field_name = key.split(".")
        sub = out.get(section)
        if isinstance(sub, dict) and isinstance(sub.get(field_name), str) and sub[field_name] in table:
            sub[field_name] = table[sub[field_name]]
    return out
