"""The released decoding (docs/inference.md#decoding-steps) against a fake network whose maps are known in closed form.

The fake network (``GaussianNet``) reads its center map straight from the image: every 4×4 block of image
channel 0 holds one center logit, so ``features`` = 4×4 average pooling reproduces it at stride 4. Its
instance head draws, for an instance at (y, x), one Gaussian per keypoint at (x, y) + offset_k. It "knows"
left from right through a handedness channel (the sign of a left→right ramp in image channel 2), so for the
mirrored view it returns keypoint ``flip_index[k]`` in channel k — as a real network does. The expected
poses are computed independently with plain loops (``oracle_poses``).
"""
from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from boir_core.engine.inference.decode import (
    DecodeSettings,
    decode,
    decode_batch,
    find_peaks,
    map_to_image,
    peak_pool_kernel,
    refine_quarter_pixel,
    smooth_heatmaps,
)

FLIP = [0, 2, 1, 4, 3]
SIGMAS = [0.026, 0.025, 0.025, 0.035, 0.035]
# keypoint offsets (dx, dy) from the instance center, in output-map pixels (fractional on purpose)
OFFSETS = [(0.3, -2.3), (-2.3, -1.3), (2.4, -1.2), (-1.7, 2.2), (1.8, 2.3)]
AMP_ORIGINAL, AMP_MIRRORED, GAUSS_SIGMA, BACKGROUND = 0.3, 0.9, 1.2, 1e-3
TRANS_INV = np.array([[1.5, 0.0, 10.0], [0.0, 1.5, -20.0]])


def _logit(p):
    return torch.log(p / (1 - p))


class GaussianNet(torch.nn.Module):
    """Analytically known features / center / instance heatmaps (module docstring)."""

    def __init__(self, offsets=OFFSETS, flip_index=FLIP, absolute_pose=None):
        super().__init__()
        self.offsets = torch.tensor(offsets, dtype=torch.float32)
        self.flip_index = list(flip_index)
        self.absolute_pose = absolute_pose  # (x, y): every instance gets the same pose (NMS test)
        self.calls = {"features": [], "instance_imgid": []}
        self.dummy = torch.nn.Parameter(torch.zeros(()))  # gives the model a device

    def features(self, images):
        self.calls["features"].append(images.shape[0])
        pooled = torch.nn.functional.avg_pool2d(images, 4)
        w = pooled.shape[-1]
        ramp = pooled[:, 2]
        hand = torch.sign(ramp[..., w // 2:].mean((-1, -2)) - ramp[..., : w // 2].mean((-1, -2)))
        return torch.cat([pooled[:, :2], hand[:, None, None, None].expand_as(pooled[:, :1])], dim=1)

    def center_logits(self, feats):
        return feats[:, :1]

    def instance_heatmaps(self, feats, instance_coord, instance_imgid, params=None):
        self.calls["instance_imgid"].append(instance_imgid.tolist())
        _, _, h, w = feats.shape
        dev = feats.device
        yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float32, device=dev),
                                torch.arange(w, dtype=torch.float32, device=dev), indexing="ij")
        out = []
        for (cy, cx), img in zip(instance_coord.tolist(), instance_imgid.tolist()):
            mirrored = bool(feats[img, 2, 0, 0] < 0)
            order = [self.flip_index[k] for k in range(len(self.offsets))] if mirrored else range(len(self.offsets))
            amp = AMP_MIRRORED if mirrored else AMP_ORIGINAL
            chans = []
            for src in order:
                base = self.absolute_pose if self.absolute_pose is not None else (cx, cy)
                px, py = base[0] + self.offsets[src, 0], base[1] + self.offsets[src, 1]
                g = torch.exp(-((xx - px) ** 2 + (yy - py) ** 2) / (2 * GAUSS_SIGMA ** 2))
                chans.append(torch.clamp(amp * g, min=BACKGROUND))
            out.append(torch.stack(chans))
        return _logit(torch.stack(out)) if out else torch.zeros(0, len(self.offsets), h, w, device=dev)


