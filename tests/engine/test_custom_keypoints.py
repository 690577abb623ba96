"""``data.dataset=custom``: a keypoint set described by its COCO-format file alone trains, evaluates, predicts
(drawing with the file's skeleton) and exports through the command line, for K = 5 and K = 21, with no code
change (docs/custom_keypoints.md)."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from custom_kp_builders import ANIMAL5_NAMES, ANIMAL5_SKELETON_1BASED, BODY21_NAMES, convert_synthcrowd

from boir_core.__main__ import main
from boir_core.config import load_config
from boir_core.data import KeypointDataset, profile_for
from boir_core.data.custom import DEFAULT_SIGMA
from boir_core.data.profiles import COCO_FLIP_INDEX

# 64 px input: the smallest the network takes (its maps must survive HRNet's four downsamplings)
TINY = ["data.input_size=64", "data.output_size=16", "train.device=cpu", "data.workers=0",
        "data.dataset=custom", "test.max_proposals=5", "test.center_threshold=0"]


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    from boir_core.data.sources.synthetic import SynthCrowdSpec, make_synthcrowd

    src = tmp_path_factory.mktemp("synth")
    make_synthcrowd(src, SynthCrowdSpec(num_train=3, num_val=2, seed=5, image_size=(96, 128), max_people=2))
    return {k: convert_synthcrowd(src, tmp_path_factory.mktemp(f"k{k}"), k) for k in (5, 21)}


def test_the_profile_comes_from_the_file(sets):
    """K, names and skeleton from the file's categories (1-based -> 0-based), flip pairs from the names,
    sigmas the stated default; the training samples carry K channels and flip by the inferred index."""
    cfg5 = load_config("tiny", [*TINY, f"data.root={sets[5]}"])
    p5 = profile_for(cfg5)
    assert p5.keypoints == ANIMAL5_NAMES and p5.num_keypoints == 5
    assert p5.skeleton == tuple((a - 1, b - 1) for a, b in ANIMAL5_SKELETON_1BASED)
    assert p5.flip_index == (0, 2, 1, 4, 3)
    assert p5.sigmas == (DEFAULT_SIGMA,) * 5 and abs(DEFAULT_SIGMA - 1.138 / 17) < 1e-12
    p21 = profile_for(load_config("tiny", [*TINY, f"data.root={sets[21]}"]))
    assert p21.keypoints == BODY21_NAMES and p21.flip_index == (*COCO_FLIP_INDEX, 17, 18, 20, 19)
    s = KeypointDataset.from_config(cfg5, train=True)[0]
    assert s["multi_heatmap"].shape == (6, 16, 16) and s["instance_heatmap"].shape[1] == 5


def test_the_config_overrides_the_file(sets):
    """Names (same count), skeleton and flip pairs given as names, sigmas: the config's win."""
    cfg = load_config("tiny", [*TINY, f"data.root={sets[5]}", "data.keypoints.names=[a,b,c,d,e]",
                               "data.keypoints.skeleton=[[a,e]]", "data.keypoints.flip_pairs=[[b,d]]",
                               "data.keypoints.sigmas=[0.1,0.2,0.3,0.4,0.5]"])
    p = profile_for(cfg)
    assert p.keypoints == ("a", "b", "c", "d", "e") and p.skeleton == ((0, 4),) and p.flip_index == (0, 3, 2, 1, 4)
    assert p.sigmas == (0.1, 0.2, 0.3, 0.4, 0.5) and cfg.num_keypoints == 5


@pytest.mark.parametrize("k", [5, 21])
def test_train_evaluate_predict_draw_export(sets, k, tmp_path, capsys):
    root = sets[k]
    run = tmp_path / "run"
    over = [*TINY, f"data.root={root}"]
    assert main(["train", "--config", "tiny", "--run-dir", str(run), "--quiet", *over, "train.epochs=1",
                 "train.max_iters_per_epoch=1", "train.batch_size=2"]) == 0
    assert torch.load(run / "final.pt", map_location="cpu", weights_only=True)  # the run wrote its weights
    assert main(["evaluate", "--config", "tiny", "--checkpoint", str(run), "--out", str(tmp_path / "eval"), "--quiet",
                 *over]) == 0
    m = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert m["dataset"] == "custom" and set(m["metrics"]) >= {"AP", "AR"} and m["images"] == 2
    res = json.loads(next((tmp_path / "eval").glob("keypoints_custom_val_results.json")).read_text())
    assert all(len(r["keypoints"]) == 3 * k for r in res)
    # predict and draw with the file's skeleton
    img = next((root / "images" / "val").iterdir())
    out, draw = tmp_path / "pred.json", tmp_path / "drawn"
    assert main(["predict", "--config", "tiny", "--checkpoint", str(run), "--output", str(out), "--draw", str(draw),
                 "--draw-min-score", "0", "--quiet", str(img), *over]) == 0
    poses = json.loads(out.read_text())
    assert poses and all(len(p["keypoints"]) == 3 * k for p in poses)
    drawn = cv2.imread(str(next(draw.iterdir())))
    assert drawn is not None and drawn.shape[:2] == cv2.imread(str(img)).shape[:2]
    assert np.abs(drawn.astype(int) - cv2.imread(str(img)).astype(int)).max() > 0  # something was drawn
    # export: the graphs give K channels; the deployment folder's deploy.json names the file's keypoints
    pytest.importorskip("onnx")
    assert main(["export", "--config", "tiny", "--checkpoint", str(run), "--output", str(tmp_path / "onnx"),
                 *over]) == 0
    meta = json.loads((tmp_path / "onnx" / "meta.json").read_text())
    settings = json.loads((tmp_path / "onnx" / "deploy.json").read_text())
    prof = profile_for(load_config("tiny", over))
    assert meta["num_keypoints"] == k and settings["keypoints"] == list(prof.keypoints)
    assert settings["decode"]["flip_index"] == list(prof.flip_index) and len(settings["skeleton"]) == len(prof.skeleton)


def test_a_custom_set_without_categories_is_named(sets, tmp_path, capsys):
    """No categories in the file: the CLI's one error line names the file and what to add."""
    ann = tmp_path / "annotations" / "train.json"
    ann.parent.mkdir()
    data = json.loads((sets[5] / "annotations" / "train.json").read_text())
    del data["categories"]
    ann.write_text(json.dumps(data))
    assert main(["train", "--config", "tiny", "--run-dir", str(tmp_path / "run"), "--quiet", *TINY,
                 f"data.root={tmp_path}"]) != 0
    err = capsys.readouterr().err
    assert str(ann) in err and "no 'categories'" in err and "data.keypoints.names" in err


def test_the_docs_example_config_loads_and_describes_the_five_point_set(sets, tmp_path):
    """docs/custom_keypoints.md's YAML (data.root pointed at the K = 5 set) gives the file's keypoints, its
    skeleton, the inferred flip pairs and the config's sigmas."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "custom_keypoints.md").read_text(encoding="utf-8")
    block = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    assert "root: data/dogs" in block
    (tmp_path / "dogs.yaml").write_text(block.replace("root: data/dogs", f"root: {sets[5]}"))
    cfg = load_config(str(tmp_path / "dogs.yaml"))
    p = profile_for(cfg)
    assert cfg.name == "dogs" and cfg.num_keypoints == 5 and p.keypoints == ANIMAL5_NAMES
    assert p.flip_index == (0, 2, 1, 4, 3) and p.sigmas == (0.05, 0.08, 0.08, 0.08, 0.08)
    assert p.skeleton == tuple((a - 1, b - 1) for a, b in ANIMAL5_SKELETON_1BASED)
