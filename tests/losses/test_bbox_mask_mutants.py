"""The Bbox Mask Loss (``losses/bbox_mask.py``): behaviour that its mutation run (issue 14) showed untested.

The input checks name the argument and the bad value; the public helpers' defaults; ``distance_r`` over the
last dimension of any shape; the tensors ``bbox_mask_terms`` returns besides the losses (p, p̄, p̄ᶜ, the
pixels, ``valid``); the cosine distance on all-zero and tiny (‖x‖ < 1e-12) pixels, and the contrastive
push-out with a mean p̄ shorter than 1, compared relatively (the values are small); the contrastive
soft-mean fallback; ``term_gradients`` per term; half-precision boxes. Oracles are loops or closed forms.
"""
from __future__ import annotations

import math

import pytest
import torch

from boir_core.losses import bbox_mask_terms, box_masks, box_rows_cols, distance_r, instance_pixels, term_gradients
from boir_core.losses.reference import bbox_mask_paper_ref, paper_box_members, pixel_index

COUNTS = (3, 0, 2)
SIZE = (7, 9)


def _setup(make_batch, counts=COUNTS, size=SIZE, dim=4, seed=0):
    outputs, batch = make_batch(counts=counts, size=size, emb_dim=dim, seed=seed)
    return outputs["emb"], batch["instance_bbox"], batch["instance_imgid"], batch["instance_center"]


def _choice_calls(emb, bbox, imgid, center):
    h, w = emb.shape[2:]
    a = torch.ones(3)
    return [
        ("box_masks", "variant", "release", lambda: box_masks(bbox, h, w, variant="release")),
        ("box_rows_cols", "variant", "Paper", lambda: box_rows_cols(bbox, h, w, variant="Paper")),
        ("instance_pixels", "variant", "release", lambda: instance_pixels(bbox, h, w, variant="release")),
        ("instance_pixels", "instance_point", "middle",
         lambda: instance_pixels(bbox, h, w, instance_point="middle", instance_center=center)),
        ("distance_r", "distance", "l1", lambda: distance_r(a, a, distance="l1")),
        ("bbox_mask_terms", "variant", "release", lambda: bbox_mask_terms(emb, bbox, imgid, center, variant="release")),
        ("bbox_mask_terms", "kernel", "gaussian", lambda: bbox_mask_terms(emb, bbox, imgid, center, kernel="gaussian")),
        ("bbox_mask_terms", "distance", "l1", lambda: bbox_mask_terms(emb, bbox, imgid, center, distance="l1")),
        ("bbox_mask_terms", "instance_point", "middle",
         lambda: bbox_mask_terms(emb, bbox, imgid, center, instance_point="middle")),
    ]


@pytest.mark.parametrize("index", range(9))
def test_a_bad_choice_is_named_with_its_value_and_the_choices(make_batch, index):
    """Every string option of the public functions is checked where it is read; the message starts with the
    argument's own name and the value given (``kernel='gaussian' is not one of ['ae', 'contrastive']``)."""
    from boir_core.losses.bbox_mask import DISTANCES, INSTANCE_POINTS, KERNELS, VARIANTS

    function, name, value, call = _choice_calls(*_setup(make_batch))[index]
    choices = {"variant": VARIANTS, "kernel": KERNELS, "distance": DISTANCES, "instance_point": INSTANCE_POINTS}[name]
    with pytest.raises(ValueError) as info:
        call()
    assert str(info.value) == f"{name}={value!r} is not one of {list(choices)}", function


def test_bad_shapes_are_named_with_the_tensor_and_its_shape(make_batch):
    emb, bbox, imgid, center = _setup(make_batch)
    n = imgid.numel()
    cases = [
        ((emb[0], bbox, imgid, center), ValueError, f"emb must be 4-d, got shape {tuple(emb[0].shape)}"),
        ((emb.tolist(), bbox, imgid, center), TypeError, "emb must be a torch.Tensor, got list"),
        ((emb, bbox[:, :3], imgid, center), ValueError,
         f"instance_bbox must be 2-d with last dimension 4, got shape ({n}, 3)"),
        ((emb, bbox, imgid[:, None], center), ValueError, f"instance_imgid must be 1-d, got shape ({n}, 1)"),
        ((emb, bbox, imgid.tolist(), center), TypeError, "instance_imgid must be a torch.Tensor, got list"),
        # the centers' last dimension is checked too: [N, 3] would otherwise be read as (x, y) silently
        ((emb, bbox, imgid, torch.cat([center, center[:, :1]], 1)), ValueError,
         f"instance_center must be 2-d with last dimension 2, got shape ({n}, 3)"),
        ((emb, bbox, imgid, center[:, :1]), ValueError,
         f"instance_center must be 2-d with last dimension 2, got shape ({n}, 1)"),
        ((emb, bbox, imgid, None), ValueError, "instance_point='center' needs instance_center [N, 2] (x, y)"),
    ]
    for args, error, message in cases:
        with pytest.raises(error) as info:
            bbox_mask_terms(*args)
        assert str(info.value) == message


