"""One typed configuration for the whole kit.

A :class:`Config` is a tree of dataclasses. It loads from YAML (one of the kit's configs by name, shipped in
``boir_core/configs/``, or any YAML file; a file may name a ``base:`` file or config it extends), accepts
``key=value`` overrides with dotted keys (``train.epochs=5``), checks every key and value against the
dataclass types, prints as YAML and is dumped next to every result.

Names follow the paper and the released settings (docs/training.md#released-settings). Where the release
and the paper differ, one switch says which behaviour you get (``model.bbox_head_init: release``,
``loss.bbox_mask_variant: release-image``, ...); the defaults are the paper's method with the release's bugs fixed.

``preset: release`` (in a YAML file or as the override ``preset=release``) turns the six release switches of
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
"""
from __future__ import annotations

import dataclasses
import difflib
import os
import typing
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

import yaml

from .io import atomic_write_text

__all__ = [
    "ConfigError",
    "DataConfig",
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
]


class ConfigError(ValueError):
    """A config file, key or value is wrong; the message names it."""


@dataclass
class DataConfig:
    dataset: Literal["coco", "crowdpose", "ochuman", "synthcrowd", "synthcrowd14"] = "synthcrowd"
    root: str = "data/synthcrowd"
    train_split: str = "train"
    test_split: str = "val"
    input_size: int = 512
    output_size: int = 128
    # augmentation (docs/data_format.md#augmentation)
    flip: float = 0.5
    max_rotation: float = 30.0
    min_scale: float = 0.75
    max_scale: float = 1.5
    max_translate: int = 40
    # paper-vs-release switches (docs/release_vs_paper.md#switches)
    flip_alignment: Literal["paper", "release"] = "paper"
    box_clipping: Literal["paper", "release"] = "paper"
    center_jitter: bool = True
    # at most this many people of one image become instances, smallest first (the release's
    # DATASET.MAX_INSTANCES; loss.max_instances is the cap of the instance loss over the whole batch)
    max_instances_per_image: int = 200
    workers: int = 0
    skip_bad_samples: bool = False


@dataclass
class ModelConfig:
    arch: Literal["boir", "cid"] = "boir"
    backbone: str = "hrnet_w32"
    # ImageNet initialisation of the backbone (docs/model.md#backbone-hrnet): "timm" (timm's weights
    # through its hub, cached; "hub" is an alias), a local file (the official
    # hrnetv2_w*_imagenet_pretrained.pth or a timm checkpoint), or none (from scratch, on purpose). See
    # boir_core.model.pretrained.
    pretrained: Optional[str] = None
    neck_channels: int = 256
    neck_middle_channels: int = 128
    atrous_rates: list[int] = field(default_factory=lambda: [12, 24, 36])
    head_channels: int = 128
    emb_dim: int = 128
    inst_channels: int = 64  # 64 for W32, 96 for W48, 32 for CID
    bbox_head: bool = True  # Table 4 ablation: train with the bbox head or not
    bbox_head_init: Literal["paper", "release"] = "paper"


@dataclass
class LossConfig:
    # Eq. 5 unit weights vs the release's weights and ÷B (docs/release_vs_paper.md#loss-weighting)
    weighting: Literal["paper", "release"] = "paper"
    multi_heatmap_weight: float = 1.0
    single_heatmap_weight: float = 4.0
    bbox_weight: float = 0.25
    bbox_mask_weight: float = 0.25
    bbox_mask: bool = True  # Table 4 ablation: Bbox Mask Loss on/off
    bbox_mask_variant: Literal["paper", "release-image", "release-instance"] = "paper"
    emb_loss: Literal["ae", "contrastive"] = "ae"  # Table 4 right
    distance: Literal["l2", "cosine"] = "l2"  # Table 4 right
    beta: float = 10.0  # Table 7 left
    temperature: float = 0.05  # InfoNCE temperature for emb_loss=contrastive
    instance_point: Literal["center", "box"] = "center"  # where p_i is sampled (paper variant)
    # release swaps x/y in dist2bbox (docs/release_vs_paper.md#box-loss-and-decoding)
    bbox_decode: Literal["paper", "release"] = "paper"
    # the instance keypoint loss uses a random subset of this many of the batch's instances (0: all)
    max_instances: int = 200


