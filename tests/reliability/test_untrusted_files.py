"""Loading is data, never code: a weights file that would run code when unpickled is refused by every entry point
(docs/model.md#loading-is-data-never-code), before any of it runs, with a message naming the file and the command
that converts a trusted one; ``convert-checkpoint --trust`` converts a legitimate old file.

Each payload file is built here: a pickle whose ``__reduce__`` makes a marker folder when it is unpickled fully
(the first test shows each one does). Every refusal asserts the marker was not made.
"""
from __future__ import annotations

import os
import pickle
import random
import re

import cv2
import numpy as np
import pytest
import torch

from boir_core.__main__ import main
from boir_core.config import load_config
from boir_core.engine.evaluation.runner import checkpoint_config, load_inference_model, resolve_checkpoint
from boir_core.engine.training.checkpointing import FORMAT, OLD_FORMATS, load_training_state, set_rng_state
from boir_core.model import UnsafeCheckpointError, build_model, save_checkpoint
from boir_core.model.demo_weights import DemoRecord, export_demo_weights, shipped_checkpoint

SHAPES = ("bare", "weights", "train_state", "legacy")


class _Payload:
    """Unpickled fully, this makes the folder ``marker`` (what a stranger's file could do with any command)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from boir_core.data.sources.synthetic import SynthCrowdSpec, make_synthcrowd

    root = tmp_path_factory.mktemp("synthcrowd")
    make_synthcrowd(root, SynthCrowdSpec(num_train=4, num_val=2, seed=5, image_size=(96, 112), max_people=2))
    return root


def _args(synth):
    return [f"data.root={synth}", "train.device=cpu", "train.epochs=1", "train.max_steps_per_epoch=1"]


@pytest.fixture(scope="module")
def trained(synth, tmp_path_factory):
    """A real tiny run folder (one iteration): its ``final.pt`` and ``checkpoints/last.pt`` are valid files."""
    run = tmp_path_factory.mktemp("untrusted") / "run"
    assert main(["train", "--config", "tiny", "--run-dir", str(run), "--quiet", *_args(synth)]) == 0
    return run


@pytest.fixture()
def marker(tmp_path):
    return tmp_path / "PAYLOAD_RAN"


def _payload_file(shape: str, path, marker, trained):
    """Write a payload file of ``shape`` at ``path``: a bare pickle; our weights file with the payload in
    ``extra``; a valid training state with the payload in ``extra``; our weights in torch's legacy (non-zip)
    format with the payload inside."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if shape == "bare":
        with open(path, "wb") as f:
            pickle.dump(_Payload(marker), f)
        return path
    source = trained / ("checkpoints/last.pt" if shape == "train_state" else "final.pt")
    obj = torch.load(source, weights_only=True)  # the kit's own files read as data
    obj["extra"]["payload"] = _Payload(marker)
    torch.save(obj, path, _use_new_zipfile_serialization=shape != "legacy")
    return path


def _assert_refused(text: str, path, marker):
    assert not marker.exists(), "the payload ran"
    assert f"{path}: refused" in text, text
    assert "convert-checkpoint --trust" in text, text


@pytest.mark.parametrize("shape", SHAPES)
def test_each_payload_file_would_run_code_if_unpickled(shape, tmp_path, marker, trained):
    """The files the tests below feed the kit are live: a full unpickling runs the payload."""
    path = _payload_file(shape, tmp_path / "w.pt", marker, trained)
    if shape == "bare":
        with open(path, "rb") as f:
            pickle.load(f)
    else:
        torch.load(path, weights_only=False)
    assert marker.is_dir()


@pytest.mark.parametrize("shape", SHAPES)
def test_predict_refuses_every_payload_shape(shape, tmp_path, marker, trained, synth, capsys):
    path = _payload_file(shape, tmp_path / "w.pt", marker, trained)
    img = sorted((synth / "images" / "val").glob("*.jpg"))[0]
    out = tmp_path / "poses.json"
    assert main(["predict", "--config", "tiny", "--checkpoint", str(path), "--output", str(out), "--quiet", str(img),
                 *_args(synth)]) == 2
    _assert_refused(capsys.readouterr().err, path, marker)
    assert not out.exists() or not any(out.iterdir())  # checked writable before any work; no graph written


