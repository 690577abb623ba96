"""The numpy decoder (boir_core.deploy.decode_np) gives the torch decoder's poses (docs/inference.md#decoding-steps).

Both decoders see the same network outputs (the eager fp32 model; boir_deploy_helpers.NumpyNet hands them to numpy), so
any difference is the decoding's own: the poses must agree to 1e-4 px, on SynthCrowd with the shipped
weights and on the real COCO / CrowdPose / OCHuman fixtures, with and without flip test.
"""
from __future__ import annotations

import warnings

import cv2
import numpy as np
import pytest
import torch
from boir_deploy_helpers import NumpyNet, SharedNet, assert_same_poses

import boir_core.deploy.decode_np as D
from boir_core.data.transforms import eval_input
from boir_core.deploy import DecodeSettings
from boir_core.engine.inference import decode as T
from boir_core.engine.inference.oks import oks_nms
from boir_core.ops import sigmoid_clamp

TOL_PX = 1e-4
pytestmark = pytest.mark.usefixtures("one_thread")


def _both(model, kwargs, image_rgb, input_size, flip, image_id=0):
    """(numpy result, torch result) of one image, the network run once for both (boir_deploy_helpers.SharedNet)."""
    x = eval_input(image_rgb, input_size)
    kw = dict(kwargs, flip_test=flip)
    net = SharedNet(model)
    out = D.decode_np(net.numpy(), x.image, x.resize.trans_inv, DecodeSettings(**kw), image_id=image_id)
    ref = T.decode(net.torch(), torch.from_numpy(x.image), {"trans_inv": x.resize.trans_inv}, DecodeSettings(**kw),
                   image_id=image_id)
    assert net.calls == (2 if out.num_proposals else 1)  # torch found the same centers: nothing ran twice
    return out, ref


# ---- building blocks against torch's, on random maps --------------------------------------------------------

@pytest.mark.parametrize("kernel", [1, 3, 5, 11])
def test_smoothing_is_torchs_to_the_last_bit(kernel):
    maps = np.random.default_rng(kernel).random((3, 4, 19, 27), dtype=np.float32)
    ref = T.smooth_heatmaps(torch.from_numpy(maps.copy()), kernel).numpy()
    np.testing.assert_array_equal(D.smooth_heatmaps(maps, kernel), ref)
    with pytest.raises(ValueError, match="odd"):
        D.smooth_heatmaps(maps, 4)


def test_sigmoid_clamp_within_two_units_in_the_last_place_and_clamped_exactly():
    """torch's vectorised exp is not correctly rounded: most values agree to the bit, the rest by 1-2 ulp."""
    logits = (np.random.default_rng(0).standard_normal(20000) * 8).astype(np.float32)
    logits[:4] = [-200.0, 200.0, -np.inf, np.inf]  # exp overflows float32: still clamped, and silently
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        D.sigmoid_clamp(logits)
    out, ref = D.sigmoid_clamp(logits), sigmoid_clamp(torch.from_numpy(logits)).numpy()
    assert out.dtype == np.float32
    ulps = np.abs(out.view(np.int32) - ref.view(np.int32))  # float32 bit patterns (all positive)
    assert ulps.max() <= 2 and (ulps == 0).mean() > 0.9
    clamped = np.abs(logits) > 9.3
    np.testing.assert_array_equal(out[clamped], ref[clamped])  # the plateaus argmax ties are made of


def test_peaks_and_quarter_pixel_refinement_are_torchs():
    rng = np.random.default_rng(1)
    for h, w in [(32, 48), (120, 100), (260, 200)]:  # the three max-pool kernels: 3, 5, 7
        center = (rng.random((h, w)) ** 8).astype(np.float32)
        center[5:8, 5:8] = 0.9  # a plateau: several equal peaks
        coords, scores, peaks = D.find_peaks(center, 30, 0.01)
        rc, rs, rp = T.find_peaks(torch.from_numpy(center), 30, 0.01)
        np.testing.assert_array_equal(peaks, rp.numpy())
        assert sorted(map(tuple, coords.tolist())) == sorted(map(tuple, rc.tolist()))
        np.testing.assert_array_equal(scores, rs.numpy())  # the same scores, best first
    heat = rng.random((5, 17, 20, 24), dtype=np.float32)
    heat[0, 0] = 0.5  # a flat map: the first maximum, no shift
    heat[1, 1, :, 0] = 2.0  # maxima on the border column
    xy, val = D.refine_quarter_pixel(heat)
    rxy, rval = T.refine_quarter_pixel(torch.from_numpy(heat))
    np.testing.assert_array_equal(xy, rxy.numpy())
    np.testing.assert_array_equal(val, rval.numpy())
    assert xy[0, 0].tolist() == [0.0, 0.0]