def test_helper_defaults_are_the_paper_center_and_l2(make_batch):
    """``instance_pixels(bbox, H, W, instance_center=...)`` (notebook 03 calls it so) reads the paper's
    keypoint-mean center, and ``distance_r(a, b)`` is ‖a − b‖²."""
    emb, bbox, imgid, center = _setup(make_batch)
    h, w = emb.shape[2:]
    got = instance_pixels(bbox, h, w, instance_center=center)
    want = [[pixel_index(cy, h), pixel_index(cx, w)] for cx, cy in center.tolist()]
    assert got.tolist() == want
    a, b = emb[0, :, 0, 0], emb[0, :, 1, 2]
    assert distance_r(a, b).item() == pytest.approx(sum((x - y) ** 2 for x, y in zip(a.tolist(), b.tolist())))


@pytest.mark.parametrize("shape", [(5,), (2, 3, 5), (4, 1, 5)])
def test_distance_r_works_over_the_last_dimension_of_any_shape(shape):
    g = torch.Generator().manual_seed(4)
    a = torch.randn(*shape, generator=g, dtype=torch.float64)
    b = torch.randn(*shape, generator=g, dtype=torch.float64) * 0.3
    flat_a, flat_b = a.reshape(-1, shape[-1]).tolist(), b.reshape(-1, shape[-1]).tolist()
    l2 = [sum((x - y) ** 2 for x, y in zip(u, v)) for u, v in zip(flat_a, flat_b)]
    cos = [sum(x * y for x, y in zip(u, v)) / math.sqrt(sum(x * x for x in u) * sum(y * y for y in v))
           for u, v in zip(flat_a, flat_b)]
    for distance, want in (("l2", l2), ("cosine", [2 * (1 - c) for c in cos])):
        got = distance_r(a, b, distance)
        assert got.shape == shape[:-1], distance
        assert got.reshape(-1).tolist() == pytest.approx(want, rel=1e-12, abs=1e-12), distance


@pytest.mark.parametrize("kernel", ["ae", "contrastive"])
def test_returned_points_and_means_match_a_loop(make_batch, kernel):
    """The fields notebooks and pictures read: p_i (the unit embedding at the pixel of the center), p̄_i
    (Eq. 2's soft-masked box mean, weights exp(−κ‖e − p‖²) with κ = β/D or 1/(2τ)), p̄ᶜ_i (Eq. 3's
    mean outside the box), the pixel, and ``valid`` (every paper instance takes part)."""
    emb, bbox, imgid, center = _setup(make_batch)
    _, dim, h, w = emb.shape
    beta, temperature = 4.0, 0.5
    t = bbox_mask_terms(emb, bbox, imgid, center, kernel=kernel, beta=beta, temperature=temperature)
    kappa = beta / dim if kernel == "ae" else 1 / (2 * temperature)
    e = emb / emb.norm(dim=1, keepdim=True)
    for i in range(imgid.numel()):
        b = int(imgid[i])
        x, y, bw, bh = bbox[i].tolist()
        row, col = pixel_index(float(center[i, 1]), h), pixel_index(float(center[i, 0]), w)
        p = e[b, :, row, col]
        inside = [(v, u) for v in paper_box_members(y, bh, h) for u in paper_box_members(x, bw, w)]
        weights = [math.exp(-kappa * float(((e[b, :, v, u] - p) ** 2).sum())) for v, u in inside]
        p_bar = sum(s * e[b, :, v, u] for s, (v, u) in zip(weights, inside)) / sum(weights)
        outside = [(v, u) for v in range(h) for u in range(w) if (v, u) not in inside]
        p_out = sum(e[b, :, v, u] for v, u in outside) / len(outside)
        assert t.point_yx[i].tolist() == [row, col], i
        assert torch.allclose(t.p[i], p, atol=1e-12), i
        assert torch.allclose(t.p_bar[i], p_bar, atol=1e-12), i
        assert torch.allclose(t.p_bar_out[i], p_out, atol=1e-12), i
    assert t.valid.dtype == torch.bool and t.valid.tolist() == [True] * imgid.numel()