@pytest.mark.parametrize("holds", ["final.pt", "checkpoints/last.pt"])
def test_predict_refuses_a_run_folder_holding_a_payload(holds, tmp_path, marker, trained, synth, capsys):
    run = tmp_path / "planted_run"
    path = _payload_file("train_state" if "last" in holds else "weights", run / holds, marker, trained)
    img = sorted((synth / "images" / "val").glob("*.jpg"))[0]
    assert main(["predict", "--config", "tiny", "--checkpoint", str(run), "--output", str(tmp_path / "p.json"),
                 str(img), *_args(synth)]) == 2
    _assert_refused(capsys.readouterr().err, path, marker)


@pytest.mark.parametrize("with_config", [True, False])
def test_evaluate_refuses_a_payload(with_config, tmp_path, marker, trained, synth, capsys):
    path = _payload_file("train_state", tmp_path / "w.pt", marker, trained)
    # without --config: the built-in defaults (a W32 network), on the small data set
    config = ["--config", "tiny", *_args(synth)] if with_config else [f"data.root={synth}", "train.device=cpu"]
    assert main(["evaluate", "--checkpoint", str(path), "--out", str(tmp_path / "eval"), "--quiet", *config]) == 2
    _assert_refused(capsys.readouterr().err, path, marker)
    out = tmp_path / "eval"  # checked writable (created) before any work, and nothing written into it
    assert not out.exists() or not any(out.iterdir())


def test_export_refuses_a_payload(tmp_path, marker, trained, synth, capsys):
    path = _payload_file("legacy", tmp_path / "w.pt", marker, trained)
    out = tmp_path / "onnx"
    assert main(["export", "--config", "tiny", "--checkpoint", str(path), "--output", str(out), *_args(synth)]) == 2
    _assert_refused(capsys.readouterr().err, path, marker)
    assert not out.exists() or not any(out.iterdir())  # checked writable before any work; no graph written


def test_train_refuses_to_resume_from_a_planted_training_state(tmp_path, marker, trained, synth, capsys,
                                                                monkeypatch):
    """``runs/<name>/checkpoints/last.pt`` in the working folder: a valid state with the payload in ``extra``."""
    monkeypatch.chdir(tmp_path)
    path = _payload_file("train_state", tmp_path / "runs" / "victim" / "checkpoints" / "last.pt", marker, trained)
    before = path.read_bytes()
    assert main(["train", "--config", "tiny", "--quiet", "name=victim", "output_dir=runs", *_args(synth)]) == 2
    err = capsys.readouterr().err
    rel = path.relative_to(tmp_path)  # named as the run folder is: from the working folder
    _assert_refused(err, rel, marker)
    assert f"--trust {rel} -o {rel}" in err  # a run's state is converted in place, where resuming looks for it
    assert path.read_bytes() == before and not (path.parent.parent / "final.pt").exists()  # nothing overwritten
    clean = load_training_state(trained / "checkpoints" / "last.pt")  # the same state without the payload: valid
    assert clean["format"] == FORMAT and clean["global_iter"] == 1


def test_reproduce_preflight_refuses_a_payload_in_checkpoint_dir(tmp_path, marker, trained):
    from boir_core.data.profiles import get_profile
    from boir_core.paper.reproduce import PreflightError, ReproduceOptions, reproduce

    data, ckpts = tmp_path / "data", tmp_path / "checkpoints"
    prof = get_profile("coco")  # COCO val "present": the Table 3 rows on it check their weights first
    ann = prof.ann_file(data / "coco", "val")
    ann.parent.mkdir(parents=True)
    ann.write_text('{"images": [], "annotations": [], "categories": []}')
    prof.image_dir(data / "coco", "val").mkdir(parents=True)
    path = _payload_file("weights", ckpts / "boir_coco_w32.pth", marker, trained)
    with pytest.raises(PreflightError) as e:
        reproduce(3, ReproduceOptions(data_root=data, checkpoint_dir=ckpts, results_dir=tmp_path / "results",
                                      demo=False, demo_checkpoint=None), log=lambda m: None)
    _assert_refused(str(e.value), path, marker)
    assert not (tmp_path / "results").exists() or not list((tmp_path / "results").rglob("metrics.json"))


def test_the_notebooks_loaders_refuse_a_payload(tmp_path, marker, trained, synth):
    """Notebooks 05 and 07 load weights through checkpoint_config and load_inference_model."""
    path = _payload_file("weights", tmp_path / "w.pt", marker, trained)
    with pytest.raises(UnsafeCheckpointError) as e:
        checkpoint_config(path)
    _assert_refused(str(e.value), path, marker)
    cfg = load_config("tiny", _args(synth))
    with pytest.raises(UnsafeCheckpointError) as e:
        load_inference_model(cfg, path)
    _assert_refused(str(e.value), path, marker)