def test_oks_nms_keeps_what_torchs_keeps():
    rng = np.random.default_rng(2)
    base = rng.uniform(0, 100, (1, 17, 2))
    poses = np.concatenate([base + rng.normal(0, s, (6, 17, 2)) for s in (0.5, 3, 20)])  # near duplicates
    poses = np.concatenate([poses, rng.random((18, 17, 1))], axis=-1)
    scores = rng.random(18)
    sig = [0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062, 0.062, 0.107, 0.107, 0.087,
           0.087, 0.089, 0.089]
    for thr in (0.5, 0.8, 0.95):
        keep = D.oks_nms(poses, scores, sig, thr)
        assert keep.tolist() == oks_nms(torch.from_numpy(poses), torch.from_numpy(scores), sig, thr).tolist()
        assert 0 < len(keep) < 18 if thr == 0.5 else len(keep) > 0
    with pytest.raises(ValueError, match="TEST.OKS_SIGMAS divided by 10"):
        D.check_sigmas([0.26] * 17, 17)


# ---- the whole decoder on real network outputs --------------------------------------------------------------

@pytest.mark.parametrize("flip", [True, False], ids=["flip", "no_flip"])
def test_decode_np_gives_decodes_poses_on_synthcrowd(shipped, synth_images, flip):
    cfg, model, kwargs = shipped
    people = proposals = 0
    for i, img in enumerate(synth_images):
        out, ref = _both(model, kwargs, img, cfg.data.input_size, flip, image_id=i)
        assert_same_poses(out.poses, ref.poses, TOL_PX, rtol_score=1e-6)
        assert out.num_proposals >= len(out.poses)
        people += len(ref.poses)
        proposals += out.num_proposals
    # enough people for the comparison to mean something: up to test.max_proposals (20) a picture pass the
    # center threshold (the 8,000-step shipped weights: 36 proposals, 34 poses on these 4 pictures)
    assert proposals >= people >= 4 * 5, (proposals, people)


@pytest.mark.real
@pytest.mark.parametrize("flip", [True, False], ids=["flip", "no_flip"])
def test_decode_np_gives_decodes_poses_on_the_real_fixtures(real_fixtures, shipped, flip):
    """COCO / CrowdPose / OCHuman photos (other sizes, other content) through the shipped SynthCrowd weights."""
    cfg, model, kwargs = shipped
    files = sorted(p for d in ("coco", "crowdpose", "ochuman") for p in (real_fixtures / d).glob("*.jpg"))
    assert len(files) == 9
    for i, f in enumerate(files):
        img = cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB)
        out, ref = _both(model, kwargs, img, cfg.data.input_size, flip, image_id=i)
        assert_same_poses(out.poses, ref.poses, TOL_PX, rtol_score=1e-6)


def test_no_center_above_the_threshold_gives_no_people_and_bad_inputs_are_named(shipped):
    _, model, kwargs = shipped
    img = np.zeros((3, 64, 64), np.float32)
    inv = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    out = D.decode_np(NumpyNet(model), img, inv, DecodeSettings(**dict(kwargs, center_threshold=0.9999)))
    assert out.poses == [] and out.num_proposals == 0
    with pytest.raises(ValueError, match=r"\[3, H', W'\]"):
        D.decode_np(NumpyNet(model), img[0], inv, DecodeSettings(**kwargs))
    with pytest.raises(ValueError, match="2x3"):
        D.decode_np(NumpyNet(model), img, np.eye(3), DecodeSettings(**kwargs))
    with pytest.raises(ValueError, match="flip_index"):
        D.decode_np(NumpyNet(model), img, inv, DecodeSettings(**dict(kwargs, flip_index=None)))
