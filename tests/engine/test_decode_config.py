"""Every data set's test settings reach the decoder: config → ``decode`` keyword arguments, through each
entry point that decodes (``run_evaluation`` / ``decode_dataset``, ``predict``)."""
from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
import torch

import boir_core.engine.inference.decode as decode_mod
from boir_core.config import load_config
from boir_core.data import get_profile
from boir_core.engine.inference.decode import DecodeResult, DecodeSettings, decode_settings_from_config

# written out from the released settings (docs/inference.md#decoding-steps): center pool kernel 11 and
# OKS-NMS 0.7 for OCHuman only
EXPECTED = {
    "coco_w32": dict(center_pool_kernel=3, oks_nms_threshold=0.8, max_proposals=30, center_threshold=0.01,
                     flip_test=True, k=17),
    "crowdpose_w32": dict(center_pool_kernel=3, oks_nms_threshold=0.8, max_proposals=30,
                          center_threshold=0.01, flip_test=True, k=14),
    "ochuman_w32": dict(center_pool_kernel=11, oks_nms_threshold=0.7, max_proposals=30,
                        center_threshold=0.01, flip_test=True, k=17),
    "ochuman_w48": dict(center_pool_kernel=11, oks_nms_threshold=0.7, max_proposals=30,
                        center_threshold=0.01, flip_test=True, k=17),
}
# COCO's left/right pairs (the mirror image's keypoint k is the original's flip[k])
COCO_FLIP = (0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_decode_settings_from_each_data_sets_config(name):
    cfg = load_config(name)
    prof = get_profile(cfg.data.dataset)
    kw = dataclasses.asdict(decode_settings_from_config(cfg.test, prof.flip_index, prof.sigmas))
    want = EXPECTED[name]
    for key in ("center_pool_kernel", "oks_nms_threshold", "max_proposals", "center_threshold", "flip_test"):
        assert kw[key] == want[key], f"{name}: {key}={kw[key]!r}, expected {want[key]!r}"
    assert len(kw["flip_index"]) == want["k"] and len(kw["oks_sigmas"]) == want["k"]
    assert sorted(kw["flip_index"]) == list(range(want["k"]))
    if want["k"] == 17:
        assert tuple(kw["flip_index"]) == COCO_FLIP
        # pycocotools' COCO sigmas: the nose 0.026, the hips 0.107
        assert kw["oks_sigmas"][0] == pytest.approx(0.026) and kw["oks_sigmas"][11] == pytest.approx(0.107)


def test_every_decode_setting_follows_the_config():
    """Non-default values of every test.* field the decoder reads come through unchanged."""
    cfg = load_config("coco_w32", ["test.center_pool_kernel=7", "test.oks_nms_threshold=0.55",
                                   "test.max_proposals=4", "test.center_threshold=0.2", "test.flip_test=false"])
    kw = dataclasses.asdict(decode_settings_from_config(cfg.test, list(range(17)), [0.5] * 17))
    assert (kw["center_pool_kernel"], kw["oks_nms_threshold"], kw["max_proposals"], kw["center_threshold"],
            kw["flip_test"]) == (7, 0.55, 4, 0.2, False)
    assert kw["flip_index"] == tuple(range(17)) and kw["oks_sigmas"] == (0.5,) * 17


class _Capture:
    def __init__(self, monkeypatch):
        self.calls = []

        def fake_decode(model, image, meta, settings, **kwargs):
            assert isinstance(settings, DecodeSettings)
            self.calls.append(dataclasses.asdict(settings))
            return DecodeResult([])

        monkeypatch.setattr(decode_mod, "decode", fake_decode)
        # decode is faked, so the network runner in front of it is not needed: hand the stand-in model through
        from boir_core.engine.inference import backends

        monkeypatch.setattr(backends, "make_runner", lambda backend, model, cfg=None, options=None: model)


@pytest.mark.parametrize("name", ["coco_w32", "crowdpose_w32", "ochuman_w32"])
def test_decode_dataset_passes_the_data_sets_settings(name, tiny_synth, monkeypatch):
    """``run_evaluation`` decodes through ``decode_dataset``: each image's decode call gets the config's
    kernel / NMS threshold and the profile's flip index."""
    from boir_core.data import KeypointDataset, SampleSettings
    from boir_core.engine.evaluation.runner import ImageShare, decode_dataset

    cfg = load_config(name)
    prof = get_profile(cfg.data.dataset)
    dataset = KeypointDataset(tiny_synth, "synthcrowd", split="val", train=False,
                              settings=SampleSettings(input_size=64))
    cap = _Capture(monkeypatch)
    decode_dataset(cfg, torch.nn.Identity(), dataset, progress=False, share=ImageShare(max_images=2))
    assert len(cap.calls) == 2
    for kw in cap.calls:
        assert kw["center_pool_kernel"] == EXPECTED[name]["center_pool_kernel"]
        assert kw["oks_nms_threshold"] == EXPECTED[name]["oks_nms_threshold"]
        assert tuple(kw["flip_index"]) == tuple(prof.flip_index) and kw["flip_test"] is True


def test_predict_passes_ochumans_settings(tmp_path, monkeypatch):
    import boir_core.engine.inference.weights as weights
    from boir_core.engine.inference.predict import predict

    cfg = load_config("ochuman_w32", ["test.device=cpu"])
    monkeypatch.setattr(weights, "load_inference_model", lambda cfg, ckpt, device: (torch.nn.Identity(), None))
    img = tmp_path / "a.png"
    cv2.imwrite(str(img), np.zeros((40, 60, 3), np.uint8))
    cap = _Capture(monkeypatch)
    predict(cfg, None, [str(img)], output=tmp_path / "out.json")
    assert len(cap.calls) == 1
    assert cap.calls[0]["center_pool_kernel"] == 11 and cap.calls[0]["oks_nms_threshold"] == 0.7


def test_the_kernel_changes_what_is_decoded():
    """Kernel 11 is not a no-op: smoothing a center map with 3 and with 11 moves its peak."""
    m = torch.zeros(1, 1, 24, 24)
    m[0, 0, 2, 2] = 1.0  # a sharp isolated spike
    m[0, 0, 8:19, 8:19] = 0.53  # a broad 11x11 plateau around (13, 13)
    k3 = decode_mod.smooth_heatmaps(m, 3)[0, 0]
    k11 = decode_mod.smooth_heatmaps(m, 11)[0, 0]
    assert divmod(int(k3.argmax()), 24) == (2, 2) and divmod(int(k11.argmax()), 24) == (13, 13)
