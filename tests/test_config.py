"""The typed config: YAML loading with base files, key=value overrides, clear errors, round trips."""
from pathlib import Path

import pytest
import yaml

from boir_core.config import Config, ConfigError, configs_dir, load_config

ALL_CONFIGS = sorted(configs_dir().glob("*.yaml")) + sorted((configs_dir() / "ablations").glob("*.yaml"))


def test_defaults_are_the_papers_method():
    cfg = Config()
    assert cfg.loss.weighting == "paper" and cfg.loss.bbox_mask_variant == "paper"
    assert cfg.model.bbox_head_init == "paper" and cfg.loss.bbox_decode == "paper"
    assert (cfg.train.lr, cfg.train.weight_decay, cfg.train.clip_grad) == (1e-3, 0.025, 10.0)


@pytest.mark.parametrize("path", ALL_CONFIGS, ids=lambda p: p.stem)
def test_every_shipped_config_loads_and_round_trips(path, tmp_path):
    cfg = load_config(path)
    assert cfg.name == path.stem
    out = cfg.dump(tmp_path / "config.yaml")
    again = load_config(out)
    assert again.to_dict() == cfg.to_dict()


def test_base_chain_and_override_order():
    cfg = load_config(configs_dir() / "coco_w48_testdev.yaml", ["train.epochs=3", "loss.beta=0.5"])
    assert cfg.model.backbone == "hrnet_w48" and cfg.model.inst_channels == 96  # from coco_w48
    assert cfg.data.test_split == "test" and cfg.data.input_size == 640
    assert cfg.train.epochs == 3 and cfg.loss.beta == 0.5
    assert load_config("ochuman_w32").test.center_pool_kernel == 11  # bare names resolve in configs/


def test_override_types_are_coerced_and_checked():
    cfg = Config().override("train.batch_size=4", "train.compile=true", "model.atrous_rates=[1,2,3]",
                            "train.transfer_from=none", "data.flip=0")
    assert cfg.train.batch_size == 4 and cfg.train.compile is True
    assert cfg.model.atrous_rates == [1, 2, 3] and cfg.train.transfer_from is None
    assert isinstance(cfg.data.flip, float)
    with pytest.raises(ConfigError, match="train.batch_size"):
        Config().override("train.batch_size=2.5")
    with pytest.raises(ConfigError, match="loss.bbox_mask_variant"):
        Config().override("loss.bbox_mask_variant=release-everything")
    with pytest.raises(ConfigError, match="train.amp"):
        Config().override("train.amp=fp8")
    with pytest.raises(ConfigError, match="not of the form"):
        Config().override("train.epochs")


def test_unknown_keys_are_named_with_a_suggestion(tmp_path):
    with pytest.raises(ConfigError, match=r"'train.epohcs'.*did you mean 'train.epochs'"):
        Config().override("train.epohcs=3")
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"model": {"backbone": "hrnet_w32", "bbox_head_int": "release"}}))
    with pytest.raises(ConfigError, match=r"bad.yaml.*'model.bbox_head_int'.*'model.bbox_head_init'"):
        load_config(bad)