def make_image(center_prob: np.ndarray) -> torch.Tensor:
    """A [3, 4H, 4W] canvas whose 4×4 blocks carry the center logits; channel 2 is a left→right ramp."""
    h, w = center_prob.shape
    logits = _logit(torch.tensor(center_prob, dtype=torch.float32))
    ch0 = logits.repeat_interleave(4, 0).repeat_interleave(4, 1)
    ramp = torch.linspace(-1, 1, 4 * w).expand(4 * h, 4 * w)
    return torch.stack([ch0, torch.zeros_like(ch0), ramp])


def center_map(h, w, peaks):
    p = np.full((h, w), BACKGROUND)
    for (y, x), v in peaks.items():
        p[y, x] = v
    return p


# ---- loop oracles ---------------------------------------------------------------------------------------

def smooth_loop(m: np.ndarray, k: int) -> np.ndarray:
    h, w = m.shape
    r = k // 2
    out = np.zeros_like(m)
    for y in range(h):
        for x in range(w):
            s = 0.0
            for yy in range(y - r, y + r + 1):
                for xx in range(x - r, x + r + 1):
                    if 0 <= yy < h and 0 <= xx < w:
                        s += m[yy, xx]
            out[y, x] = (m[y, x] + s / (k * k)) / 2
    return out


def argmax_refine_loop(m: np.ndarray):
    h, w = m.shape
    by, bx, best = 0, 0, -1.0
    for y in range(h):
        for x in range(w):
            if m[y, x] > best:
                by, bx, best = y, x, m[y, x]
    fx, fy = float(bx), float(by)
    if 0 < bx < w - 1:
        fx += 0.25 * np.sign(m[by, bx + 1] - m[by, bx - 1])
    if 0 < by < h - 1:
        fy += 0.25 * np.sign(m[by + 1, bx] - m[by - 1, bx])
    return fx, fy, best


def oracle_poses(center_prob, centers, k=3, offsets=OFFSETS, flip=True):
    """Expected {score, keypoints} for instances at ``centers`` (y, x), computed with loops."""
    h, w = center_prob.shape
    cs = smooth_loop(center_prob, k)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    poses = []
    for cy, cx in centers:
        kps, scores = [], []
        for j, (dx, dy) in enumerate(offsets):
            g = np.exp(-((xx - cx - dx) ** 2 + (yy - cy - dy) ** 2) / (2 * GAUSS_SIGMA ** 2))
            orig = np.maximum(AMP_ORIGINAL * g, BACKGROUND)
            heat = (orig + np.maximum(AMP_MIRRORED * g, BACKGROUND)) / 2 if flip else orig
            fx, fy, peak = argmax_refine_loop(smooth_loop(heat, k))
            s = peak * cs[cy, cx]
            ix, iy = 4 * fx + 2, 4 * fy + 2
            kps += [TRANS_INV[0, 0] * ix + TRANS_INV[0, 1] * iy + TRANS_INV[0, 2],
                    TRANS_INV[1, 0] * ix + TRANS_INV[1, 1] * iy + TRANS_INV[1, 2], s]
            scores.append(s)
        poses.append({"keypoints": kps, "score": float(np.mean(scores))})
    return sorted(poses, key=lambda p: -p["score"])


def settings(**kw):
    """The test's decoding settings (the toy's flip index and sigmas) with ``kw`` replaced."""
    return DecodeSettings(**{"flip_index": FLIP, "oks_sigmas": SIGMAS, **kw})


def run(center_prob, model=None, return_intermediates=False, **kw):
    model = model or GaussianNet()
    return decode(model, make_image(center_prob), {"trans_inv": TRANS_INV}, settings(**kw), image_id=7,
                  return_intermediates=return_intermediates)


# ---- building blocks --------------------------------------------------------------------------------------

def test_smooth_heatmaps_matches_loop_oracle_with_zero_padding_counted():
    rng = np.random.default_rng(0)
    m = rng.random((7, 9))
    for k in (3, 5, 11):
        got = smooth_heatmaps(torch.tensor(m)[None, None], k)[0, 0].numpy()
        np.testing.assert_allclose(got, smooth_loop(m, k), rtol=1e-12)
    # a corner pixel of a ones-map: 4 of 9 window cells are inside -> (1 + 4/9)/2
    assert smooth_heatmaps(torch.ones(5, 5), 3)[0, 0].item() == pytest.approx((1 + 4 / 9) / 2)
    with pytest.raises(ValueError, match="odd"):
        smooth_heatmaps(torch.ones(5, 5), 4)


