"""``boir export`` writes a deployment folder; boir_core.deploy runs it and gives the kit's poses
(docs/inference.md#deployment-folder)."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from boir_deploy_helpers import assert_same_poses, max_px

from boir_core import __version__
from boir_core.data import get_profile
from boir_core.data.transforms import eval_input
from boir_core.deploy import BoirDeployment, DecodeSettings, DeploySettingsError, preprocess, read_settings
from boir_core.deploy.__main__ import main as deploy_main
from boir_core.deploy.runtime import normalizer
from boir_core.engine.inference.decode import decode

pytestmark = pytest.mark.usefixtures("one_thread")
REPO = Path(__file__).resolve().parents[2]

#: ONNX Runtime against eager PyTorch, same weights: measured 0.0 px on these SynthCrowd scenes (the same argmax
#: everywhere, identical float64 mapping); the graphs' float32 rounding may move a keypoint only on a near-tie,
#: which these images do not have. Scores agree to float32 rounding of the network (measured < 1e-5 relative).
ROUND_TRIP_TOL_PX = 1e-3


@pytest.mark.parametrize("size", [(333, 500), (500, 333), (37, 41), (640, 427), (128, 128)])
def test_preprocess_is_the_kits_test_time_resize_to_the_bit(size):
    """The runtime's resize and normalisation (no torch) equal boir_core.data.transforms.eval_input, the
    release's sub-pixel crop case (500 x 333 at 512: 768 wide, not 832) included."""
    h, w = size
    img = np.random.default_rng(h * w).integers(0, 256, (h, w, 3), dtype=np.uint8)
    from boir_core.data.transforms import IMAGENET_MEAN, IMAGENET_STD

    for s in (128, 512):
        ref = eval_input(img, s)
        x, inv = preprocess(img, s, normalizer(IMAGENET_MEAN.tolist(), IMAGENET_STD.tolist()))
        np.testing.assert_array_equal(x, ref.image)
        np.testing.assert_array_equal(inv, ref.resize.trans_inv)
    if size == (333, 500):
        assert preprocess(img, 512, normalizer([0.5] * 3, [0.5] * 3))[0].shape == (3, 512, 768)
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        preprocess(img.astype(np.float32), 128, normalizer([0.5] * 3, [0.5] * 3))


def test_deploy_json_holds_what_the_runtime_needs(deploy_folder, shipped):
    cfg, model, kwargs = shipped
    names = {p.name for p in deploy_folder.iterdir()}
    assert names == {"dense.onnx", "instance.onnx", "meta.json", "deploy.json"}
    s = read_settings(deploy_folder)
    prof = get_profile(cfg.data.dataset)
    assert s["kit_version"] == __version__ and s["arch"] == "boir" and s["dataset"] == prof.name
    assert s["keypoints"] == list(prof.keypoints) and len(s["keypoints"]) == model.num_keypoints
    assert s["skeleton"] == [list(p) for p in prof.skeleton]
    assert s["input"]["size"] == cfg.data.input_size == 128 and s["input"]["stride"] == 4
    assert s["input"]["mean"] == [0.485, 0.456, 0.406] and s["input"]["std"] == [0.229, 0.224, 0.225]
    assert s["decode"] == {**kwargs, "flip_index": list(kwargs["flip_index"]),
                           "oks_sigmas": list(kwargs["oks_sigmas"])}
    assert s["decode"]["max_proposals"] == 20 and s["decode"]["flip_test"] is True  # the demo's test settings
    assert s["checkpoint"].endswith("demo_boir.pt")


@pytest.mark.parametrize("flip", [True, False], ids=["flip", "no_flip"])
def test_exported_folder_gives_the_kits_exact_poses(deploy_folder, shipped, synth_images, flip):
    """export -> BoirDeployment.predict on a raw RGB image == the kit's exact path (eval_input, eager fp32
    network, decode) on the same image, to ROUND_TRIP_TOL_PX; BGR input with bgr=True gives the same."""
    cfg, model, kwargs = shipped
    dep = BoirDeployment(deploy_folder, threads=1)
    dep.decode_settings["flip_test"] = flip
    worst = 0.0
    for i, img in enumerate(synth_images[:3]):
        x = eval_input(img, cfg.data.input_size)
        ref = decode(model, torch.from_numpy(x.image), {"trans_inv": x.resize.trans_inv},
                     DecodeSettings(**dict(kwargs, flip_test=flip)), image_id=i).poses
        out = dep.predict(img, image_id=i)
        assert_same_poses(out, ref, ROUND_TRIP_TOL_PX, rtol_score=1e-4)
        worst = max(worst, max_px(out, ref))
        assert dep.last.time_network > 0 and dep.last.time_decode > 0
        if i == 0:
            assert dep.predict(np.ascontiguousarray(img[:, :, ::-1]), bgr=True, image_id=i) == out
    assert worst <= ROUND_TRIP_TOL_PX