def test_broken_files_are_named(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("model: [unclosed")
    with pytest.raises(ConfigError, match="broken.yaml: invalid YAML"):
        load_config(broken)
    loop = tmp_path / "loop.yaml"
    loop.write_text("base: loop.yaml\n")
    with pytest.raises(ConfigError, match="circular"):
        load_config(loop)


def test_dump_is_atomic_and_printable(tmp_path):
    cfg = Config()
    p = cfg.dump(tmp_path / "sub" / "config.yaml")
    assert p.exists() and not list(p.parent.glob("*.tmp"))
    assert "bbox_mask_variant: paper" in str(cfg)
    assert cfg.num_keypoints == 17 and cfg.override("data.dataset=crowdpose").num_keypoints == 14


# ---- presets ---------------------------------------------------------------------------------------

# the release switches (six at first, then the dummy instance: docs/release_vs_paper.md#dummy-instance)
SIX = {"model.bbox_head_init": "release", "loss.bbox_mask_variant": "release-image", "loss.bbox_decode": "release",
       "loss.weighting": "release", "data.flip_alignment": "release", "data.box_clipping": "release",
       "loss.dummy_instance": "release"}
PAPER_SIDE = {"model.bbox_head_init": "paper", "loss.bbox_mask_variant": "paper", "loss.bbox_decode": "paper",
              "loss.weighting": "paper", "data.flip_alignment": "paper", "data.box_clipping": "paper",
              "loss.dummy_instance": "paper"}


def _switches(cfg):
    d = cfg.to_dict()
    return {k: d[k.split(".")[0]][k.split(".")[1]] for k in SIX}


def test_release_preset_turns_on_the_six_release_behaviours_at_once():
    from boir_core.config import preset_label

    paper = load_config("coco_w32")
    assert paper.preset == "paper" and _switches(paper) == PAPER_SIDE and preset_label(paper) == "paper"
    rel = load_config("coco_w32", ["preset=release"])
    assert rel.preset == "release" and _switches(rel) == SIX and preset_label(rel) == "release"
    # the same through Config.override and through a YAML field
    assert _switches(paper.override("preset=release")) == SIX
    assert _switches(rel.override("preset=paper")) == PAPER_SIDE
    # every other field is untouched
    a, b = paper.to_dict(), rel.to_dict()
    for section in ("data", "model", "loss"):
        for k in a[section]:
            if f"{section}.{k}" not in SIX:
                assert a[section][k] == b[section][k], k


def test_explicit_keys_win_over_the_preset_in_any_order(tmp_path):
    from boir_core.config import preset_label

    for items in (["preset=release", "loss.weighting=paper"], ["loss.weighting=paper", "preset=release"]):
        cfg = load_config("coco_w32", items)
        assert cfg.loss.weighting == "paper" and cfg.data.flip_alignment == "release"
        assert preset_label(cfg) == "release + loss.weighting=paper"
        assert Config().override(*items).loss.weighting == "paper"
    # a switch written in the YAML file wins too: the demo keeps its release weighting under the paper preset
    demo = load_config("demo")
    assert demo.preset == "paper" and demo.loss.weighting == "release"
    assert preset_label(demo) == "paper + loss.weighting=release"
    yml = tmp_path / "mine.yaml"
    yml.write_text("base: " + str(configs_dir() / "coco_w32.yaml") + "\nname: mine\npreset: release\n"
                   "data:\n  box_clipping: paper\n")
    mine = load_config(yml)
    assert mine.data.box_clipping == "paper" and mine.loss.bbox_decode == "release"
    with pytest.raises(ConfigError, match="preset='releases'"):
        load_config("coco_w32", ["preset=releases"])


def test_resolved_config_records_the_preset_and_reloads_identically(tmp_path):
    cfg = load_config("crowdpose_w32_finetune", ["preset=release"])
    # the released finetune yaml used the per-instance algorithm (BG_SAMPLE_LEVEL absent -> 0)
    assert cfg.loss.bbox_mask_variant == "release-instance" and cfg.loss.weighting == "release"
    assert load_config("crowdpose_w32_finetune").loss.bbox_mask_variant == "paper"
    dumped = cfg.dump(tmp_path / "config.yaml")
    text = dumped.read_text()
    assert "preset: release" in text
    again = load_config(dumped)
    assert again.to_dict() == cfg.to_dict()


def test_paper_is_the_word_for_the_paper_side_of_every_switch():
    cfg = Config().override("model.bbox_head_init=paper", "data.flip_alignment=paper", "data.box_clipping=paper",
                            "loss.bbox_decode=paper")
    assert (cfg.model.bbox_head_init, cfg.data.flip_alignment, cfg.data.box_clipping, cfg.loss.bbox_decode) == \
        ("paper", "paper", "paper", "paper")
    with pytest.warns(DeprecationWarning, match="model.bbox_head_init"):  # the old spelling: stored as paper
        assert Config().override("model.bbox_head_init=working").model.bbox_head_init == "paper"
    with pytest.raises(ConfigError, match="data.box_clipping"):
        Config().override("data.box_clipping=papers")


def test_amp_off_is_accepted_from_yaml_and_overrides(tmp_path):
    """YAML 1.1 reads a bare `off` as False: `train.amp=off` and `amp: off` must still mean "off"."""
    from boir_core.config import configs_dir, load_config

    assert load_config("tiny", ["train.amp=off"]).train.amp == "off"
    f = tmp_path / "c.yaml"
    f.write_text(f"base: {configs_dir() / 'tiny.yaml'}\ntrain:\n  amp: off\n")
    assert load_config(f).train.amp == "off"
    with pytest.raises(Exception, match="train.amp"):
        load_config("tiny", ["train.amp=true"])  # "on" is no amp mode: still an error naming the key


def test_configs_ship_inside_the_package_and_the_checkouts_configs_links_there():
    import boir_core

    pkg = Path(boir_core.__file__).resolve().parent
    assert configs_dir() == pkg / "configs"
    root_link = Path(__file__).resolve().parents[1] / "configs"
    assert root_link.is_symlink() and root_link.resolve() == configs_dir()  # one copy of every YAML
    assert (configs_dir() / "coco_w32.yaml").is_file() and (configs_dir() / "ablations" / "t4_full.yaml").is_file()


def test_configs_are_found_by_name_from_any_folder(tmp_path, monkeypatch):
    from boir_core.config import config_names, find_config

    monkeypatch.chdir(tmp_path)  # no configs/ here
    by_path = load_config(configs_dir() / "ablations" / "t7_beta_0.5.yaml").to_dict()
    for name in ("t7_beta_0.5", "ablations/t7_beta_0.5", "t7_beta_0.5.yaml", "ablations/t7_beta_0.5.yaml"):
        assert find_config(name) == configs_dir() / "ablations" / "t7_beta_0.5.yaml", name
    assert load_config("t7_beta_0.5").to_dict() == load_config("ablations/t7_beta_0.5").to_dict() == by_path
    assert load_config("coco_w32.yaml").to_dict() == load_config(configs_dir() / "coco_w32.yaml").to_dict()
    names = config_names()
    assert "coco_w32" in names and "ablations/t4_full" in names
    assert len(names) == len(ALL_CONFIGS)
    for bad in ("../coco_w32", "/coco_w32", "other/coco_w32", "ablations/coco_w32", "nothing"):
        assert find_config(bad) is None, bad
    # a file of the same name in the working folder wins over the kit's config
    (tmp_path / "coco_w32.yaml").write_text("base: tiny\nname: local\n")
    assert load_config("coco_w32.yaml").name == "local" and load_config("coco_w32").name == "coco_w32"


def test_a_missing_config_names_the_file_the_folder_and_what_exists(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"config file not found: coco_w23 .*no config of that name in .*configs"
                                          r".*did you mean coco_w32"):
        load_config("coco_w23")
    with pytest.raises(ConfigError, match=r"the kit's configs: cid_coco_w32, .*ablations/t4_full"):
        load_config("zzz")
    # a checkout's path used outside the checkout: the message gives the name that works
    with pytest.raises(ConfigError, match=r"configs/coco_w32\.yaml .*--config coco_w32\)"):
        load_config("configs/coco_w32.yaml")
    with pytest.raises(ConfigError, match=r"--config t4_full"):
        load_config("configs/ablations/t4_full.yaml")


def test_base_is_a_file_beside_or_the_name_of_a_kit_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    coco = load_config("coco_w32")
    for base in ("coco_w32", "coco_w32.yaml", str(configs_dir() / "coco_w32.yaml")):
        (tmp_path / "mine.yaml").write_text(f"base: {base}\nname: mine\nloss:\n  beta: 5.0\n")
        mine = load_config("mine.yaml")
        assert mine.to_dict() == coco.override("name=mine", "loss.beta=5.0").to_dict(), base
    # a file beside the YAML wins over the kit's config of that name
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "coco_w32.yaml").write_text("base: tiny\nname: local_base\n")
    (tmp_path / "sub" / "mine.yaml").write_text("base: coco_w32.yaml\nname: mine\n")
    assert load_config(tmp_path / "sub" / "mine.yaml").model.emb_dim == load_config("tiny").model.emb_dim
    # an ablation name works as a base too; and a wrong base is named with both places looked at
    (tmp_path / "abl.yaml").write_text("base: t7_dim_16\nname: abl\n")
    assert load_config("abl.yaml").model.emb_dim == 16
    (tmp_path / "bad.yaml").write_text("base: coco_w23\nname: bad\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: key 'base': 'coco_w23' is neither a file .*coco_w23 does "
                                          r"not exist.* nor the name of one of the kit's configs"):
        load_config("bad.yaml")
    (tmp_path / "bad2.yaml").write_text("base: [1, 2]\n")
    with pytest.raises(ConfigError, match=r"bad2\.yaml: key 'base'"):
        load_config("bad2.yaml")