def test_smooth_heatmaps_kernel_1_and_batches_of_maps():
    """Kernel 1 is a valid (identity) smoothing; 0 and negative kernels are refused; a [n, K, H, W] batch is
    smoothed map by map (no average reaches across from one map into the next)."""
    rng = np.random.default_rng(5)
    m = torch.tensor(rng.random((2, 3, 6, 5)))
    torch.testing.assert_close(smooth_heatmaps(m.clone(), 1), m, rtol=0, atol=0)
    for bad in (0, -1):
        with pytest.raises(ValueError, match="odd"):
            smooth_heatmaps(m, bad)
    got = smooth_heatmaps(m.clone(), 3).numpy()
    for i in range(2):
        for k in range(3):
            np.testing.assert_allclose(got[i, k], smooth_loop(m[i, k].numpy(), 3), rtol=1e-12)


def test_peak_pool_kernel_grows_with_map_size():
    assert peak_pool_kernel(128, 128) == 3
    assert peak_pool_kernel(200, 200) == 3  # strictly greater than 200 needed
    assert peak_pool_kernel(128, 300) == 5  # (128 + 300)/2 = 214
    assert peak_pool_kernel(301, 301) == 7
    # the boundaries: mean side 200 -> 3, 201 -> 5, 300 -> 5, 300.5 -> 7
    assert [peak_pool_kernel(s, s) for s in (200, 201, 300)] == [3, 5, 5]
    assert peak_pool_kernel(300, 301) == 7


def test_find_peaks_nms_topk_and_threshold():
    c = torch.full((12, 12), 0.001)
    c[2, 3], c[2, 4] = 0.9, 0.5  # 0.5 is next to a higher pixel: not a peak
    c[8, 9] = 0.7
    c[5, 1] = 0.3
    c[10, 2] = 0.009  # a peak, but below the 0.01 threshold
    coords, scores, nms_map = find_peaks(c, 30, 0.01)
    assert coords.tolist() == [[2, 3], [8, 9], [5, 1]]
    assert scores.tolist() == pytest.approx([0.9, 0.7, 0.3])
    assert nms_map[2, 4] == 0 and nms_map[10, 2] == pytest.approx(0.009)
    coords, scores, _ = find_peaks(c, 2, 0.01)
    assert coords.tolist() == [[2, 3], [8, 9]]
    coords, _, _ = find_peaks(c, 30, 0.5)
    assert coords.tolist() == [[2, 3], [8, 9]]
    coords, _, _ = find_peaks(c, 30, 0.7)  # a score equal to the threshold does not exceed it
    assert c[8, 9].item() == torch.tensor(0.7).item() and coords.tolist() == [[2, 3]]


def test_find_peaks_kernel_depends_on_map_size():
    # two peaks 2 px apart: kernel 3 keeps both, kernel 5 (mean side > 200) keeps only the higher one
    for size, expected in ((100, 2), (210, 1)):
        c = torch.zeros(size, size)
        c[50, 50], c[50, 52] = 0.9, 0.5
        coords, _, _ = find_peaks(c, 30, 0.01)
        assert len(coords) == expected


def test_refine_quarter_pixel_hand_computed():
    m = torch.zeros(1, 3, 5, 6)
    m[0, 0, 2, 3] = 1.0
    m[0, 0, 2, 4] = 0.5
    m[0, 0, 2, 2] = 0.2
    m[0, 0, 1, 3] = 0.3
    m[0, 0, 3, 3] = 0.1
    # corner: no shift at all
    m[0, 1, 0, 5] = 1.0
    m[0, 1, 1, 5] = 0.9
    m[0, 1, 0, 4] = 0.8
    # equal neighbours: sign 0
    m[0, 2, 3, 1] = 1.0
    m[0, 2, 3, 0] = 0.4
    m[0, 2, 3, 2] = 0.4
    xy, val = refine_quarter_pixel(m)
    assert xy[0, 0].tolist() == [3.25, 1.75]  # right > left: +x; up (0.3) > down (0.1): -y
    assert xy[0, 1].tolist() == [5.0, 0.0]
    assert xy[0, 2].tolist() == [1.0, 3.0]
    assert val[0].tolist() == [1.0, 1.0, 1.0]
    # one pixel in from the last column and the first row: both shifts still apply, towards the larger
    # real neighbour (columns 3 and 5, rows 0 and 2), never towards the peak itself
    m = torch.zeros(1, 1, 5, 6)
    m[0, 0, 1, 4] = 1.0
    m[0, 0, 1, 3] = 0.6
    m[0, 0, 1, 5] = 0.2
    m[0, 0, 0, 4] = 0.1
    m[0, 0, 2, 4] = 0.7
    assert refine_quarter_pixel(m)[0][0, 0].tolist() == [3.75, 1.25]
    m = torch.zeros(1, 1, 6, 5)  # the same one pixel in from the first column and the last row
    m[0, 0, 4, 1] = 1.0
    m[0, 0, 4, 0] = 0.2
    m[0, 0, 4, 2] = 0.6
    m[0, 0, 3, 1] = 0.7
    m[0, 0, 5, 1] = 0.1
    assert refine_quarter_pixel(m)[0][0, 0].tolist() == [1.25, 3.75]


