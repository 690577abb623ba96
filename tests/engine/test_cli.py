"""The command line end to end on a tiny SynthCrowd: train -> evaluate -> predict -> profile; bad input."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from boir_core.__main__ import main


@pytest.fixture(scope="module")
def trained(tiny_synth, tmp_path_factory):
    run = tmp_path_factory.mktemp("cli") / "run"
    rc = main(["train", "--config", "tiny", "--run-dir", str(run), "--quiet", f"data.root={tiny_synth}",
               "train.device=cpu", "train.epochs=1", "train.max_steps_per_epoch=2"])
    assert rc == 0
    return run


def test_train_writes_weights_config_and_metrics(trained):
    assert (trained / "final.pt").is_file() and (trained / "checkpoints" / "last.pt").is_file()
    assert (trained / "config.yaml").is_file() and (trained / "metrics.jsonl").is_file()


def test_evaluate_writes_a_metrics_json(trained, tiny_synth, tmp_path, capsys):
    rc = main(["evaluate", "--config", "tiny", "--checkpoint", str(trained), "--out", str(tmp_path),
               "--key", "demo_synthcrowd_val", "--quiet", f"data.root={tiny_synth}", "train.device=cpu"])
    assert rc == 0
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["dataset"] == "synthcrowd" and m["split"] == "val" and m["demo"] is True
    assert m["key"] == "demo_synthcrowd_val" and len(m["checkpoint"]["sha256"]) == 64
    assert 0.0 <= m["metrics"]["AP"] <= 1.0 and m["timings"]["network_ms"] > 0
    assert m["params"]["inference"] == m["params"]["total"] > 0  # the inference network was evaluated
    assert (tmp_path / "keypoints_synthcrowd_val_results.json").is_file()


def test_predict_images_folder_and_unreadable_input(trained, tiny_synth, tmp_path, capsys):
    imgs = sorted((tiny_synth / "images" / "val").glob("*.jpg"))[:2]
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    out = tmp_path / "out.json"
    # an unusable input is one error line and exit status 2; the other images keep their results
    rc = main(["predict", "--config", "tiny", "--checkpoint", str(trained / "final.pt"), "--output", str(out),
               "--draw", str(tmp_path / "drawn"), "--quiet", str(imgs[0]), str(bad), str(imgs[1]),
               f"data.root={tiny_synth}", "train.device=cpu"])
    assert rc == 2
    res = json.loads(out.read_text())
    assert isinstance(res, list) and {r["image_id"] for r in res} <= {0, 2}  # index in the argument list
    assert all(len(r["keypoints"]) == 17 * 3 and r["category_id"] == 1 for r in res)
    assert len(list((tmp_path / "drawn").glob("*.jpg"))) == 2
    err = capsys.readouterr().err
    assert f"error: {bad}: not an image" in err and "1 input(s) failed" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["predict", "--config", "tiny", "--checkpoint", str(trained), "--output", str(out), str(empty),
                 "train.device=cpu"]) == 2
    assert "holds no images" in capsys.readouterr().err


def test_profile_json(capsys):
    rc = main(["profile", "--config", "tiny", "--json", "--repeats", "1", "train.device=cpu"])
    assert rc == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["params"]["inference"] < res["params"]["total"]
    assert res["latency"]["network_ms"] > 0 and res["latency"]["decode_ms"] >= 0


def test_mistyped_config_key_is_named(capsys):
    assert main(["profile", "--config", "tiny", "--params-only", "model.backbon=hrnet_w32"]) == 2
    assert "model.backbon" in capsys.readouterr().err


def test_corrupt_checkpoint_is_a_clear_error(tiny_synth, tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00garbage")
    assert main(["evaluate", "--config", "tiny", "--checkpoint", str(bad), "--out", str(tmp_path), "--quiet",
                 f"data.root={tiny_synth}", "train.device=cpu"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    assert f"{bad}: cannot be read as a PyTorch checkpoint" in err and "convert-checkpoint" not in err


def test_predict_reads_video_frames(trained, tiny_synth, tmp_path):
    import cv2

    frames = [cv2.imread(str(p)) for p in sorted((tiny_synth / "images" / "val").glob("*.jpg"))[:2]]
    h, w = frames[0].shape[:2]
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5, (w, h))
    for f in frames:
        writer.write(cv2.resize(f, (w, h)))
    writer.release()
    from boir_core.config import load_config
    from boir_core.engine.inference.predict import iter_inputs, predict

    names = [name for name, img in iter_inputs([str(video)])]
    assert names == [f"{video}#frame0", f"{video}#frame1"]
    cfg = load_config("tiny", [f"data.root={tiny_synth}", "train.device=cpu"])
    report = predict(cfg, trained, [str(video)], output=tmp_path / "v.json")
    assert report["num_images"] == 2 and report["skipped"] == 0


def test_coco_test_dev_writes_the_upload_file(trained, tiny_synth, tmp_path, monkeypatch):
    """The COCO test split has no labels: evaluate writes the evaluation server's file, no metrics."""
    import boir_core.data.profiles as profiles
    from boir_core.config import load_config
    from boir_core.engine.evaluation.runner import run_evaluation

    coco_like = profiles.PROFILES["synthcrowd"].__class__(**{**profiles.PROFILES["synthcrowd"].__dict__,
                                                              "name": "coco"})
    monkeypatch.setitem(profiles.PROFILES, "coco", coco_like)  # SynthCrowd files under the COCO protocol
    cfg = load_config("tiny", [f"data.root={tiny_synth}", "train.device=cpu", "data.dataset=coco",
                               "data.test_split=test"])

    shutil.copy(tiny_synth / "annotations" / "person_keypoints_val.json",
                tiny_synth / "annotations" / "person_keypoints_test.json")
    shutil.copytree(tiny_synth / "images" / "val", tiny_synth / "images" / "test", dirs_exist_ok=True)
    out = run_evaluation(cfg, trained, out_dir=tmp_path, progress=False)
    assert out["metrics"] == {} and out["testdev_upload"].name == "person_keypoints_test-dev2017_boir_results.json"
    assert isinstance(json.loads(out["testdev_upload"].read_text()), list)
    m = json.loads(out["metrics_path"].read_text())
    assert m["split"] == "test-dev" and m["images"] == out["images"]  # as Table 1 names it


