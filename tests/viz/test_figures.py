"""boir_core.viz.figures: t-SNE colours, Gaussian similarity against a direct computation, geometry helpers."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from boir_core.viz import figures as fg


def test_tsne_rgb_shape_range_and_upsampling():
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(16, 20, 24)).astype(np.float32)
    feats[:, :, 12:] += 6.0  # two clusters: left and right half
    full = fg.tsne_rgb(feats, fg.TsneSettings(max_points=20 * 24, n_iter=250))  # every pixel: no upsampling
    assert full.shape == (20, 24, 3) and full.dtype == np.float32
    flat = full.reshape(-1, 3)
    np.testing.assert_allclose(flat.min(0), 0.0, atol=1e-6)  # each axis min-max normalised to [0, 1]
    np.testing.assert_allclose(flat.max(0), 1.0, atol=1e-6)
    # the two clusters get different colours: their mean colours are far apart
    left, right = full[:, :12].reshape(-1, 3).mean(0), full[:, 12:].reshape(-1, 3).mean(0)
    assert np.linalg.norm(left - right) > 0.3
    rgb = fg.tsne_rgb(feats, fg.TsneSettings(max_points=120, n_iter=250), out_size=(40, 48))  # subsampled, upsampled
    assert rgb.shape == (40, 48, 3) and rgb.min() >= 0.0 and rgb.max() <= 1.0
    assert rgb.reshape(-1, 3).std(0).max() > 0.01  # not a constant image


def test_tsne_rgb_default_size_is_the_map_and_torch_input():
    feats = torch.randn(8, 10, 9)
    rgb = fg.tsne_rgb(feats, fg.TsneSettings(max_points=90))
    assert rgb.shape == (10, 9, 3)


def test_tsne_iteration_argument_matches_sklearn():
    import inspect

    from sklearn.manifold import TSNE

    name = fg.tsne_iteration_argument()
    assert name in inspect.signature(TSNE.__init__).parameters


@pytest.mark.parametrize("h,w,n", [(128, 96, 1024), (10, 10, 100), (7, 5, 3), (33, 17, 50)])
def test_grid_stride_bound(h, w, n):
    s = fg.grid_stride(h, w, n)
    assert math.ceil(h / s) * math.ceil(w / s) <= n
    if s > 1:  # the smallest such stride
        assert math.ceil(h / (s - 1)) * math.ceil(w / (s - 1)) > n


def test_gaussian_similarity_matches_direct_loop():
    rng = np.random.default_rng(1)
    f = rng.normal(size=(5, 6, 7))
    p = rng.normal(size=5)
    got = fg.gaussian_similarity(f, p, bandwidth=3.0)
    want = np.empty((6, 7))
    for y in range(6):
        for x in range(7):
            want[y, x] = math.exp(-sum((f[c, y, x] - p[c]) ** 2 for c in range(5)) / 3.0)
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_similarity_from_point_median_bandwidth():
    rng = np.random.default_rng(2)
    f = torch.from_numpy(rng.normal(size=(4, 8, 8)).astype(np.float32))
    m = fg.similarity_from_point(f, (3, 5), bandwidth="median")
    assert m[3, 5] == pytest.approx(1.0)
    d2 = ((f.numpy() - f.numpy()[:, 3, 5][:, None, None]) ** 2).sum(0)
    np.testing.assert_allclose(m, np.exp(-d2 / np.median(d2)), rtol=1e-5)
    # the median pixel sits at e^-1
    assert np.median(m) == pytest.approx(math.exp(-1), rel=1e-4)


def test_similarity_bad_input():
    with pytest.raises(ValueError):
        fg.gaussian_similarity(np.zeros((3, 4, 4)), np.zeros(2))
    with pytest.raises(ValueError):
        fg.gaussian_similarity(np.zeros((3, 4, 4)), np.zeros(3), bandwidth=0.0)
    with pytest.raises(ValueError):
        fg.gaussian_similarity(np.zeros((3, 4, 4)), np.zeros(3), bandwidth="max")


def test_box_helpers():
    assert fg.box_center([10, 20, 40, 8]) == (24.0, 30.0)
    assert fg.box_center([10, 20, 40, 8], 0.25) == (6.0, 7.5)
    assert fg.box_iou([0, 0, 2, 2], [1, 1, 2, 2]) == pytest.approx(1 / 7)
    assert fg.box_iou([0, 0, 1, 1], [5, 5, 1, 1]) == 0.0
    i, j, v = fg.most_overlapping_pair([[0, 0, 1, 1], [10, 10, 4, 4], [11, 11, 4, 4]])
    assert (i, j) == (1, 2) and v == pytest.approx(9 / 23)
    assert fg.most_overlapping_pair([[0, 0, 1, 1]]) is None


def test_canvas_transforms_roundtrip():
    img = np.zeros((60, 90, 3), np.uint8)
    prep = fg.prepare_image(img, 64)
    assert prep["image"].shape[0] == 3 and prep["canvas"].shape[:2] == tuple(prep["image"].shape[1:])
    m, inv = prep["matrix"], prep["meta"]["trans_inv"]
    pose = {"keypoints": [30.0, 40.0, 0.9, 70.0, 10.0, 0.5], "score": 0.7}
    on_canvas = fg.to_canvas([pose], m)[0]
    kp = np.asarray(on_canvas["keypoints"]).reshape(-1, 3)
    back = kp[:, :2] @ np.asarray(inv)[:, :2].T + np.asarray(inv)[:, 2]
    np.testing.assert_allclose(back, [[30, 40], [70, 10]], atol=1e-9)
    assert on_canvas["score"] == 0.7 and kp[0, 2] == 0.9
    (bx, by, bw, bh), = fg.boxes_to_canvas([[30, 40, 10, 5]], m)
    np.testing.assert_allclose([bx, by], kp[0, :2])
    assert bw == pytest.approx(10 * m[0, 0]) and bh == pytest.approx(5 * m[1, 1])


def test_overlay_and_figures_draw():
    import matplotlib

    matplotlib.use("Agg")
    canvas = np.full((32, 40, 3), 100, np.uint8)
    heat = np.zeros((8, 10))
    heat[2, 3] = 1.0
    out = fg.overlay(canvas, heat, alpha=1.0)
    assert out.shape == canvas.shape and out.dtype == np.uint8
    assert not np.array_equal(out[10, 13], out[31, 39])  # the hot pixel differs from a cold one
    sims = {"CID": [heat, heat], "BoIR": [heat, heat]}
    fig = fg.similarity_figure(canvas, [[4, 4, 10, 10], [8, 6, 10, 12]], sims)
    assert len(fig.axes) == 5
    entries = {n: {"poses": [], "center": heat, "tsne": np.zeros((32, 40, 3)), "similarity": heat,
                   "top_yx": (2, 3)} for n in ("CID", "BoIR")}
    fig = fg.comparison_figure(canvas, entries, title="t")
    assert len(fig.axes) == 8


def test_model_maps_on_a_tiny_model():
    from boir_core.config import load_config
    from boir_core.model import build_model

    cfg = load_config("tiny")
    model = build_model(cfg, train=False)
    x = torch.randn(3, 64, 96)
    maps = fg.model_maps(model, x)
    assert maps["features"].shape[1:] == (16, 24)
    assert maps["center"].shape == (16, 24)
    assert 0 < maps["center"].min() <= maps["center"].max() < 1
    with torch.no_grad():
        direct = model.features(x[None])[0].numpy()
    np.testing.assert_allclose(maps["features"], direct, rtol=1e-5, atol=1e-6)