def test_refine_matches_loop_oracle_on_random_maps():
    rng = np.random.default_rng(1)
    m = rng.random((3, 4, 6, 7))
    xy, val = refine_quarter_pixel(torch.tensor(m))
    for i in range(3):
        for k in range(4):
            fx, fy, best = argmax_refine_loop(m[i, k])
            assert xy[i, k].tolist() == [fx, fy]
            assert val[i, k].item() == best


def test_map_to_image_is_4x_plus_2_then_inverse_affine():
    xy = torch.tensor([[0.0, 0.0], [10.25, 3.75]])
    canvas, image = map_to_image(xy, TRANS_INV)
    assert canvas.tolist() == [[2.0, 2.0], [43.0, 17.0]]
    assert image.tolist() == [[13.0, -17.0], [1.5 * 43 + 10, 1.5 * 17 - 20]]
    with pytest.raises(ValueError, match=r"meta\['trans_inv'\] must be a finite 2x3"):
        map_to_image(xy, np.eye(3))
    # a float32 tensor (as a data loader collates it) gives the same float64 result as the numpy matrix
    torch.testing.assert_close(map_to_image(xy, torch.tensor(TRANS_INV, dtype=torch.float32))[1], image)


# ---- the whole decoder ------------------------------------------------------------------------------------

CENTERS = [(5, 6), (10, 17)]
PEAKS = {(5, 6): 0.9, (10, 17): 0.6, (13, 3): 0.005}  # the last one is below threshold after smoothing


def _assert_poses_equal(got, expected):
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert g["image_id"] == 7 and g["category_id"] == 1
        np.testing.assert_allclose(g["keypoints"], e["keypoints"], rtol=1e-5, atol=1e-5)
        assert g["score"] == pytest.approx(e["score"], rel=1e-5)


def test_decode_matches_loop_oracle_with_flip_test():
    cp = center_map(16, 24, PEAKS)
    model = GaussianNet()
    res = run(cp, model=model)
    _assert_poses_equal(res.poses, oracle_poses(cp, CENTERS))
    assert model.calls["features"] == [2]  # [original, mirrored] in one batch
    assert model.calls["instance_imgid"] == [[0, 0, 1, 1]]  # same (y, x) from both views
    assert res.time_network >= 0 and res.time_decode >= 0 and res.intermediates is None


def test_decode_without_flip_test():
    cp = center_map(16, 24, PEAKS)
    model = GaussianNet()
    res = run(cp, model=model, flip_test=False, flip_index=None)
    _assert_poses_equal(res.poses, oracle_poses(cp, CENTERS, flip=False))
    assert model.calls["features"] == [1]