def test_predict_draws_only_confident_people_but_keeps_every_pose(trained, tiny_synth, tmp_path, monkeypatch):
    import boir_core.engine.inference.predict as predict_mod
    from boir_core.engine.inference.predict import DRAW_MIN_SCORE

    drawn_scores: list[list[float]] = []
    real = predict_mod.draw_poses

    def spy(image, poses, skeleton, **kw):  # what actually lands on the image
        out = real(image, poses, skeleton, **kw)
        drawn_scores.append([p["score"] for p in poses if p["score"] >= kw["min_score"]])
        return out

    monkeypatch.setattr(predict_mod, "draw_poses", spy)
    img = sorted((tiny_synth / "images" / "val").glob("*.jpg"))[0]
    args = ["predict", "--config", "tiny", "--checkpoint", str(trained), "--draw", str(tmp_path / "d"), "--quiet",
            str(img), f"data.root={tiny_synth}", "train.device=cpu", "test.center_threshold=0.0"]
    out = tmp_path / "all.json"
    assert main(args[:1] + ["--output", str(out), "--draw-min-score", "1.5"] + args[1:]) == 0
    assert len(json.loads(out.read_text())) > 0 and drawn_scores[-1] == []  # every pose kept, none drawn
    assert main(args[:1] + ["--output", str(out), "--draw-min-score", "0"] + args[1:]) == 0
    scores = sorted(r["score"] for r in json.loads(out.read_text()))
    assert sorted(drawn_scores[-1]) == scores
    assert main(args[:1] + ["--output", str(out)] + args[1:]) == 0  # the default threshold
    assert sorted(drawn_scores[-1]) == [s for s in scores if s >= DRAW_MIN_SCORE]