def test_command_line_prints_the_poses_as_json(deploy_folder, synth_images, tmp_path, capsys):
    files = []
    for i, img in enumerate(synth_images[:2]):
        files.append(tmp_path / f"scene{i}.png")
        cv2.imwrite(str(files[-1]), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    dep = BoirDeployment(deploy_folder, threads=1)
    assert deploy_main([str(deploy_folder), str(files[0]), str(files[1]), "--threads", "1"]) == 0
    out = json.loads(capsys.readouterr().out)
    expected = [dict(p, file=str(f)) for i, f in enumerate(files) for p in dep.predict(synth_images[i], image_id=i)]
    assert out == expected and {p["image_id"] for p in out} == {0, 1}
    assert deploy_main([str(deploy_folder), str(broken), str(files[1])]) == 2  # the other image still printed
    cap = capsys.readouterr()
    assert f"error: {broken}: not an image" in cap.err
    assert json.loads(cap.out) == [p for p in expected if p["image_id"] == 1]  # image_id: its argument position


def test_a_folder_that_is_not_a_deployment_is_named(deploy_folder, tmp_path, capsys):
    with pytest.raises(DeploySettingsError, match=r"deploy\.json: no such file"):
        BoirDeployment(tmp_path)
    bad = tmp_path / "bad"
    bad.mkdir()
    settings = json.loads((deploy_folder / "deploy.json").read_text())
    (bad / "deploy.json").write_text(json.dumps({**settings, "format": "something-else"}))
    with pytest.raises(DeploySettingsError, match="format is 'something-else'"):
        read_settings(bad)
    (bad / "deploy.json").write_text(json.dumps(settings))
    with pytest.raises(DeploySettingsError, match=r"graphs\.dense names .*dense\.onnx, which is not there"):
        read_settings(bad)
    del settings["decode"]["oks_sigmas"]
    (bad / "deploy.json").write_text(json.dumps(settings))
    with pytest.raises(DeploySettingsError, match=r"decode lacks \['oks_sigmas'\]"):
        read_settings(bad)
    (bad / "deploy.json").write_text("{")
    with pytest.raises(DeploySettingsError, match="cannot be read as JSON"):
        read_settings(bad)
    assert deploy_main([str(tmp_path / "nowhere"), "x.jpg"]) == 2
    assert "not a folder" in capsys.readouterr().err


def test_bench_inference_deploy_report_times_each_stage_per_number_of_people(deploy_folder, shipped, synth_images):
    """benchmarks/bench_inference.py --deploy: with the center threshold at 0 every image gets exactly the number
    of proposals asked for, and each stage is timed."""
    import importlib.util

    from boir_core.deploy import OnnxNetwork

    spec = importlib.util.spec_from_file_location("bench_inference", REPO / "benchmarks" / "bench_inference.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    cfg, model, _ = shipped
    x = eval_input(synth_images[0], cfg.data.input_size)
    net = OnnxNetwork(deploy_folder / "dense.onnx", deploy_folder / "instance.onnx", threads=1)
    rows = bench.deploy_report(model, [("scene", torch.from_numpy(x.image), x.resize.trans_inv)], flip=True,
                               threads=1, people=(1, 7), repeats=1, network=net, log=lambda *_: None)
    assert list(rows) == [1, 7]
    for n, r in rows.items():
        assert r["proposals"] == n and 1 <= r["poses"] <= n
        assert all(r[k] > 0 for k in ("dense_s", "instance_s", "decode_np_s", "decode_torch_s"))
    table = bench.format_deploy(rows)
    assert len(table.splitlines()) == 5 and "numpy decode ms" in table
