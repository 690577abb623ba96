"""One vocabulary for the paper-vs-release switches (docs/release_vs_paper.md#switches).

Every two-way switch says ``paper`` or ``release``. The paper side of four switches had other names
(``working``, ``correct``, ``xy``): they still load for one release, with a DeprecationWarning naming the key,
the old and the new value, and behave exactly as ``paper`` (checked on the library function each switch
drives, with a probe that tells ``paper`` from ``release`` apart). Configs the kit stored with the old words
(the shipped demo manifest, a checkpoint's model config) load silently. The docs' switch table lists exactly
the values the config accepts.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import typing
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from boir_core.config import DEPRECATED_VALUES, PAPER_PRESET, RELEASE_PRESET, Config, configs_dir, load_config
from boir_core.data.targets import boxes_from_corners
from boir_core.data.transforms import AffineParams, train_affines
from boir_core.losses import decode_ltrb
from boir_core.model import BoIR, MultiHead, load_model, save_checkpoint

ROOT = Path(__file__).resolve().parents[1]
OLD = [(key, old, new) for key, table in sorted(DEPRECATED_VALUES.items()) for old, new in table.items()]
OLD_IDS = [f"{key}={old}" for key, old, _ in OLD]


def _allowed(key: str) -> set[str]:
    section, name = key.split(".")
    tp = typing.get_type_hints(type(getattr(Config(), section)))[name]
    if tp is bool:
        return {"true", "false"}
    assert typing.get_origin(tp) is typing.Literal, f"{key} is not a switch"
    return set(typing.get_args(tp))


def test_the_old_spellings_are_the_four_words_of_the_issue():
    assert sorted((k, o, n) for k, o, n in OLD) == [
        ("data.box_clipping", "correct", "paper"), ("data.flip_alignment", "correct", "paper"),
        ("loss.bbox_decode", "xy", "paper"), ("model.bbox_head_init", "working", "paper")]
    for key, old, _ in OLD:
        assert old not in _allowed(key), f"{key} still lists {old!r} as a value of its own"


def test_every_preset_switch_says_paper_or_release():
    for key in RELEASE_PRESET:
        allowed = _allowed(key)
        assert PAPER_PRESET[key] == "paper" and RELEASE_PRESET[key] in allowed, key
        if len(allowed) == 2:
            assert allowed == {"paper", "release"}, key
        else:  # a switch with a third value names its release values release-*
            assert "paper" in allowed and all(v.startswith("release-") for v in allowed - {"paper"}), key


@pytest.mark.parametrize("key, old, new", OLD, ids=OLD_IDS)
def test_old_spelling_in_a_yaml_file_or_override_warns_and_stores_the_new_word(key, old, new, tmp_path):
    section, name = key.split(".")
    f = tmp_path / "old.yaml"
    f.write_text(yaml.safe_dump({"base": str(configs_dir() / "tiny.yaml"), section: {name: old}}))
    with pytest.warns(DeprecationWarning) as caught:
        cfg = load_config(f)
    messages = [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)]
    assert any(key in m and repr(old) in m and repr(new) in m for m in messages), messages
    assert getattr(getattr(cfg, section), name) == new
    dumped = yaml.safe_load(cfg.dump(tmp_path / "config.yaml").read_text())
    assert dumped[section][name] == new
    with pytest.warns(DeprecationWarning, match=re.escape(key)):
        via_override = load_config("tiny", [f"{key}={old}"])
    assert via_override.to_dict() == load_config("tiny", [f"{key}={new}"]).to_dict()


def _behaviour(key: str, value: str) -> np.ndarray:
    """What the library function behind ``key`` does with ``value``, on an input where paper and release
    differ."""
    if key == "data.box_clipping":  # a box that starts left of the map
        corners = np.array([[[-20, 5], [40, 5], [-20, 25], [40, 25]]], float)
        return boxes_from_corners(corners, 64, value)
    if key == "data.flip_alignment":  # a flipped sample: the paper folds the mirror into the affine
        params = AffineParams(center=(70.0, 40.0), scale=0.9, rotation=12.0, flip=True)
        return np.stack(train_affines(params, 256, 64, value))
    if key == "loss.bbox_decode":  # an anchor off the diagonal: x and y swapped by the release
        ltrb = torch.tensor([[1.0, 2.0, 3.0, 4.0]], dtype=torch.float64)
        return decode_ltrb(ltrb, torch.tensor([5]), torch.tensor([9]), value).numpy()
    if key == "model.bbox_head_init":  # the release zeroes every conv of the head
        torch.manual_seed(0)
        mh = MultiHead(8, 3, emb_dim=4, bbox_head_init=value, neck_channels=8, neck_middle_channels=4,
                       head_channels=4, atrous_rates=(1, 2, 3))
        return torch.cat([p.detach().flatten() for p in mh.bbox_head.parameters()]).numpy()
    raise AssertionError(f"no behaviour probe for {key}")


@pytest.mark.parametrize("key, old, new", OLD, ids=OLD_IDS)
def test_old_spelling_behaves_exactly_as_the_new_word_in_the_library(key, old, new):
    with pytest.warns(DeprecationWarning, match=re.escape(repr(old))):
        got = _behaviour(key, old)
    want = _behaviour(key, new)
    np.testing.assert_array_equal(got, want)
    assert not np.array_equal(want, _behaviour(key, "release")), "the probe cannot tell paper from release"
    with pytest.raises(ValueError, match=key.split(".")[1].replace("bbox_", "") + ".*must be one of"):
        _behaviour(key, "papers")


def test_configs_the_kit_stored_in_the_old_words_load_silently(tmp_path):
    from boir_core.model.demo_weights import shipped_config, shipped_entry

    with warnings.catch_warnings():
        warnings.filterwarnings("error", category=DeprecationWarning, module=r"boir_core\.")
        for arch in ("boir", "cid"):
            stored = shipped_entry(arch)["config"]
            cfg = shipped_config(arch)
            for key, table in DEPRECATED_VALUES.items():
                section, name = key.split(".")
                was = stored[section][name]
                assert getattr(getattr(cfg, section), name) == table.get(was, was), (arch, key)
        # a kit checkpoint whose model config says bbox_head_init: working (written before the rename)
        model = BoIR(5, "hrnet_w18_small", inst_channels=8, emb_dim=8, train_heads=False)
        path = save_checkpoint(model, tmp_path / "old.pt")
        obj = torch.load(path, weights_only=True)
        obj["model_config"]["bbox_head_init"] = "working"
        torch.save(obj, path)
        assert load_model(path).config["bbox_head_init"] == "paper"


def test_shipped_configs_and_docs_use_the_new_words():
    with warnings.catch_warnings():
        warnings.filterwarnings("error", category=DeprecationWarning, module=r"boir_core\.")
        for path in sorted(configs_dir().rglob("*.yaml")):
            load_config(path)
    old = "|".join(sorted({o for _, o, _ in OLD}))
    pattern = re.compile(rf"(bbox_head_init|flip_alignment|box_clipping|bbox_decode)\W{{1,4}}({old})\b")
    offenders = []
    for folder in ("docs", "notebooks", "configs"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix in (".md", ".py", ".yaml") and pattern.search(path.read_text(encoding="utf-8")):
                offenders.append(str(path.relative_to(ROOT)))
    assert not offenders, f"old switch words in {offenders}"


def test_the_warning_is_shown_once_outside_pytest():
    code = ("from boir_core.config import Config\n"
            "for _ in range(3):\n"
            "    assert Config().override('data.box_clipping=correct').data.box_clipping == 'paper'\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("DeprecationWarning: data.box_clipping: 'correct' is deprecated") == 1, r.stderr


def _switch_table() -> dict[str, list[str]]:
    text = (ROOT / "docs" / "release_vs_paper.md").read_text(encoding="utf-8")
    section = text.split("\n## Switches\n", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, list[str]] = {}
    for line in section.splitlines():
        if not line.startswith("|"):
            continue
        cell = line.strip().strip("|").split("|")[-1]
        m = re.match(r"\s*`(\w+\.\w+)`:", cell)
        if m:
            rows[m.group(1)] = re.findall(r"`([^`]+)`", cell)[1:]
    return rows


def test_the_docs_switch_table_lists_exactly_the_values_the_config_accepts():
    rows = _switch_table()
    missing = set(RELEASE_PRESET) - set(rows)
    assert not missing, f"docs/release_vs_paper.md#switches has no row for {sorted(missing)}"
    for key, values in rows.items():
        assert len(values) == len(set(values)), f"{key}: {values} names a value twice"
        assert set(values) == _allowed(key), f"{key}: the table says {values}, the config accepts {_allowed(key)}"


def test_the_old_name_of_the_per_image_instance_cap_loads_with_a_warning(tmp_path):
    """data.max_instances became data.max_instances_per_image (loss.max_instances is the loss's cap)."""
    from boir_core.config import ConfigError, upgrade_config_dict

    f = tmp_path / "old.yaml"
    f.write_text(yaml.safe_dump({"base": str(configs_dir() / "tiny.yaml"), "data": {"max_instances": 7}}))
    with pytest.warns(DeprecationWarning, match=r"'data.max_instances'.*'data.max_instances_per_image'"):
        cfg = load_config(f)
    assert cfg.data.max_instances_per_image == 7 and cfg.loss.max_instances == 200
    assert yaml.safe_load(cfg.dump(tmp_path / "config.yaml").read_text())["data"]["max_instances_per_image"] == 7
    with pytest.warns(DeprecationWarning, match="data.max_instances"):
        assert load_config("tiny", ["data.max_instances=5"]).data.max_instances_per_image == 5
    with pytest.raises(ConfigError, match="both 'data.max_instances'"):
        Config.from_dict({"data": {"max_instances": 5, "max_instances_per_image": 6}})
    stored = Config().to_dict()
    stored["data"]["max_instances"] = stored["data"].pop("max_instances_per_image") - 1
    with warnings.catch_warnings():
        warnings.filterwarnings("error", category=DeprecationWarning, module=r"boir_core\.")
        assert Config.from_dict(upgrade_config_dict(stored)).data.max_instances_per_image == 199


def test_the_old_name_of_the_center_threshold_loads_with_a_warning(tmp_path):
    """test.keypoint_threshold became test.center_threshold (it thresholds the center scores): the old key loads
    from a file and an override with a warning naming both, a stored config is upgraded silently."""
    from boir_core.config import ConfigError, upgrade_config_dict

    f = tmp_path / "old.yaml"
    f.write_text(yaml.safe_dump({"base": str(configs_dir() / "tiny.yaml"), "test": {"keypoint_threshold": 0.2}}))
    with pytest.warns(DeprecationWarning, match=r"'test.keypoint_threshold'.*'test.center_threshold'"):
        cfg = load_config(f)
    assert cfg.test.center_threshold == 0.2
    assert "keypoint_threshold" not in yaml.safe_load(cfg.dump(tmp_path / "config.yaml").read_text())["test"]
    with pytest.warns(DeprecationWarning, match="test.keypoint_threshold"):
        assert load_config("tiny", ["test.keypoint_threshold=0.3"]).test.center_threshold == 0.3
    with pytest.raises(ConfigError, match="both 'test.keypoint_threshold'"):
        Config.from_dict({"test": {"keypoint_threshold": 0.1, "center_threshold": 0.2}})
    stored = Config().to_dict()
    stored["test"]["keypoint_threshold"] = stored["test"].pop("center_threshold") + 0.04
    with warnings.catch_warnings():
        warnings.filterwarnings("error", category=DeprecationWarning, module=r"boir_core\.")
        assert Config.from_dict(upgrade_config_dict(stored)).test.center_threshold == pytest.approx(0.05)


def test_the_old_name_of_the_steps_per_epoch_cap_loads_with_a_warning(tmp_path):
    """train.max_iters_per_epoch became train.max_steps_per_epoch ("step" everywhere): the old key loads from a file
    and an override with a warning naming both; a stored config (a run folder's, the shipped weights') is
    upgraded silently, so runs written before the rename still resume and evaluate."""
    from boir_core.config import upgrade_config_dict

    f = tmp_path / "old.yaml"
    f.write_text(yaml.safe_dump({"train": {"max_iters_per_epoch": 7}}))
    with pytest.warns(DeprecationWarning, match=r"'train.max_iters_per_epoch'.*'train.max_steps_per_epoch'"):
        assert load_config(f).train.max_steps_per_epoch == 7
    with pytest.warns(DeprecationWarning, match="train.max_iters_per_epoch"):
        assert load_config(f, ["train.max_iters_per_epoch=3"]).train.max_steps_per_epoch == 3
    stored = Config().to_dict()
    stored["train"]["max_iters_per_epoch"] = stored["train"].pop("max_steps_per_epoch") + 5
    with warnings.catch_warnings():
        warnings.filterwarnings("error", category=DeprecationWarning, module=r"boir_core\.")
        assert Config.from_dict(upgrade_config_dict(stored)).train.max_steps_per_epoch == 5
