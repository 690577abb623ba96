"""The shared sums of the Bbox Mask Loss (``losses/bbox_mask_sums.py``): a similarity map of another dtype or
shape, a box that leaves exactly one pixel outside, the cosine soft mask on zero and near-zero pixels, torch's
default dtype, and every tensor kept on the input's device."""
from __future__ import annotations

import math
import re

import pytest
import torch

from boir_core.losses import BboxMaskSettings, EmbeddingMap, bbox_mask_terms
from boir_core.losses.reference import _unit  # v / max(‖v‖, 1e-12), F.normalize's convention

VARIANT_OPTIONS = [dict(), dict(distance="cosine"), dict(kernel="contrastive"), dict(variant="release-instance"),
                   dict(variant="release-image")]
VARIANT_IDS = ["paper-l2", "paper-cosine", "paper-contrastive", "release-instance", "release-image"]


def _people(dtype=torch.float64):
    """Two people of one 6 × 7 image and one of a second image (xywh boxes, keypoint-mean centers)."""
    bbox = torch.tensor([[0.5, 0.2, 4.0, 3.5], [2.0, 1.0, 4.5, 4.0], [1.0, 0.0, 3.0, 5.0]], dtype=dtype)
    imgid = torch.tensor([0, 0, 1])
    center = torch.tensor([[2.2, 1.7], [4.1, 3.3], [2.5, 2.5]], dtype=dtype)
    return bbox, imgid, center


@pytest.mark.parametrize("emb_dtype, sim_dtype", [(torch.float64, torch.float32), (torch.float32, torch.float64)])
def test_a_similarity_map_of_another_float_dtype_is_cast_to_the_embedding_dtype(emb_dtype, sim_dtype):
    """``similarity_emb`` (the map the soft masks come from) may come from another network in another
    precision: it is cast to the embedding's dtype, so the result equals the one with a cast copy."""
    g = torch.Generator().manual_seed(3)
    emb = torch.randn(2, 4, 6, 7, generator=g, dtype=emb_dtype)
    sim = torch.randn(2, 4, 6, 7, generator=g, dtype=sim_dtype)
    bbox, imgid, center = _people(emb_dtype)
    for options in (dict(), dict(variant="release-instance")):
        settings = BboxMaskSettings(**options)
        got = bbox_mask_terms(EmbeddingMap.of(emb, sim), bbox, imgid, center, settings)
        want = bbox_mask_terms(EmbeddingMap.of(emb, sim.to(emb_dtype)), bbox, imgid, center, settings)
        assert got.loss.dtype == emb_dtype
        assert torch.equal(got.loss, want.loss) and torch.equal(got.soft_mask_sum, want.soft_mask_sum), options


def test_a_similarity_map_of_another_shape_is_refused_naming_both_shapes():
    emb = torch.randn(1, 3, 4, 5, dtype=torch.float64)
    bbox = torch.tensor([[0.0, 0.0, 2.0, 2.0]], dtype=torch.float64)
    with pytest.raises(ValueError, match=re.escape("similarity_emb shape (1, 3, 4, 6) != emb shape (1, 3, 4, 5)")):
        bbox_mask_terms(EmbeddingMap.of(emb, torch.randn(1, 3, 4, 6)), bbox, torch.tensor([0]),
                        settings=BboxMaskSettings(instance_point="box"))


def test_a_box_that_leaves_exactly_one_pixel_outside():
    """p̄ᶜ is the mean of e outside B_i (Eq. 3): with one pixel outside, that pixel's unit vector itself."""
    emb = torch.tensor([[[[3.0, -1.0, 2.0]], [[4.0, 2.0, -2.0]]]], dtype=torch.float64)  # [1, D=2, 1, 3]
    bbox = torch.tensor([[0.0, 0.0, 2.0, 1.0]], dtype=torch.float64)  # columns 0 and 1 of the single row
    box_point = BboxMaskSettings(instance_point="box", beta=10.0)
    t = bbox_mask_terms(emb, bbox, torch.tensor([0]), settings=box_point)  # p read at column 1
    outside = torch.tensor([2.0, -2.0], dtype=torch.float64) / math.sqrt(8)
    p = torch.tensor([-1.0, 2.0], dtype=torch.float64) / math.sqrt(5)
    assert torch.allclose(t.p_bar_out[0], outside, rtol=0, atol=1e-14)
    assert torch.allclose(t.push_out[0], torch.exp(-10.0 / 2 * ((p - outside) ** 2).sum()), rtol=0, atol=1e-14)
    assert bool(t.has_outside[0])


