"""The formula explorers (ψ, OKS, focal loss) against closed forms, driven through their controls."""
from __future__ import annotations

import math

import numpy as np
import pytest

from boir_core.data.profiles import COCO_SIGMAS, get_profile
from boir_core.viz.explorers import place
from boir_core.viz.formula_explorers import (
    FocalLossExplorer,
    KernelExplorer,
    OKSExplorer,
    random_unit_distances,
)


def test_random_unit_distances_have_the_closed_form_moments():
    # cos of two random unit vectors in D dims: mean 0, variance 1/D; r = 2 − 2·cos
    for dim in (4, 64):
        r = random_unit_distances(dim, pairs=20000, seed=3)
        assert r.min() >= 0 and r.max() <= 4 + 1e-12
        assert r.mean() == pytest.approx(2.0, abs=0.03)
        assert r.std() == pytest.approx(2 / math.sqrt(dim), rel=0.05)


def test_kernel_explorer_is_the_closed_form_and_follows_beta_and_d():
    ex = KernelExplorer(beta=10.0, dim=128)
    c = ex.update()
    np.testing.assert_allclose(c["paper"], np.exp(-10.0 / 128 * c["r"]), rtol=1e-12)
    np.testing.assert_allclose(c["release"], np.exp(-10.0 * c["r"]), rtol=1e-12)
    assert c["floor_paper"] == pytest.approx(math.exp(-40 / 128))  # 0.732: the smallest push, never halves
    assert "never halves" in ex.caption.value and "0.732" in ex.caption.value
    np.testing.assert_allclose(c["random_paper"], np.exp(-10.0 / 128 * c["random_r"]), rtol=1e-12)
    png = ex.png
    ex.dim.value = 8  # fewer channels: the paper's kernel sharpens, it halves at 8·ln2/10 = 0.555
    c8 = ex.last
    assert c8["half_paper"] == pytest.approx(8 * math.log(2) / 10)
    i = int(np.argmin(abs(c8["r"] - c8["half_paper"])))
    assert c8["paper"][i] == pytest.approx(0.5, abs=0.01) and ex.png != png
    assert "halves at r = D·ln2/β = 0.555" in ex.caption.value
    np.testing.assert_allclose(c8["release"], c["release"])  # the release's soft mask ignores D
    assert c8["random_paper"].mean() < c["random_paper"].mean()
    png = ex.png
    ex.kernel.value = KernelExplorer.KERNELS[1]
    assert ex.last["kernel"] == "release" and ex.png != png
    assert np.median(ex.last["random_release"]) < 1e-6  # exp(−10·r) at r ≈ 2: unrelated people hardly pushed
    ex.beta.value = 20.0
    assert ex.last["half_release"] == pytest.approx(math.log(2) / 20)


def test_oks_explorer_is_the_closed_form():
    prof = get_profile("coco")
    ex = OKSExplorer(prof.keypoints, prof.sigmas, keypoint="nose", error_px=5.0, size_px=64)
    c = ex.update()
    k = prof.keypoints.index("nose")
    closed = math.exp(-25.0 / (2 * 64.0 ** 2 * (2 * COCO_SIGMAS[k]) ** 2))
    assert c["oks"] == pytest.approx(closed, rel=1e-12)
    assert c["thresholds_passed"] == sum(closed >= t for t in np.linspace(0.5, 0.95, 10))
    hip = prof.keypoints.index("left_hip")
    assert c["all"][hip] > 0.9 > 0.5 > c["all"][k]  # the notebook's 5 px: large on a nose, small on a hip
    assert ex.term(k, c["d_half"], 64.0) == pytest.approx(0.5, rel=1e-12)
    np.testing.assert_allclose(c["curves"][64.0],
                               np.exp(-c["errors"] ** 2 / (2 * 64.0 ** 2 * (2 * COCO_SIGMAS[k]) ** 2)), rtol=1e-10)
    png = ex.png
    ex.size.value = 128  # twice the size: the same error costs a quarter in the exponent
    assert ex.last["oks"] == pytest.approx(closed ** 0.25, rel=1e-10) and ex.png != png
    ex.keypoint.value = "left_hip"
    assert ex.last["k"] == hip and "left_hip" in ex.caption.value
    ex.error.value = 0.0
    assert ex.last["oks"] == 1.0 and ex.last["thresholds_passed"] == 10
    with pytest.raises(ValueError, match="3 keypoint names but 2 sigmas"):
        OKSExplorer(["a", "b", "c"], [0.1, 0.2])


def test_focal_loss_explorer_is_the_closed_form():
    ex = FocalLossExplorer(p=0.3, target=1.0)
    c = ex.update()
    assert c["loss"] == pytest.approx(-math.log(0.3) * 0.7 ** 2, rel=1e-12)
    assert c["kept"] == pytest.approx(0.7 ** 2, rel=1e-12)
    assert "the peak" in ex.caption.value
    np.testing.assert_allclose(c["focal"][1.0], -np.log(c["grid"]) * (1 - c["grid"]) ** 2, rtol=1e-12)
    np.testing.assert_allclose(c["focal"][0.0], -np.log(1 - c["grid"]) * c["grid"] ** 2, rtol=1e-12)
    png = ex.png
    ex.target.value = 0.5  # near the peak: the (1 − Y)⁴ factor keeps a sixteenth of the negative loss
    c = ex.last
    assert c["loss"] == pytest.approx(-math.log(0.7) * 0.3 ** 2 * 0.5 ** 4, rel=1e-12)
    assert c["kept"] == pytest.approx(0.3 ** 2 * 0.5 ** 4, rel=1e-12) and ex.png != png
    assert "Y = 0.5" in ex.caption.value
    png = ex.png
    ex.scale.value = "log"
    assert ex.png != png and ex.last["scale"] == "log"
    ex.p.value = 0.9  # a confident false positive far from any peak costs more than one near a peak
    far = float(FocalLossExplorer.pixel_loss(0.9, 0.0)[0])
    assert far > ex.last["loss"] > 0
    assert place(ex) is ex