@dataclass
class TrainConfig:
    epochs: int = 140
    warmup_epochs: int = 10
    batch_size: int = 20  # images per process
    lr: float = 1e-3
    weight_decay: float = 0.025
    min_lr: float = 1e-6
    warmup_start_lr: float = 1e-12
    clip_grad: float = 10.0
    amp: Literal["auto", "fast", "fp16", "bf16", "off"] = "auto"  # fast: + bf16 on CPUs with native bf16
    device: str = "auto"
    seed: int = 0
    sync_bn: bool = False
    channels_last: bool = False
    compile: bool = False
    save_every: int = 2
    max_iters_per_epoch: int = 0  # 0: the whole epoch
    # the run's length (boir_core.engine.budget): max_steps > 0 runs exactly that many steps (it wins over the
    # budget); time_budget_s > 0 times a few steps on this machine and runs as many as fit in the budget
    max_steps: int = 0
    time_budget_s: float = 0.0
    transfer_from: Optional[str] = None  # COCO -> CrowdPose finetune (docs/training.md#transfer-to-crowdpose)
    max_nonfinite_in_a_row: int = 5
    log_every: int = 10


@dataclass
class TestConfig:
    flip_test: bool = True
    max_proposals: int = 30
    keypoint_threshold: float = 0.01
    center_pool_kernel: int = 3  # 11 for OCHuman
    oks_nms_threshold: float = 0.8  # 0.7 for OCHuman
    evaluator: Literal["pycocotools", "faster-coco-eval"] = "pycocotools"
    max_images: int = 0  # 0: all
    # who runs the network (boir_core.engine.backends); onnxruntime / openvino are pip extras
    backend: Literal["torch", "onnxruntime", "openvino"] = "torch"


@dataclass
class Config:
    name: str = "default"
    output_dir: str = "runs"
    # which released behaviour the six paper-vs-release switches default to (RELEASE_PRESET)
    preset: Literal["paper", "release"] = "paper"
    # key=value pairs the release preset also sets for this setting (what its released yaml changed)
    release_settings: list[str] = field(default_factory=list)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    test: TestConfig = field(default_factory=TestConfig)

    # ---- conversion -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def __str__(self) -> str:  # printable
        return self.to_yaml()

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "<dict>") -> "Config":
        cfg = cls()
        _merge_into(cfg, d, prefix="", source=source)
        return cfg

    def override(self, *items: str) -> "Config":
        """Return a copy with ``key=value`` overrides applied.

        ``preset=...`` among them sets the preset's switches (except those overridden in the same call)."""
        new = Config.from_dict(self.to_dict())
        apply_overrides(new, list(items))
        return new

    def dump(self, path: str | os.PathLike) -> Path:
        """Write the resolved config as YAML, atomically."""
        return atomic_write_text(path, self.to_yaml())

    @property
    def num_keypoints(self) -> int:
        return 14 if self.data.dataset in ("crowdpose", "synthcrowd14") else 17


# ---- presets ---------------------------------------------------------------------------------------