def test_flip_average_swaps_left_and_right_channels():
    cp = center_map(16, 24, {(8, 12): 0.9})
    res = run(cp, return_intermediates=True)
    inter = res.intermediates
    mirrored, original = inter["instance_heatmaps_mirrored"], inter["instance_heatmaps_original"]
    # after the permutation, channel k of the mirrored view peaks where keypoint k is
    for k, (dx, dy) in enumerate(OFFSETS):
        for maps in (mirrored, original):
            idx = int(maps[0, k].flatten().argmax())
            assert (idx // 24, idx % 24) == (round(8 + dy), round(12 + dx))
    # mirrored amplitude 0.9 dominates: without the permutation keypoint 1 would land on keypoint 2
    kp = torch.tensor(res.poses[0]["keypoints"]).reshape(-1, 3)
    assert kp[1, 0] < kp[0, 0] < kp[2, 0]  # keypoint 1 is left of the nose, keypoint 2 right of it
    avg = inter["instance_heatmaps"]
    torch.testing.assert_close(avg, (original + mirrored) / 2)


def test_feature_level_unflip_keeps_center_in_place():
    # an asymmetric single peak: if the mirrored features were not flipped back, the mean center map
    # would have two half-height peaks and the detection would move or weaken
    cp = center_map(16, 24, {(4, 3): 0.9})
    res = run(cp, return_intermediates=True)
    assert res.intermediates["peaks_yx"].tolist() == [[4, 3]]
    np.testing.assert_allclose(res.intermediates["center_raw"].numpy(), cp, rtol=1e-5)


def test_intermediates_are_consistent():
    cp = center_map(16, 24, PEAKS)
    inter = run(cp, return_intermediates=True).intermediates
    np.testing.assert_allclose(inter["center_smoothed"].numpy(), smooth_loop(cp, 3), rtol=1e-5)
    assert inter["peaks_yx"].tolist() == [list(c) for c in CENTERS]
    assert inter["keypoints_map"].shape == (2, 5, 2) and inter["keep"].tolist() == [0, 1]
    torch.testing.assert_close(inter["keypoints_canvas"], inter["keypoints_map"].double() * 4 + 2)


def test_top_k_and_threshold():
    cp = center_map(16, 24, PEAKS)
    res = run(cp, max_proposals=1)
    _assert_poses_equal(res.poses, oracle_poses(cp, CENTERS[:1]))
    res = run(cp, center_threshold=0.45)  # smoothed centers: 0.9 -> 0.500, 0.6 -> 0.334
    assert len(res.poses) == 1


def test_pool_kernel_11_for_ochuman():
    cp = center_map(24, 32, {(11, 14): 0.9})
    res = run(cp, center_pool_kernel=11)
    _assert_poses_equal(res.poses, oracle_poses(cp, [(11, 14)], k=11))


def test_zero_detections_gives_empty_list():
    res = run(center_map(16, 24, {}), return_intermediates=True)
    assert res.poses == [] and res.intermediates["keep"].numel() == 0


def test_oks_nms_drops_duplicate_poses():
    cp = center_map(16, 24, PEAKS)
    res = run(cp, model=GaussianNet(absolute_pose=(12.0, 8.0)))
    assert len(res.poses) == 1  # both instances decode to the same pose; the better one stays
    assert res.poses[0]["score"] == pytest.approx(
        oracle_poses(cp, CENTERS)[0]["score"], rel=0.05)  # the 0.9-center instance wins
    assert len(run(cp, model=GaussianNet(absolute_pose=(12.0, 8.0)), oks_nms_threshold=1.01).poses) == 2


def test_decode_batch_different_sizes():
    cp1, cp2 = center_map(16, 24, PEAKS), center_map(20, 12, {(9, 5): 0.8})
    res = decode_batch(GaussianNet(), [make_image(cp1), make_image(cp2)],
                       [{"trans_inv": TRANS_INV, "image_id": 1}, {"trans_inv": TRANS_INV, "image_id": 2}],
                       settings())
    assert res.num_images == 2 and [p["image_id"] for p in res.poses] == [1, 1, 2]
    assert res.intermediates is None  # only with return_intermediates=True
    for got, exp in zip(res.poses, oracle_poses(cp1, CENTERS) + oracle_poses(cp2, [(9, 5)])):
        np.testing.assert_allclose(got["keypoints"], exp["keypoints"], rtol=1e-5, atol=1e-5)


def test_decode_batch_passes_image_ids_and_returns_intermediates_per_image():
    cp1, cp2 = center_map(16, 24, PEAKS), center_map(20, 12, {(9, 5): 0.8})
    images = [make_image(cp1), make_image(cp2)]
    metas = [{"trans_inv": TRANS_INV, "image_id": 1}, {"trans_inv": TRANS_INV, "image_id": 2}]
    res = decode_batch(GaussianNet(), images, metas, settings(), image_ids=[31, 32], return_intermediates=True)
    assert [p["image_id"] for p in res.poses] == [31, 31, 32]
    assert len(res.intermediates) == 2
    assert [i["peaks_yx"].tolist() for i in res.intermediates] == [[list(c) for c in CENTERS], [[9, 5]]]
    with pytest.raises(ValueError, match="2 images but 1 metas"):
        decode_batch(GaussianNet(), images, metas[:1], settings())
    with pytest.raises(ValueError, match="2 images but 3 image_ids"):
        decode_batch(GaussianNet(), images, metas, settings(), image_ids=[1, 2, 3])


def test_decode_batch_sums_the_times_of_its_images(monkeypatch):
    """The reported per-image times (Tables 5 and 7) are the sums over the images, from zero."""
    import boir_core.engine.inference.decode as decode_mod

    times = iter([(0.25, 0.5), (1.0, 0.125)])

    def fake(model, image, meta, settings, **kwargs):
        net, dec = next(times)
        return decode_mod.DecodeResult([], net, dec, 1, None, "cpu:fake")

    monkeypatch.setattr(decode_mod, "decode", fake)
    res = decode_batch(None, [torch.zeros(3, 8, 8)] * 2, [{}, {}], settings())
    assert (res.time_network, res.time_decode, res.num_images, res.device) == (1.25, 0.625, 2, "cpu:fake")


def test_clock_splits_time_into_network_and_decode_and_syncs_cuda(monkeypatch):
    import boir_core.engine.inference.decode as decode_mod

    ticks = iter([10.0, 10.5, 12.0, 12.25])
    syncs = []
    monkeypatch.setattr(decode_mod.time, "perf_counter", lambda: next(ticks))
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a: syncs.append(1))
    clock = decode_mod._Clock(torch.device("cuda"))  # only the clock: nothing runs on a GPU
    clock.lap("decode")
    clock.lap("network")
    clock.lap("decode")
    assert (clock.network, clock.decode) == (1.5, 0.75) and len(syncs) == 4
    ticks = iter([1.0, 2.0])
    cpu = decode_mod._Clock(torch.device("cpu"))
    cpu.lap("network")
    assert (cpu.network, cpu.decode) == (1.0, 0.0) and len(syncs) == 4  # no CUDA sync on the CPU