@pytest.mark.parametrize("kernel", ["ae", "contrastive"])
def test_cosine_distance_on_zero_and_tiny_pixels_matches_the_oracle(kernel):
    """distance="cosine" compares directions: r = 2·(1 − cos), with F.normalize's convention that a pixel
    of norm below 1e-12 becomes x/1e-12 (shorter than 1; 0 for an all-zero pixel, whose cosine with
    anything is 0). Tiny pixels inside the boxes tilt the soft mask (so an L2 soft mask differs), an
    all-zero pixel at an instance point gives r = 2 to everybody (L2 would give 1), and the contrastive
    push_out compares p with p̄ and p̄ᶜ, shorter than 1, by cosine. Compared relatively: at a sharp
    temperature these values are far below 1e-6."""
    g = torch.Generator().manual_seed(1)
    emb = torch.randn(2, 3, 6, 7, generator=g, dtype=torch.float64)
    emb[0, :, 1:3, 1:3] *= 1e-13 / emb[0, :, 1:3, 1:3].norm(dim=0)  # norm 1e-13: unit vectors of length 0.1
    emb[1, :, 4, 5] = 0.0  # the point of instance 3
    bbox = torch.tensor([[0.0, 0.0, 4.0, 4.0], [2.0, 1.0, 3.0, 3.0], [0.5, 0.5, 5.0, 4.0], [3.0, 2.0, 4.0, 4.0],
                         [0.0, 3.0, 3.0, 3.0]], dtype=torch.float64)
    center = torch.tensor([[1.5, 2.5], [4.5, 3.5], [1.5, 1.5], [5.5, 4.5], [1.2, 4.9]], dtype=torch.float64)
    imgid = torch.tensor([0, 0, 1, 1, 1])
    for temperature in (0.5, 0.05):
        options = dict(kernel=kernel, distance="cosine", beta=6.0, temperature=temperature)
        t = bbox_mask_terms(emb, bbox, imgid, center, **options)
        ref = bbox_mask_paper_ref(emb, bbox, imgid, center, **options)
        for name in ("pull_in", "push_out", "push_inst"):
            want = torch.stack(ref["per_instance"][name])
            assert torch.allclose(getattr(t, name), want, rtol=1e-8, atol=1e-13), (name, temperature)
        assert float(t.p[3].norm()) == 0.0 and 0.09 < float(t.p[0].norm()) < 0.11


def test_contrastive_soft_weights_that_all_underflow_fall_back_to_p():
    """Eq. 2 in the contrastive kernel when every soft weight of the box is exactly 0 (the box's pixels are
    far from p, with τ = 1e-4: exp(−1/(2τ)) = 0 in float64): p̄ = p, so ℓ(p, p̄) = 0 in the push_out,
    not ℓ(p, 0) from 0/0."""
    H, W, D = 6, 6, 4
    emb = torch.zeros(1, D, H, W, dtype=torch.float64)
    emb[0, :, 5, 5] = 1.0  # the instance's center pixel, outside its box
    emb[0, 0, 4, 0] = 1.0  # one more unit pixel outside the box: the outside mean is not along p
    bbox = torch.tensor([[0.0, 0.0, 3.0, 3.0]], dtype=torch.float64)  # embeddings 0 inside: r(0, p) = 1
    center = torch.tensor([[5.2, 5.3]], dtype=torch.float64)
    imgid = torch.zeros(1, dtype=torch.long)
    t = bbox_mask_terms(emb, bbox, imgid, center, kernel="contrastive", temperature=1e-4)
    assert t.soft_mask_sum[0] == 0
    assert torch.equal(t.p_bar, t.p)
    # push_out = softplus(ℓ(p, p̄ᶜ) − ℓ(p, p̄)) with ℓ(p, p̄) = 0 and p̄ᶜ = (p + e_0)/27 (36 − 9 pixels)
    p = torch.full((D,), 0.5, dtype=torch.float64)
    outside_mean = (p + torch.tensor([1.0, 0, 0, 0], dtype=torch.float64)) / (H * W - 9)
    background = -float(((p - outside_mean) ** 2).sum()) / (2 * 1e-4)
    assert float(t.push_out[0]) == pytest.approx(math.log1p(math.exp(background)), rel=1e-9, abs=0)
    ref = bbox_mask_paper_ref(emb, bbox, imgid, center, kernel="contrastive", temperature=1e-4)
    assert float(ref["per_instance"]["push_out"][0]) == pytest.approx(float(t.push_out[0]), rel=1e-9, abs=0)