@pytest.mark.parametrize("kernel", ["ae", "contrastive"])
def test_cosine_soft_mask_on_zero_and_near_zero_pixels_matches_a_loop_oracle(kernel):
    """distance="cosine": s(u) = exp(−κ·2(1 − cos(e(u), p))) on B_i, with cos taken between the directions
    (a pixel or a p whose vector is shorter than 1e-12 keeps its direction; an all-zero one has cos 0,
    so r = 2). Σ s and p̄ = Σ s·e / Σ s against a loop over the box pixels. Boxes here have integer edges:
    box (x, y, w, h) holds the columns x … x + w − 1 and rows y … y + h − 1; p is read at the box center."""
    g = torch.Generator().manual_seed(11)
    D, H, W = 3, 4, 5
    x = torch.randn(1, D, H, W, generator=g, dtype=torch.float64)
    x[0, :, 1, 1] = 0.0  # an all-zero pixel
    x[0, :, 1, 2] = torch.tensor([1.0, -2.0, 2.0], dtype=torch.float64) * 1e-13  # ‖x‖ = 3e-13: e has norm 0.3
    x[0, :, 2, 3] = torch.tensor([-4.0, 0.0, 3.0], dtype=torch.float64) * 2e-14  # ‖x‖ = 1e-13
    # p at (1, 2) the tiny pixel, at (2, 2) an ordinary one, at (1, 1) the zero pixel
    bbox = torch.tensor([[0.0, 0.0, 4.0, 3.0], [1.0, 1.0, 3.0, 2.0], [0.0, 0.0, 3.0, 3.0]], dtype=torch.float64)
    beta, temperature = 10.0, 0.05
    kappa = beta / D if kernel == "ae" else 1 / (2 * temperature)
    settings = BboxMaskSettings(kernel=kernel, distance="cosine", beta=beta, temperature=temperature,
                                instance_point="box")
    t = bbox_mask_terms(x, bbox, torch.zeros(3, dtype=torch.long), settings=settings)
    e = [[_unit(x[0, :, r, c]) for c in range(W)] for r in range(H)]
    for i, (bx, by, bw, bh) in enumerate(bbox.long().tolist()):
        pr, pc = by + bh // 2, bx + bw // 2
        assert t.point_yx[i].tolist() == [pr, pc]
        q = _unit(e[pr][pc])
        num, den = torch.zeros(D, dtype=torch.float64), 0.0
        for r in range(by, by + bh):
            for c in range(bx, bx + bw):
                s = math.exp(-kappa * max(2 * (1 - float((_unit(e[r][c]) * q).sum())), 0.0))
                num, den = num + s * e[r][c], den + s
        assert math.isclose(float(t.soft_mask_sum[i]), den, rel_tol=1e-12), (i, float(t.soft_mask_sum[i]), den)
        assert torch.allclose(t.p_bar[i], num / den, rtol=1e-12, atol=1e-15), i


@pytest.mark.parametrize("options", VARIANT_OPTIONS, ids=VARIANT_IDS)
def test_the_loss_does_not_depend_on_torchs_default_dtype(options):
    """A notebook that ran ``torch.set_default_dtype(torch.float64)`` (e.g. for a gradcheck) still gets the
    float32 loss of a float32 map, with the same values."""
    g = torch.Generator().manual_seed(4)
    emb = torch.randn(2, 4, 6, 7, generator=g)
    bbox, imgid, center = _people(torch.float32)
    want = bbox_mask_terms(emb, bbox, imgid, center, BboxMaskSettings(**options))
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        got = bbox_mask_terms(emb, bbox, imgid, center, BboxMaskSettings(**options))
    finally:
        torch.set_default_dtype(before)
    assert got.loss.dtype == torch.float32
    assert torch.equal(got.loss, want.loss) and torch.equal(got.soft_mask_sum, want.soft_mask_sum)


@pytest.mark.parametrize("options", VARIANT_OPTIONS, ids=VARIANT_IDS)
def test_every_tensor_stays_on_the_input_device(options):
    """Every tensor the loss makes is made on the input's device. PyTorch's ``meta`` device (shapes only, no
    data) stands in for a GPU on a CPU-only machine: a tensor made on the CPU by mistake meets a meta tensor
    and raises, as it would meet a CUDA tensor."""
    bbox, imgid, center = _people(torch.float32)
    emb = torch.randn(2, 4, 6, 7)
    meta = [a.to("meta") for a in (emb, bbox, imgid, center)]
    t = bbox_mask_terms(*meta, settings=BboxMaskSettings(**options))
    for name in ("loss", "pull_in", "push_out", "push_inst", "p_bar", "p_bar_out", "soft_mask_sum"):
        value = getattr(t, name)
        assert value.device.type == "meta", name
    assert t.pull_in.shape == (3,) and t.loss.shape == ()