def test_bad_inputs_have_clear_errors():
    cp = center_map(16, 24, PEAKS)
    with pytest.raises(KeyError, match="trans_inv"):
        decode(GaussianNet(), make_image(cp), {}, settings())
    with pytest.raises(TypeError, match="DecodeSettings"):  # the settings are one object, not a dict of them
        decode(GaussianNet(), make_image(cp), {"trans_inv": TRANS_INV}, {"flip_index": FLIP, "oks_sigmas": SIGMAS})
    with pytest.raises(ValueError, match="permutation"):
        run(cp, flip_index=[0, 1, 1, 3, 4])
    with pytest.raises(ValueError, match="TEST.OKS_SIGMAS"):
        run(cp, oks_sigmas=[s * 10 for s in SIGMAS])
    with pytest.raises(ValueError, match="flip_index"):
        run(cp, flip_index=None)


def test_bad_images_and_settings_name_what_is_wrong():
    """Each refusal says which input and what it got: the image's shape, the affine's name, the flip index,
    the proposal count and the sigmas' count."""
    cp = center_map(16, 24, PEAKS)
    image = make_image(cp)
    for bad in (image[None], image[:2], torch.cat([image, image[:1]])):  # a batch, 2 channels, 4 channels
        with pytest.raises(ValueError, match=re.escape(f"image must be a [3, H', W'] tensor, got {tuple(bad.shape)}")):
            decode(GaussianNet(), bad, {"trans_inv": TRANS_INV}, settings())
    with pytest.raises(ValueError, match=r"^meta\['trans_inv'\] must be a finite 2x3"):
        decode(GaussianNet(), image, {"trans_inv": np.eye(3)}, settings())
    with pytest.raises(ValueError, match="^" + re.escape("flip_test=True needs flip_index (the data-set profile's "
                                                         "flip_index)") + "$"):
        run(cp, flip_index=None)
    with pytest.raises(ValueError, match="^max_proposals must be >= 1, got 0$"):
        run(cp, max_proposals=0)
    with pytest.raises(ValueError, match="^oks sigmas: 4 values for 5 keypoints$"):
        run(cp, oks_sigmas=SIGMAS[:4])