def test_the_backend_and_data_set_choices_come_from_the_one_table_of_names():
    """``test.backend`` accepts exactly the backends the engine can run, ``data.dataset`` exactly the registry's
    data sets, and ``num_keypoints`` is the registry's K; a name outside them is refused, naming the choices."""
    import typing

    from boir_core.config import BACKENDS, DATASET_KEYPOINTS, TestConfig
    from boir_core.config.schema import DataConfig
    from boir_core.engine.inference import backends

    assert backends.BACKENDS is BACKENDS == ("exact", "torch", "onnxruntime", "openvino", "onnxruntime_int8")
    # Optional: unset (None) means the command's default (docs/inference.md#exact-and-fast-inference)
    literal, none = typing.get_args(typing.get_type_hints(TestConfig)["backend"])
    assert typing.get_args(literal) == BACKENDS and none is type(None) and TestConfig().backend is None
    assert Config().override("test.backend=exact").test.backend == "exact"
    assert Config().override("test.backend=exact", "test.backend=null").test.backend is None
    # the registry's data sets, then "custom" (a keypoint set from its own file, K from it: boir_core.data.custom)
    assert typing.get_args(typing.get_type_hints(DataConfig)["dataset"]) == (*DATASET_KEYPOINTS, "custom")
    for name, k in DATASET_KEYPOINTS.items():
        assert Config().override(f"data.dataset={name}").num_keypoints == k
    with pytest.raises(ConfigError, match=r"test.backend='tensorrt' is not one of \['exact', 'torch', 'onnxruntime'"):
        Config().override("test.backend=tensorrt")
    cfg = Config()
    cfg.data.dataset = "mpii"  # set by hand, past the type check
    with pytest.raises(ConfigError, match=r"data.dataset='mpii' is not one of \['coco'"):
        cfg.num_keypoints
