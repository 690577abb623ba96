"""boir_core.paths: the kit's root is found wherever the process starts, and named paths are never replaced."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from boir_core import paths
from boir_core.config import load_config
from boir_core.engine.evaluation.runner import checkpoint_config

REPO = Path(__file__).resolve().parent.parent


def test_repo_root_is_this_checkout_from_any_working_folder(tmp_path, monkeypatch):
    monkeypatch.delenv(paths.ROOT_ENV, raising=False)
    assert paths.repo_root() == REPO
    monkeypatch.chdir(tmp_path)
    assert paths.repo_root() == REPO
    monkeypatch.chdir(REPO / "notebooks")  # where JupyterLab starts a notebook's kernel
    assert paths.resolve("data/synthcrowd") == REPO / "data" / "synthcrowd"
    assert paths.resolve("runs/x/../y") == REPO / "runs" / "y"


def test_resolve_keeps_absolute_paths_and_unset_values(tmp_path):
    assert paths.resolve(tmp_path / "a") == tmp_path / "a"
    assert paths.resolve(None) is None and paths.resolve("") is None
    assert paths.resolve("~/x") == Path.home() / "x"


def test_existing_names_the_missing_path(tmp_path):
    (tmp_path / "here.pt").write_bytes(b"x")
    assert paths.existing(tmp_path / "here.pt", "checkpoint") == tmp_path / "here.pt"
    with pytest.raises(paths.PathNotFound, match=r"checkpoint not found: runs/typo\.pt .*looked for .*runs/typo\.pt"):
        paths.existing("runs/typo.pt", "checkpoint")
    with pytest.raises(FileNotFoundError, match="image not found"):
        paths.existing(tmp_path / "nothing.jpg", "image")


def _fake_kit(tmp_path: Path) -> Path:
    root = tmp_path / "kit"
    (root / "configs").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[project]\nname = 'boir-kit'\n")
    return root


def test_root_from_environment_and_a_clear_error_for_a_wrong_one(tmp_path, monkeypatch):
    root = _fake_kit(tmp_path)
    monkeypatch.setenv(paths.ROOT_ENV, str(root))
    assert paths.repo_root() == root.resolve()
    assert paths.resolve("runs/a") == root.resolve() / "runs" / "a"
    monkeypatch.setenv(paths.ROOT_ENV, str(tmp_path / "elsewhere"))
    with pytest.raises(paths.PathNotFound, match="not a BoIR Kit folder"):
        paths.repo_root()


def test_default_checkpoint_is_the_shipped_demo_weights():
    from boir_core.model import demo_weights

    for arch in ("boir", "cid"):
        assert paths.default_checkpoint(arch) == demo_weights.shipped_checkpoint(arch)
        assert paths.default_checkpoint(arch).name == f"demo_{arch}.pt"


def test_default_checkpoint_is_make_demos_weights_when_none_are_shipped(tmp_path, monkeypatch):
    from boir_core.model import demo_weights

    monkeypatch.setattr(demo_weights, "WEIGHTS_DIR", tmp_path / "no_weights")  # a trimmed install
    root = _fake_kit(tmp_path)
    monkeypatch.setenv(paths.ROOT_ENV, str(root))
    assert paths.default_checkpoint("boir") is None and paths.default_checkpoint("cid") is None
    w = root / paths.DEMO_WEIGHTS
    w.parent.mkdir(parents=True)
    w.write_bytes(b"weights")
    assert paths.default_checkpoint() == w.resolve()
    assert paths.default_checkpoint("cid") is None  # the demo trains no CID
    with pytest.raises(ValueError, match="arch"):
        paths.default_checkpoint("hrnet")


def test_real_fixtures_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("BOIR_REAL_FIXTURES", str(tmp_path))
    assert paths.real_fixtures_dir() is None
    (tmp_path / "coco").mkdir()
    assert paths.real_fixtures_dir() == tmp_path.resolve()


def test_checkpoint_config_prefers_the_named_then_the_saved_config(tmp_path):
    from boir_core.model import build_model, save_checkpoint

    cfg = load_config("tiny", ["name=saved_inside", "model.emb_dim=4"])
    w = save_checkpoint(build_model(cfg, train=False), tmp_path / "w" / "final.pt", extra={"config": cfg.to_dict()})
    got = checkpoint_config(w, None, ["train.device=cpu"])
    assert (got.name, got.model.emb_dim, got.train.device) == ("saved_inside", 4, "cpu")
    # a run folder's config.yaml beside the weights wins over the copy inside
    load_config("tiny", ["name=beside"]).dump(tmp_path / "w" / "config.yaml")
    assert checkpoint_config(w).name == "beside"
    assert checkpoint_config(tmp_path / "w").name == "beside"  # a run folder means its final.pt
    assert checkpoint_config(w, "coco_w32").name == load_config("coco_w32").name  # named config wins
    bare = tmp_path / "bare.pt"
    torch.save({"state_dict": {}}, bare)
    assert checkpoint_config(bare, fallback="tiny").name == "tiny"
    with pytest.raises(FileNotFoundError, match="not found"):
        checkpoint_config(tmp_path / "missing.pt")


def test_checkout_root_says_what_needs_the_checkout_when_there_is_none(tmp_path, monkeypatch):
    monkeypatch.delenv(paths.ROOT_ENV, raising=False)
    assert paths.checkout_root("executing the notebooks") == REPO  # in a checkout: its root
    # an installed package (no pyproject.toml + configs/ beside it), run from a folder outside any checkout
    monkeypatch.setattr(paths, "__file__", str(tmp_path / "site-packages" / "boir_core" / "paths.py"))
    paths._find_root.cache_clear()
    monkeypatch.chdir(tmp_path)
    try:
        with pytest.raises(paths.NeedsCheckout, match=r"executing the notebooks needs a checkout of BoIR Kit .*"
                                                      r"site-packages/boir_core.*BOIR_KIT_ROOT.* try --other"):
            paths.checkout_root("executing the notebooks", "try --other")
        # inside a checkout the installed package finds it from the working folder
        monkeypatch.chdir(REPO / "notebooks")
        assert paths.checkout_root("x") == REPO
    finally:
        paths._find_root.cache_clear()


def test_inside_package_is_the_boir_core_folder_only(tmp_path):
    from boir_core.model.demo_weights import shipped_checkpoint

    assert paths.inside_package(shipped_checkpoint("boir"))
    assert paths.inside_package(paths.package_dir() / "configs" / "x.yaml")
    assert not paths.inside_package(tmp_path / "final.pt")
    assert not paths.inside_package(REPO / "runs" / "demo" / "final.pt")
