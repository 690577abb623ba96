"""INT8 post-training quantisation (boir_core.engine.inference.quantize): what it calibrates on, what it writes,
how close it stays to fp32, and the two ways users reach it (test.backend=onnxruntime_int8, boir export --int8)."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
import onnx  # noqa: E402
from test_backends import small  # noqa: E402

from boir_core.data import KeypointDataset  # noqa: E402
from boir_core.data.errors import DataError  # noqa: E402
from boir_core.engine.inference.backends import OnnxRuntimeRunner, make_runner  # noqa: E402
from boir_core.engine.inference.export import onnx_graphs  # noqa: E402
from boir_core.engine.inference.quantize import calibration_inputs, folder_images, quantize_dense  # noqa: E402
from boir_core.model.demo_weights import shipped_config  # noqa: E402


def _ops(graph: bytes) -> set[str]:
    return {n.op_type for n in onnx.load_from_string(graph).graph.node}


def test_calibration_reads_train_images_as_decoding_feeds_them(tiny_cfg):
    """Each calibration input is a train-split image as the test-time pipeline makes it (never the scored split),
    beside its mirror when flip_test is on; spread over the split; one view without flip_test."""
    train = KeypointDataset.from_config(tiny_cfg, split=tiny_cfg.data.train_split, train=False)
    inputs = calibration_inputs(tiny_cfg, count=3)
    assert len(inputs) == 3 and len(train) == 8
    picked = [0, 2, 4]  # 8 images, 3 wanted: every second one from the start (len // count = 2)
    for x, i in zip(inputs, picked):
        ref = train.load_test(i)["image"].numpy()
        assert x.dtype == np.float32 and x.shape == (2, *ref.shape)
        np.testing.assert_array_equal(x[0], ref)
        np.testing.assert_array_equal(x[1], ref[..., ::-1])
    one = calibration_inputs(tiny_cfg.override("test.flip_test=false", "test.calibration_images=2"))
    assert len(one) == 2 and one[0].shape[0] == 1
    with pytest.raises(ValueError, match="calibration_images must be at least 1"):
        calibration_inputs(tiny_cfg, count=0)


def test_calibration_folder_errors_name_the_folder_or_file(tmp_path, tiny_cfg):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "nope")):
        folder_images(tmp_path / "nope", 4)
    with pytest.raises(ValueError, match="holds no images"):
        folder_images(tmp_path, 4)
    (tmp_path / "b.jpg").write_bytes(b"not a picture")
    with pytest.raises(ValueError, match="b.jpg cannot be read"):
        folder_images(tmp_path, 4)
    (tmp_path / "b.jpg").unlink()
    rng = np.random.default_rng(0)
    for name, size in (("a.png", (90, 120)), ("sub/c.jpg", (140, 70))):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        cv2.imwrite(str(tmp_path / name), rng.integers(0, 255, (*size, 3), dtype=np.uint8))
    imgs = folder_images(tmp_path, 4)  # sorted by path, nested folders included
    assert [i.shape[:2] for i in imgs] == [(90, 120), (140, 70)]
    x = calibration_inputs(tiny_cfg, count=1, folder=tmp_path)
    assert len(x) == 1 and min(x[0].shape[-2:]) == tiny_cfg.data.input_size


def test_data_missing_for_calibration_says_what_to_do(tmp_path, tiny_cfg):
    with pytest.raises(DataError, match="--calibration DIR"):
        calibration_inputs(tiny_cfg.override(f"data.root={tmp_path}"))


def _scene_inputs(seeds, input_size=128):
    """SynthCrowd scenes as the network sees them at test time: [2, 3, H', W'] (the scene and its mirror)."""
    from boir_core.data.sources.synthetic import render_scene
    from boir_core.data.transforms import eval_input
    from boir_core.deploy.decode_np import network_views

    out = []
    for i, seed in enumerate(seeds):
        rgb = np.ascontiguousarray(render_scene([11, seed], 176 + 16 * i, 144, max_people=5).image[:, :, ::-1])
        out.append(network_views(eval_input(rgb, input_size).image, True))
    return out


def test_quantised_dense_graph_is_int8_deterministic_and_close_to_fp32():
    """The shipped BoIR's dense graph gets QDQ nodes around int8 weights; the same calibration gives the same
    bytes; on scenes it was not calibrated on, its features and center logits stay close to the fp32 graph's."""
    from boir_core.engine.inference.weights import load_inference_model

    model, _ = load_inference_model(shipped_config("boir"), "shipped:boir", "cpu")
    graphs = onnx_graphs(model)
    q = quantize_dense(graphs["dense"], _scene_inputs([0, 1, 2]))
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= _ops(q)
    assert "QuantizeLinear" not in _ops(graphs["dense"])
    weights = [t for t in onnx.load_from_string(q).graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert len(weights) >= 20  # every convolution's weights stored in 8 bits
    assert len(q) < 0.6 * len(graphs["dense"])
    assert quantize_dense(graphs["dense"], _scene_inputs([0, 1, 2])) == q
    fp32 = OnnxRuntimeRunner(model, graphs=graphs)
    int8 = OnnxRuntimeRunner(model, graphs={**graphs, "dense": q})
    for x in _scene_inputs([5, 6], input_size=160):  # other scenes, another size
        (fa, ca), (fb, cb) = fp32.dense(torch.from_numpy(x)), int8.dense(torch.from_numpy(x))
        rel = float((fb - fa).norm() / fa.norm())
        corr = np.corrcoef(ca.flatten().numpy(), cb.flatten().numpy())[0, 1]
        assert 0 < rel < 0.08, rel  # measured 0.03
        assert corr > 0.99, corr  # measured 0.999


def test_int8_backend_calibrates_on_the_configs_train_images(tiny_synth):
    """make_runner with neither a config nor calibration inputs refuses; given the config (as the Predictor gives
    it), the backend's builder calibrates on test.calibration_images train images, and the shipped BoIR's
    people decode about where exact finds them."""
    from boir_core.engine.inference.predictor import BackendChoice, Predictor

    model = small("boir")
    with pytest.raises(ValueError, match="needs calibration inputs"):
        make_runner("onnxruntime_int8", model)
    cfg = shipped_config("boir").override(f"data.root={tiny_synth}", "test.calibration_images=2")
    q = Predictor(cfg, "shipped:boir", backend=BackendChoice("onnxruntime_int8"))
    assert q.runner.name == "onnxruntime_int8" and "int8 (dense graph, 2 calibration images)" in q.variant
    e = Predictor(cfg, "shipped:boir", model=q.model)
    val = KeypointDataset.from_config(cfg, train=False)
    moved = []
    for i in range(len(val)):
        s = val[i]
        a, b = e(s["image"], s["meta"]).poses, q(s["image"], s["meta"]).poses
        assert a and b
        ka = np.array([p["keypoints"] for p in a]).reshape(len(a), -1, 3)[..., :2]
        kb = np.array([p["keypoints"] for p in b]).reshape(len(b), -1, 3)[..., :2]
        best = np.linalg.norm(ka[:, None] - kb[None], axis=-1).mean(-1).min(1)  # each exact pose's nearest
        moved += best[np.argsort([-p["score"] for p in a])][:3].tolist()  # the three most confident people
    assert np.median(moved) < 3.0, moved  # image pixels; a 4 px map cell of this 128 px model is ~4-8 px


def test_export_int8_writes_a_deployment_that_runs(tmp_path, tiny_synth):
    from boir_core.__main__ import main
    from boir_core.deploy import BoirDeployment

    img = np.ascontiguousarray(cv2.imread(str(next((tiny_synth / "images" / "val").glob("*.*"))))[:, :, ::-1])
    calib = tmp_path / "calib"
    calib.mkdir()
    cv2.imwrite(str(calib / "one.jpg"), img[:, :, ::-1])
    out = tmp_path / "int8"
    assert main(["export", "--checkpoint", "shipped:boir", "--calibration", str(calib), "-o", str(out)]) == 2
    assert not out.exists()  # --calibration without --int8: refused before anything is written
    assert main(["export", "--checkpoint", "shipped:boir", "--int8", "--calibration", str(tmp_path / "none"),
                 "-o", str(out)]) == 2
    assert not out.exists()
    assert main(["export", "--checkpoint", "shipped:boir", "--int8", "--calibration", str(calib),
                 "-o", str(out)]) == 0
    settings = json.loads((out / "deploy.json").read_text())
    assert settings["dense_precision"] == {"precision": "int8", "calibration_images": 1,
                                                     "calibration": str(calib)}
    assert "QuantizeLinear" in _ops((out / "dense.onnx").read_bytes())
    assert "QuantizeLinear" not in _ops((out / "instance.onnx").read_bytes())
    poses = BoirDeployment(out).predict(img)
    assert poses and all(len(p["keypoints"]) == 51 for p in poses)