def test_draw_poses_leaves_out_people_below_min_score():
    from boir_core.viz.draw import draw_poses

    blank = np.zeros((60, 120, 3), np.uint8)
    left = {"keypoints": [10, 10, 1.0, 30, 50, 1.0], "score": 0.9}
    right = {"keypoints": [90, 10, 1.0, 110, 50, 1.0], "score": 0.02}
    out = draw_poses(blank, [left, right], [(0, 1)], min_score=0.5)
    assert out[:, :60].any() and not out[:, 60:].any()
    assert draw_poses(blank, [left, right], [(0, 1)])[:, 60:].any()  # min_score 0 draws both
    assert not blank.any()  # drawn on a copy


def test_shipped_weights_are_named_shipped_boir_and_shipped_cid(tmp_path, monkeypatch):
    from boir_core.engine.evaluation.runner import resolve_checkpoint
    from boir_core.model import CheckpointError
    from boir_core.model.demo_weights import shipped_arch, shipped_checkpoint

    assert resolve_checkpoint("shipped:boir") == shipped_checkpoint("boir")
    assert resolve_checkpoint("shipped:cid") == shipped_checkpoint("cid")
    assert shipped_arch("runs/demo/final.pt") is None and shipped_arch(tmp_path) is None
    with pytest.raises(CheckpointError, match=r"'shipped:hrnet'.*shipped:boir, shipped:cid"):
        resolve_checkpoint("shipped:hrnet")
    monkeypatch.chdir(tmp_path)  # a file of that name in the working folder is never consulted ...
    (tmp_path / "shipped:boir").write_bytes(b"x")
    assert resolve_checkpoint("shipped:boir") == shipped_checkpoint("boir")
    # ... it is named by a path: ./shipped:boir (or a Path)
    assert resolve_checkpoint("./shipped:boir").resolve() == (tmp_path / "shipped:boir").resolve()
    assert resolve_checkpoint(Path("shipped:boir")).resolve() == (tmp_path / "shipped:boir").resolve()


def test_evaluate_never_writes_into_the_package(tmp_path, monkeypatch):
    from boir_core.config import load_config
    from boir_core.engine.evaluation.runner import default_eval_dir

    cfg = load_config("tiny", ["name=t1", "output_dir=out"])
    assert default_eval_dir(cfg, "shipped:boir") == Path("out") / "t1" / "eval"  # from the working folder
    assert default_eval_dir(cfg, None) == Path("out") / "t1" / "eval"
    w = tmp_path / "run" / "final.pt"
    w.parent.mkdir()
    w.write_bytes(b"x")
    assert default_eval_dir(cfg, w) == w.parent / "eval"
    assert default_eval_dir(cfg, w.parent) == w.parent / "eval"


def test_cli_predict_with_the_shipped_weights_uses_their_config(tiny_synth, tmp_path, capsys):
    from boir_core.model.demo_weights import shipped_config

    img = sorted((tiny_synth / "images" / "val").glob("*.jpg"))[0]
    out = tmp_path / "p.json"
    assert main(["predict", "--checkpoint", "shipped:cid", "--output", str(out), str(img), "train.device=cpu",
                 "test.flip_test=false"]) == 0
    err = capsys.readouterr().err
    assert "shipped:cid was trained with" in err
    poses = json.loads(out.read_text())
    assert poses and all(len(p["keypoints"]) == 3 * 17 for p in poses)
    assert shipped_config("cid").model.arch == "cid"
    # with another --config the shipped weights do not fit: a clear error, not a silent partial load
    assert main(["predict", "--config", "tiny", "--checkpoint", "shipped:cid", "--output", str(out), str(img),
                 "train.device=cpu"]) == 2
    assert "error:" in capsys.readouterr().err