#: The six behaviours of the README's "Paper vs release" table, as the release had them.
RELEASE_PRESET: dict[str, str] = {
    "model.bbox_head_init": "release",
    "loss.bbox_mask_variant": "release-image",
    "loss.bbox_decode": "release",
    "loss.weighting": "release",
    "data.flip_alignment": "release",
    "data.box_clipping": "release",
}
#: The same switches with the paper's method (the defaults).
PAPER_PRESET: dict[str, str] = {
    "model.bbox_head_init": "paper",
    "loss.bbox_mask_variant": "paper",
    "loss.bbox_decode": "paper",
    "loss.weighting": "paper",
    "data.flip_alignment": "paper",
    "data.box_clipping": "paper",
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
#: release. ``data.max_instances`` was renamed because ``loss.max_instances`` means another cap.
DEPRECATED_KEYS: dict[str, str] = {"data.max_instances": "data.max_instances_per_image"}

# show each deprecated-spelling warning once (Python hides DeprecationWarnings outside __main__ by default)
warnings.filterwarnings("once", category=DeprecationWarning, module=r"boir_core\.config$")


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


def _split_items(items: list[str], source: str) -> list[tuple[str, str]]:
    out = []
    for item in items:
        if "=" not in item:
            raise ConfigError(f"{source}: {item!r} is not of the form key=value")
        key, raw = item.split("=", 1)
        out.append((key.strip(), raw))
    return out


def preset_values(cfg: "Config", preset: Optional[str] = None) -> dict[str, Any]:
    """``{dotted key: value}`` that ``preset`` (default: ``cfg.preset``) gives the switches of ``cfg``: the
    six :data:`RELEASE_PRESET` / :data:`PAPER_PRESET` values, plus ``cfg.release_settings`` for release."""
    preset = cfg.preset if preset is None else preset
    if preset not in PRESETS:
        raise ConfigError(f"preset={preset!r} is not one of {list(PRESETS)}")
    values: dict[str, Any] = dict(PRESETS[preset])
    if preset == "release":
        for key, raw in _split_items(list(cfg.release_settings), "release_settings"):
            values[key] = yaml.safe_load(raw)
    return values


def _get(cfg: Any, dotted: str) -> Any:
    obj = cfg
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def _apply_preset(cfg: "Config", explicit: set[str], source: str) -> None:
    """Set the preset's switches of ``cfg`` that are not in ``explicit`` (dotted keys written by hand)."""
    items = [f"{k}={v}" for k, v in preset_values(cfg).items() if k not in explicit]
    apply_overrides(cfg, items, source=f"{source} (preset={cfg.preset})", _presets=False)


def preset_label(cfg: "Config | dict") -> str:
    """What produced ``cfg``: ``"paper"``, ``"release"``, or the preset plus the switches that depart from it
    (``"paper + loss.weighting=release"``)."""
    if isinstance(cfg, dict):  # a stored record: old switch spellings are read silently
        cfg = Config.from_dict(upgrade_config_dict(cfg), source="<config dict>")
    diffs = [f"{k}={_get(cfg, k)}" for k, v in preset_values(cfg).items() if _get(cfg, k) != v]
    return cfg.preset + (" + " + ", ".join(diffs) if diffs else "")


# ---- type checking and merging ---------------------------------------------------------------

def _field_types(obj: Any) -> dict[str, Any]:
    hints = typing.get_type_hints(type(obj))
    return {f.name: hints[f.name] for f in dataclasses.fields(obj)}


def _coerce(value: Any, tp: Any, key: str, source: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Union:  # Optional[X]
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "~")):
            if type(None) in args:
                return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], key, source)
    if origin is Literal:
        if isinstance(value, bool) and ("off" if not value else "on") in args:
            value = "off" if not value else "on"  # YAML 1.1 reads a bare off / on as a boolean
        if isinstance(value, str) and value in DEPRECATED_VALUES.get(key, {}):
            value = switch_value(key, value, choices=())  # an old spelling: warns, gives the new word
        if value not in args:
            raise ConfigError(f"{source}: {key}={value!r} is not one of {list(args)}")
        return value
    if origin is list:
        if isinstance(value, str):
            value = yaml.safe_load(value)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{source}: {key} must be a list, got {value!r}")
        return [_coerce(v, args[0], f"{key}[{i}]", source) for i, v in enumerate(value)]
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("false", "no", "0", "off"):
            return False
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise ConfigError(f"{source}: {key} must be true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{source}: {key} must be an integer, got {value!r}")
        try:
            f = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{source}: {key} must be an integer, got {value!r}") from None
        if f != int(f):
            raise ConfigError(f"{source}: {key} must be an integer, got {value!r}")
        return int(f)
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{source}: {key} must be a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{source}: {key} must be a number, got {value!r}") from None
    if tp is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{source}: {key} must be a string, got {value!r}")
        return str(value)
    raise ConfigError(f"{source}: {key}: unsupported type {tp}")  # pragma: no cover


def _unknown(key: str, prefix: str, choices: list[str], source: str) -> ConfigError:
    near = difflib.get_close_matches(key, choices, n=1)
    hint = f" (did you mean {prefix + near[0]!r}?)" if near else f" (known: {', '.join(choices)})"
    return ConfigError(f"{source}: unknown config key {prefix + key!r}{hint}")