def test_exporting_demo_weights_refuses_a_payload(tmp_path, marker, trained):
    run = tmp_path / "run"
    path = _payload_file("weights", run / "final.pt", marker, trained)
    with pytest.raises(UnsafeCheckpointError) as e:
        export_demo_weights(run, "boir", DemoRecord("test"), weights_dir=tmp_path / "weights")
    _assert_refused(str(e.value), path, marker)
    assert not (tmp_path / "weights").exists()


def test_shipped_name_never_reads_a_local_file_of_that_name(tmp_path, marker, trained, synth, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    planted = _payload_file("weights", tmp_path / "shipped:boir", marker, trained)
    assert resolve_checkpoint("shipped:boir") == shipped_checkpoint("boir")  # the packaged, checksummed file
    img = tmp_path / "photo.jpg"
    cv2.imwrite(str(img), np.full((64, 80, 3), 127, np.uint8))
    out = tmp_path / "poses.json"
    assert main(["predict", "--checkpoint", "shipped:boir", "--output", str(out), "--quiet", str(img),
                 "train.device=cpu", "test.flip_test=false"]) == 0
    assert not marker.exists() and out.is_file()
    assert "shipped:boir was trained with" in capsys.readouterr().err  # the shipped weights' own config
    # the local file is named by a path, and then it is read as data like any other: refused
    assert main(["predict", "--config", "tiny", "--checkpoint", "./shipped:boir", "--output", str(out), str(img),
                 *_args(synth)]) == 2
    _assert_refused(capsys.readouterr().err, planted.relative_to(tmp_path), marker)


def test_convert_checkpoint_without_trust_reads_nothing(tmp_path, marker, trained, capsys):
    path = _payload_file("weights", tmp_path / "w.pt", marker, trained)
    assert main(["convert-checkpoint", str(path)]) == 2
    err = capsys.readouterr().err
    assert not marker.exists(), "the payload ran"
    assert str(path) in err and "--trust" in err and "runs any code" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.pt"]  # nothing written


def test_convert_checkpoint_trust_makes_an_old_weights_file_load_with_the_same_weights(tmp_path, synth, capsys):
    """A legitimate older file: our weights format with numpy values in ``extra`` (refused as it is)."""
    cfg = load_config("tiny", _args(synth))
    torch.manual_seed(0)
    model = build_model(cfg, train=False)
    old = save_checkpoint(model, tmp_path / "old.pt", extra={"config": cfg.to_dict(), "mean": np.array([0.5, 2.0]),
                                                              "epoch": np.int64(7)})
    with pytest.raises(UnsafeCheckpointError, match="numpy"):
        load_inference_model(cfg, old)
    assert main(["convert-checkpoint", "--trust", str(old)]) == 0
    new = tmp_path / "old.safe.pt"
    assert str(new) in capsys.readouterr().out
    obj = torch.load(new, weights_only=True)
    assert obj["extra"]["epoch"] == 7 and torch.equal(obj["extra"]["mean"], torch.tensor([0.5, 2.0],
                                                                                         dtype=torch.float64))
    loaded, report = load_inference_model(cfg, new)
    assert report.kind == "boir-kit"
    want, got = model.state_dict(), loaded.state_dict()
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)


def test_convert_checkpoint_trust_upgrades_an_old_training_state_in_place(tmp_path, trained):
    """An older kit's training state (numpy's random state as an array) is refused with the in-place
    conversion; converted, it loads and restores exactly the random streams the old one held."""
    state = torch.load(trained / "checkpoints" / "last.pt", weights_only=True)
    random.seed(11)
    np.random.seed(12)
    torch.manual_seed(13)
    state["format"] = OLD_FORMATS[0]
    state["rng"] = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    want = (random.random(), np.random.random(3).tolist(), torch.rand(3).tolist())
    path = tmp_path / "run" / "checkpoints" / "last.pt"
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    with pytest.raises(UnsafeCheckpointError, match=f"older BoIR Kit.*--trust {re.escape(str(path))} -o "):
        load_training_state(path)
    assert main(["convert-checkpoint", "--trust", str(path), "-o", str(path)]) == 0
    new = load_training_state(path)
    assert new["format"] == FORMAT and new["global_iter"] == state["global_iter"]
    assert all(torch.equal(new["model_state"][k], v) for k, v in state["model_state"].items())
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    set_rng_state(new["rng"])
    assert (random.random(), np.random.random(3).tolist(), torch.rand(3).tolist()) == want