def test_intermediates_of_the_keypoint_steps():
    """The maps a notebook draws: without flip test the original view is the averaged one and the mirrored
    one is None (both keys there); the smoothed maps are step 8's smoothing of the averaged ones; the image
    coordinates are the kept poses' (x, y)."""
    cp = center_map(16, 24, PEAKS)
    inter = run(cp, return_intermediates=True, flip_test=False, flip_index=None).intermediates
    assert inter["instance_heatmaps_mirrored"] is None and "instance_heatmaps_mirrored" in inter
    torch.testing.assert_close(inter["instance_heatmaps_original"], inter["instance_heatmaps"])
    res = run(cp, return_intermediates=True)
    inter = res.intermediates
    torch.testing.assert_close(inter["instance_heatmaps_smoothed"], smooth_heatmaps(inter["instance_heatmaps"], 3))
    kept = inter["keypoints_image"][inter["keep"]]
    got = torch.tensor([p["keypoints"] for p in res.poses], dtype=torch.float64).reshape(len(res.poses), -1, 3)
    torch.testing.assert_close(kept, got[..., :2])
    torch.testing.assert_close(inter["person_scores"][inter["keep"]],
                               torch.tensor([p["score"] for p in res.poses], dtype=torch.float64))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_decode_on_cuda_matches_cpu():
    cp = center_map(16, 24, PEAKS)
    res = run(cp, model=GaussianNet().cuda())
    assert res.device.startswith("cuda")
    _assert_poses_equal(res.poses, oracle_poses(cp, CENTERS))


def test_center_score_is_smoothed_peak():
    # a lone 0.9 peak on a 1e-3 background: (0.9 + (0.9 + 8e-3)/9)/2
    cp = center_map(16, 24, {(8, 12): 0.9})
    inter = run(cp, return_intermediates=True).intermediates
    assert inter["peak_scores"].item() == pytest.approx((0.9 + (0.9 + 8 * BACKGROUND) / 9) / 2, rel=1e-5)
    assert math.isclose(inter["person_scores"].item(), inter["keypoint_scores"].mean().item(), rel_tol=1e-6)


def test_decode_runs_the_real_boir_network():
    """Integration with boir_core.model.BoIR (small backbone, random weights, center bias raised)."""
    from boir_core.model import BoIR

    model = BoIR(17, backbone="hrnet_w18_small", train_heads=False)
    last = [m for m in model.multihead.center_head.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    with torch.no_grad():
        last.bias.add_(2.0)  # center probability ~0.07: every proposal passes the 0.01 threshold
    model.train()
    flip = [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15]
    trans_inv = np.array([[2.0, 0.0, 5.0], [0.0, 2.0, 7.0]])
    torch.manual_seed(0)
    res = decode(model, torch.randn(3, 64, 128), {"trans_inv": trans_inv, "image_id": 3},
                 DecodeSettings(flip_index=flip, oks_sigmas=[0.05] * 17, max_proposals=12, oks_nms_threshold=1.01),
                 return_intermediates=True)
    assert not model.training
    inter = res.intermediates
    assert inter["center_raw"].shape == (16, 32) and inter["instance_heatmaps"].shape == (12, 17, 16, 32)
    assert len(res.poses) == 12  # threshold above 1: OKS-NMS keeps everything
    kp = torch.tensor([p["keypoints"] for p in res.poses], dtype=torch.float64).reshape(12, 17, 3)
    # canvas x in [4·0 + 2, 4·31 + 2], y in [2, 4·15 + 2] (no shift on the border), then x2 + (5, 7)
    assert (kp[..., 0] >= 2 * 2 + 5).all() and (kp[..., 0] <= 2 * 126 + 5).all()
    assert (kp[..., 1] >= 2 * 2 + 7).all() and (kp[..., 1] <= 2 * 62 + 7).all()
    scores = [p["score"] for p in res.poses]
    assert scores == sorted(scores, reverse=True)
    torch.testing.assert_close(torch.tensor(scores, dtype=torch.float64), kp[..., 2].mean(1))
    assert res.time_network > 0 and res.time_decode > 0