def _merge_into(obj: Any, d: dict[str, Any], prefix: str, source: str) -> None:
    if not isinstance(d, dict):
        raise ConfigError(f"{source}: {prefix.rstrip('.') or 'config'} must be a mapping, got {d!r}")
    types = _field_types(obj)
    for k, v in d.items():
        if prefix + k in DEPRECATED_KEYS:  # an old key name: warn, then read it as the new one
            new = DEPRECATED_KEYS[prefix + k]
            if new.split(".")[-1] in d:
                raise ConfigError(f"{source}: both {prefix + k!r} (its old name) and {new!r} are set; keep {new!r}")
            warnings.warn(f"{source}: config key {prefix + k!r} is deprecated, it is the old name of {new!r} "
                          f"(accepted until the next release)", DeprecationWarning)
            k = new.split(".")[-1]
        if k not in types:
            raise _unknown(k, prefix, list(types), source)
        cur = getattr(obj, k)
        if dataclasses.is_dataclass(cur):
            _merge_into(cur, v, prefix=f"{prefix}{k}.", source=source)
        else:
            setattr(obj, k, _coerce(v, types[k], f"{prefix}{k}", source))


def apply_overrides(cfg: Config, items: list[str], source: str = "override", _presets: bool = True) -> Config:
    """Apply ``a.b=value`` strings in place (values parsed as YAML scalars).

    A ``preset=...`` item also sets the preset's switches, except the ones these items set themselves: the
    items win over the preset whatever their order."""
    pairs = _split_items(items, source)
    for (key, raw), item in zip(pairs, items):
        parts = key.split(".")
        value = yaml.safe_load(raw) if raw.strip() != "" else ""
        nested: Any = value
        for p in reversed(parts):
            nested = {p: nested}
        _merge_into(cfg, nested, prefix="", source=f"{source} {item!r}")
    if _presets and any(k == "preset" for k, _ in pairs):
        _apply_preset(cfg, {k for k, _ in pairs}, source)
        # the items win: re-apply the ones that name a preset switch
        switch = [it for (k, _), it in zip(pairs, items) if k in preset_values(cfg)]
        apply_overrides(cfg, switch, source=source, _presets=False)
    return cfg


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
        explicit |= {k for k, _ in _split_items(overrides, "override")}
    # the preset fills the switches that neither the YAML chain nor an override writes itself
    _apply_preset(cfg, explicit, str(path) if path is not None else "defaults")
    return cfg


def _flatten_keys(d: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for k, v in d.items():
        if isinstance(v, dict):
            out += _flatten_keys(v, f"{prefix}{k}.")
        else:
            out.append(prefix + k)
    return out


def configs_dir() -> Path:
    """The kit's configs: ``boir_core/configs/`` inside the package (package data, so an installed wheel has
    them too). A checkout also reaches them as ``configs/``, a relative link to this folder."""
    return Path(__file__).resolve().parent / "configs"


def config_names() -> list[str]:
    """Names of the kit's configs: the released settings, then ``ablations/<key>`` for Tables 4 and 7."""
    d = configs_dir()
    return [p.stem for p in sorted(d.glob("*.yaml"))] + [f"ablations/{p.stem}"
                                                          for p in sorted((d / "ablations").glob("*.yaml"))]


def find_config(name: str | os.PathLike) -> Optional[Path]:
    """The kit's config file called ``name`` (``coco_w32``, ``coco_w32.yaml``, ``ablations/t4_full`` or just
    ``t4_full``), or ``None``. A name with other folders than ``ablations/`` is no config name."""
    text = str(name)
    stem = text[:-5] if text.endswith(".yaml") else text[:-4] if text.endswith(".yml") else text
    if not stem or stem.startswith(("/", ".", "~")) or "\\" in stem:
        return None
    parts = stem.split("/")
    d = configs_dir()
    if len(parts) == 2 and parts[0] == "ablations":
        cands = [d / "ablations" / f"{parts[1]}.yaml"]
    elif len(parts) == 1:
        cands = [d / f"{stem}.yaml", d / "ablations" / f"{stem}.yaml"]
    else:
        return None
    return next((c for c in cands if c.is_file()), None)