def test_missing_synthcrowd_is_generated_where_the_config_points_and_said(tmp_path, monkeypatch, capsys):
    from boir_core.config import load_config
    from boir_core.data.sources import synthetic
    from boir_core.engine.evaluation.runner import prepare_demo_data

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(synthetic, "DEFAULT_TRAIN", 2)  # the kit's defaults, made small for the test
    monkeypatch.setattr(synthetic, "DEFAULT_VAL", 1)
    cfg = load_config("tiny")  # data.root: data/synthcrowd, from the working folder
    said: list[str] = []
    assert prepare_demo_data(cfg, said.append) is True
    root = tmp_path / "data" / "synthcrowd"
    marker = json.loads((root / synthetic.MARKER_NAME).read_text())
    assert marker["args"]["num_train"] == 2 and marker["args"]["num_val"] == 1
    assert len(list((root / "images" / "val").glob("*.jpg"))) == 1
    assert str(root) in said[0] and "generating" in said[0] and "2 train + 1 val" in said[0]
    assert prepare_demo_data(cfg, said.append) is False and len(said) == 2  # there now: used as it is
    # an existing folder is never regenerated, whatever it holds; real data sets are never generated
    own = tmp_path / "mine"
    own.mkdir()
    assert prepare_demo_data(cfg.override(f"data.root={own}"), said.append) is False and not list(own.iterdir())
    assert prepare_demo_data(load_config("coco_w32", [f"data.root={tmp_path / 'coco'}"]), said.append) is False
    assert not (tmp_path / "coco").exists()
    monkeypatch.setenv("WORLD_SIZE", "2")  # torchrun: no racing writers, a clear error instead
    with pytest.raises(FileNotFoundError, match="under torchrun generate it first"):
        prepare_demo_data(cfg.override(f"data.root={tmp_path / 'other'}"), said.append)


def test_prepare_data_is_a_command_of_the_one_cli(tmp_path, capsys):
    """``boir prepare-data`` (and data_scripts/prepare_data.py, which calls it): the archive table, a verify of an
    empty root (incomplete: exit 1, the report names what is missing), an unknown data set (one error line,
    exit 2), two data sets to prepare at once (exit 2)."""
    from boir_core.__main__ import main
    from boir_core.data.sources.prepare import ARCHIVES

    assert main(["prepare-data", "list", "coco"]) == 0
    out = capsys.readouterr().out
    assert all(a.name in out for a in ARCHIVES["coco"]) and "crowdpose" not in out
    assert main(["prepare-data", "verify", "ochuman", "--root", str(tmp_path)]) == 1
    assert "ochuman" in capsys.readouterr().out
    assert main(["prepare-data", "cocoo", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown data set(s) cocoo" in err
    assert main(["prepare-data", "coco", "crowdpose", "--root", str(tmp_path)]) == 2
    assert "one data set at a time" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing prepared, nothing written


def test_ship_demo_is_a_command_of_the_one_cli(tmp_path, monkeypatch, capsys):
    """``boir ship-demo`` passes its arguments to :func:`boir_core.engine.jobs.ship_demo.ship` and prints the entry."""
    import json

    from boir_core.__main__ import main
    from boir_core.engine.jobs import ship_demo

    seen = {}

    def fake_ship(arch, config, run_dir, **kw):
        seen.update(kw, arch=arch, config=config, run_dir=run_dir)
        return {"file": "demo_cid.pt", "sha256": "ab", "bytes": 3, "metrics": {"AP": 0.5}, "other": 1}

    monkeypatch.setattr(ship_demo, "ship", fake_ship)
    curve = tmp_path / "curve.json"
    curve.write_text(json.dumps([{"steps": 10, "AP": 0.1}]))
    assert main(["ship-demo", "--arch", "cid", "--config", "c.yaml", "--run-dir", "runs/x", "--curve", str(curve)]) == 0
    assert seen == {"arch": "cid", "config": "c.yaml", "run_dir": "runs/x", "command": None,
                    "curve": [{"steps": 10, "AP": 0.1}], "weights_dir": None}
    assert json.loads(capsys.readouterr().out) == {"file": "demo_cid.pt", "sha256": "ab", "bytes": 3,
                                                   "metrics": {"AP": 0.5}}
    with pytest.raises(SystemExit) as e:  # a usage error: one line, exit status 2
        main(["ship-demo", "--arch", "hrnet", "--config", "c", "--run-dir", "r"])
    assert e.value.code == 2 and "invalid choice: 'hrnet'" in capsys.readouterr().err
