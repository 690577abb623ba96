"""Training affine, flip alignment and the test-time resize (docs/release_vs_paper.md#flip-alignment,
docs/inference.md#test-time-resize)."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from boir_core.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    NO_AUGMENTATION,
    AffineParams,
    apply_affine,
    crop_affine,
    eval_resize,
    eval_resize_size,
    normalize_image,
    sample_affine_params,
    train_affines,
)


def test_crop_affine_without_rotation_is_scale_and_shift():
    m = crop_affine((100.0, 50.0), 2.0, 128)  # crop side 400 px -> 128 px
    np.testing.assert_allclose(apply_affine([[100.0, 50.0]], m), [[64.0, 64.0]])
    np.testing.assert_allclose(apply_affine([[300.0, 50.0]], m), [[64.0 + 200 * 128 / 400, 64.0]])


def test_rotation_agrees_with_cv2_rotation_matrix():
    base = crop_affine((80.0, 60.0), 1.0, 64)
    rot = crop_affine((80.0, 60.0), 1.0, 64, rotation=25.0)
    r = np.vstack([cv2.getRotationMatrix2D((32.0, 32.0), 25.0, 1.0), [0, 0, 1]])
    np.testing.assert_allclose(rot, r @ base, atol=1e-12)


def test_input_and_output_affines_are_proportional():
    p = AffineParams(center=(70.0, 40.0), scale=0.9, rotation=-17.0, flip=False)
    m_in, m_out = train_affines(p, 256, 64)
    np.testing.assert_allclose(m_in, np.diag([4.0, 4.0, 1.0]) @ m_out, atol=1e-9)


def test_correct_flip_is_the_image_mirror_in_output_coordinates():
    p = AffineParams(center=(70.0, 40.0), scale=0.9, rotation=12.0, flip=False)
    pf = AffineParams(center=(70.0, 40.0), scale=0.9, rotation=12.0, flip=True)
    pts = np.random.default_rng(0).uniform(0, 140, size=(20, 2))
    m_in, m_out = train_affines(p, 256, 64)
    f_in, f_out = train_affines(pf, 256, 64, "correct")
    a, b = apply_affine(pts, m_out), apply_affine(pts, f_out)
    np.testing.assert_allclose(b[:, 0], 64 - 0.25 - a[:, 0])  # not 64 - 1 - x (the release labels)
    np.testing.assert_allclose(b[:, 1], a[:, 1])
    np.testing.assert_allclose(apply_affine(pts, f_in)[:, 0], 255 - apply_affine(pts, m_in)[:, 0])
    r_in, r_out = train_affines(pf, 256, 64, "release")  # release: the matrices do not flip
    np.testing.assert_allclose(r_out, m_out)


def test_random_params_stay_in_their_ranges():
    rng = np.random.default_rng(0)
    w, h = 300, 200
    draws = [sample_affine_params(rng, w, h) for _ in range(400)]
    s0 = min(w, h) / 200
    scales = np.array([d.scale for d in draws])
    assert (scales >= 0.75 * s0).all() and (scales < 1.5 * s0).all()
    assert max(abs(d.rotation) for d in draws) <= 30
    for d in draws:
        assert abs(d.center[0] - w / 2) <= 40 * d.scale and abs(d.center[1] - h / 2) <= 40 * d.scale
        assert float(d.center[0]).is_integer()  # integer translation of an integer base center
    assert 0.35 < np.mean([d.flip for d in draws]) < 0.65
    fixed = sample_affine_params(rng, w, h, NO_AUGMENTATION)
    assert (fixed.scale, fixed.rotation, fixed.center, fixed.flip) == (s0, 0.0, (150.0, 100.0), False)


def test_normalize_image_closed_form():
    img = np.random.default_rng(1).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    x = normalize_image(img)
    assert x.shape == (3, 5, 7) and x.dtype == np.float32
    np.testing.assert_allclose(x[:, 2, 3], (img[2, 3] / 255.0 - IMAGENET_MEAN) / IMAGENET_STD, rtol=1e-5)


# ---- test-time resize against the release's arithmetic, written out here independently ----------------

def release_resize(w: int, h: int, input_size: int):
    """The release's test-time resize (HigherHRNet's get_multi_scale_size + get_affine_transform, scale 1).

    Returns ((W', H'), center, scale, 2x3 forward affine), computed the release's way: the long side from
    the float x = S / short * long as int((x + 63) // 64 * 64), the scale in "size / 200" units, and the
    affine from three point pairs (center, a point half a crop above it, the third at a right angle).
    The release holds the points in float32 (cv2.getAffineTransform), which moves the matrix by ~1e-4 px;
    float64 here keeps the comparison tight.
    """
    min_input = int((1.0 * input_size + 63) // 64 * 64)
    center = np.array([int(w / 2.0 + 0.5), int(h / 2.0 + 0.5)])
    if w < h:
        w_res = int(min_input * 1.0 / 1.0)
        h_res = int(int((min_input / w * h + 63) // 64 * 64) * 1.0 / 1.0)
        scale = np.array([w / 200.0, h_res / w_res * w / 200.0])
    else:
        h_res = int(min_input * 1.0 / 1.0)
        w_res = int(int((min_input / h * w + 63) // 64 * 64) * 1.0 / 1.0)
        scale = np.array([w_res / h_res * h / 200.0, h / 200.0])
    src_w = scale[0] * 200.0
    src = np.zeros((3, 2))
    dst = np.zeros((3, 2))
    src[0] = center
    src[1] = center + np.array([0.0, -0.5 * src_w])
    dst[0] = [w_res * 0.5, h_res * 0.5]
    dst[1] = dst[0] + np.array([0.0, -0.5 * w_res])
    for pts in (src, dst):
        d = pts[0] - pts[1]
        pts[2] = pts[1] + np.array([-d[1], d[0]])
    # the affine through the three point pairs (cv2.getAffineTransform, solved here in float64)
    fwd = np.linalg.solve(np.hstack([src, np.ones((3, 1))]), dst).T
    return (w_res, h_res), center, scale, fwd


@pytest.mark.parametrize("w, h, s, expect", [
    (500, 333, 512, (768, 512)),  # x = 768.77: the release gives 768, a ceil would give 832
    (333, 500, 512, (512, 768)),  # the same, portrait
    (500, 333, 640, (960, 640)),  # x = 960.96
    (665, 1000, 256, (256, 384)),  # x = 384.96, portrait
    (640, 425, 512, (832, 512)), (425, 640, 512, (512, 832)),  # x = 771.0: padded up
    (512, 512, 512, (512, 512)), (900, 864, 256, (320, 256)), (1920, 1080, 512, (960, 512))])
def test_eval_resize_size_is_the_releases(w, h, s, expect):
    assert eval_resize_size(w, h, s) == expect
    assert release_resize(w, h, s)[0] == expect  # the table itself agrees with the release's arithmetic
    cw, ch = expect
    assert cw % 64 == 0 and ch % 64 == 0 and min(cw, ch) == s


def test_eval_resize_equals_the_release_on_every_size():
    """Every image size from 64 to 1100 px per side (both orientations) at S_in 512 and 640: the same canvas,
    center, scale and forward affine as the release, and trans_inv its exact inverse."""
    rng = np.random.default_rng(0)
    sizes = [(500, 333), (333, 500), (640, 427), (427, 640), (1920, 1080), (1080, 1920), (601, 601)]
    sizes += [tuple(int(v) for v in rng.integers(64, 1100, 2)) for _ in range(400)]
    cropped = 0
    for s in (512, 640):
        for w, h in sizes:
            canvas, center, scale, fwd = release_resize(w, h, s)
            t = eval_resize(w, h, s)
            assert t.canvas == canvas, (w, h, s)
            assert t.center == tuple(int(c) for c in center)
            np.testing.assert_allclose(t.scale, scale, rtol=1e-12)
            np.testing.assert_allclose(t.matrix, fwd, atol=1e-9)
            np.testing.assert_allclose(t.trans_inv @ np.vstack([t.matrix, [0, 0, 1]]), np.eye(3)[:2],
                                       atol=1e-12)
            long_x = s / min(w, h) * max(w, h)
            cropped += max(canvas) < long_x
    assert cropped > 5  # the cases where the canvas is narrower than the image (by < 1 px) were exercised


def test_resize_of_500x333_maps_canvas_pixels_back_like_the_release():
    """500x333 at 512: a 768-pixel canvas whose pixels are the release's warp, and decoded canvas points
    (x_in = 4x + 2) go back to the same original pixels as through the release's inverse affine."""
    from boir_core.data.transforms import warp

    w, h = 500, 333
    img = np.random.default_rng(3).integers(0, 256, (h, w, 3), dtype=np.uint8)
    t = eval_resize(w, h, 512)
    canvas, _, _, fwd = release_resize(w, h, 512)
    assert t.canvas == canvas == (768, 512)
    ours = warp(img, np.vstack([t.matrix, [0, 0, 1]]), t.canvas)
    theirs = cv2.warpAffine(img, fwd, canvas, flags=cv2.INTER_LINEAR)
    assert ours.shape == (512, 768, 3)
    assert np.abs(ours.astype(int) - theirs.astype(int)).max() <= 1
    inv = cv2.invertAffineTransform(fwd)
    out = np.stack(np.meshgrid(np.arange(192), np.arange(128)), -1).reshape(-1, 2) * 4.0 + 2.0
    np.testing.assert_allclose(apply_affine(out, t.trans_inv), apply_affine(out, inv), atol=1e-9)
    # the canvas covers 768 / (512 / 333) = 499.5 of the 500 columns: a quarter pixel cropped on each side
    left, right = apply_affine([[0.0, 0.0], [768.0, 0.0]], t.trans_inv)[:, 0]
    assert left == pytest.approx(0.25) and right == pytest.approx(499.75)


def test_resize_affine_and_its_inverse():
    w, h = 641, 427
    t = eval_resize(w, h, 256)
    f = 256 / 427
    np.testing.assert_allclose(t.matrix[:, :2], np.eye(2) * f)
    center = (int(w / 2 + 0.5), int(h / 2 + 0.5))
    np.testing.assert_allclose(apply_affine([center], t.matrix), [[t.canvas[0] / 2, t.canvas[1] / 2]])
    pts = np.random.default_rng(2).uniform(0, 600, size=(30, 2))
    np.testing.assert_allclose(apply_affine(apply_affine(pts, t.matrix), t.trans_inv), pts, atol=1e-9)
    inv = cv2.invertAffineTransform(t.matrix)
    np.testing.assert_allclose(t.trans_inv, inv, atol=1e-9)
    assert t.scale[0] * 200 == pytest.approx(t.canvas[0] / f)
    with pytest.raises(ValueError, match="positive"):
        eval_resize_size(0, 10, 64)
    assert math.isfinite(t.scale[1])


def test_denormalize_inverts_normalize():
    import torch

    from boir_core.data.transforms import denormalize_image, normalize_image

    img = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    back = denormalize_image(torch.from_numpy(normalize_image(img)))
    assert back.shape == (5, 7, 3) and np.allclose(back * 255, img, atol=1e-3)
    with pytest.raises(ValueError, match="3xHxW"):
        denormalize_image(np.zeros((5, 7, 3)))