@pytest.mark.parametrize("kernel", ["ae", "contrastive"])
def test_term_gradients_gives_each_term_its_own_gradient(make_batch, kernel):
    """``term_gradients`` returns ∂L/∂emb for ``pull_in``, ``push_out``, ``push_inst`` and ``total`` under
    those names, each equal to the gradient of the loop oracle's term (the soft mask carries none)."""
    emb, bbox, imgid, center = _setup(make_batch, counts=(3, 2), size=(5, 6), dim=3, seed=1)
    options = dict(kernel=kernel, beta=3.0, temperature=0.5)
    grads = term_gradients(emb, bbox, imgid, center, **options)
    assert sorted(grads) == ["pull_in", "push_inst", "push_out", "total"]
    x = emb.clone().requires_grad_(True)
    ref = bbox_mask_paper_ref(x, bbox, imgid, center, **options)
    for name, ref_name in (("pull_in", "pull_in"), ("push_out", "push_out"), ("push_inst", "push_inst"),
                           ("total", "bbox_mask")):
        (want,) = torch.autograd.grad(ref[ref_name], x, retain_graph=True)
        assert float(want.abs().max()) > 0, name
        assert torch.allclose(grads[name], want, atol=1e-10), name


def test_half_precision_boxes_give_the_same_pixels_as_float64():
    """Boxes in bfloat16 / float16 (exactly representable values) select the same pixels and the same p_i as
    in float64, also past column 256, where bfloat16 cannot hold u + ½ (the helpers compute in float32)."""
    boxes = torch.tensor([[260.0, 2.0, 10.0, 4.0], [4.0, 1.0, 6.0, 2.0], [296.0, 5.0, 8.0, 3.0]])
    height, width = 8, 300
    want_masks = box_masks(boxes.double(), height, width)
    want_points = instance_pixels(boxes.double(), height, width, instance_point="box")
    cols = [paper_box_members(x, w, width) for x, _, w, _ in boxes.tolist()]
    assert [want_masks[i].any(0).nonzero().flatten().tolist() for i in range(3)] == cols
    for dtype in (torch.bfloat16, torch.float16):
        assert torch.equal(boxes.to(dtype).double(), boxes.double())
        for variant in ("paper", "release-instance"):
            assert torch.equal(box_masks(boxes.to(dtype), height, width, variant),
                               box_masks(boxes.double(), height, width, variant)), (dtype, variant)
            assert torch.equal(instance_pixels(boxes.to(dtype), height, width, variant, "box"),
                               instance_pixels(boxes.double(), height, width, variant, "box")), (dtype, variant)
    assert want_points.tolist() == [[4, 265], [2, 7], [6, 299]]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("kernel", ["ae", "contrastive"])
def test_on_cuda_matches_cpu(make_batch, kernel):
    """The same terms on a GPU (tensors built on the inputs' device: the pixel grids, the InfoNCE mask)."""
    emb, bbox, imgid, center = _setup(make_batch)
    cpu = bbox_mask_terms(emb, bbox, imgid, center, kernel=kernel)
    gpu = bbox_mask_terms(emb.cuda(), bbox.cuda(), imgid.cuda(), center.cuda(), kernel=kernel)
    for name in ("pull_in", "push_out", "push_inst", "p_bar", "p_bar_out"):
        assert torch.allclose(getattr(gpu, name).cpu(), getattr(cpu, name), atol=1e-9), name
    h, w = emb.shape[2:]
    assert torch.equal(box_masks(bbox.cuda(), h, w).cpu(), box_masks(bbox, h, w))



def test_normalize_embedding_gives_every_pixel_unit_length_over_the_channels():
    """``normalize_embedding`` (notebook 03's first step): each pixel's D-vector divided by its own length,
    compared with a loop; an integer map comes back as floats."""
    from boir_core.losses import normalize_embedding

    g = torch.Generator().manual_seed(5)
    emb = torch.randn(2, 3, 4, 5, generator=g, dtype=torch.float64)
    got = normalize_embedding(emb)
    assert got.shape == emb.shape
    for b in range(2):
        for y in range(4):
            for x in range(5):
                v = emb[b, :, y, x]
                torch.testing.assert_close(got[b, :, y, x], v / v.norm(), rtol=1e-12, atol=1e-12)
    as_ints = normalize_embedding(torch.tensor([[[[3]], [[4]]]]))  # [1, 2, 1, 1]: the 3-4-5 triangle
    assert as_ints.is_floating_point()
    torch.testing.assert_close(as_ints.flatten(), torch.tensor([0.6, 0.8], dtype=as_ints.dtype))
