"""The Bbox Mask Loss: every variant equals its loop oracle (float64, 1e-6), gradients, no-gradient soft
mask, order invariance and the degenerate cases (N = 0, N = 1, whole-map / tiny / border boxes, identical
embeddings).

Then, on a smaller batch: the input checks name the argument and the bad value; the public helpers' defaults;
``distance_r`` over the last dimension of any shape; the tensors ``bbox_mask_terms`` returns besides the losses
(p, p̄, p̄ᶜ, the pixels, ``valid``); the cosine distance on all-zero and tiny (‖x‖ < 1e-12) pixels, and the
contrastive push-out with a mean p̄ shorter than 1, compared relatively (the values are small); the contrastive
soft-mean fallback; ``term_gradients`` per term; half-precision boxes. Oracles are loops or closed forms.
"""
from __future__ import annotations

import itertools
import math

import pytest
import torch

from boir_core.losses import (
    BboxMaskSettings,
    EmbeddingMap,
    bbox_mask_loss,
    bbox_mask_terms,
    box_masks,
    box_rows_cols,
    distance_r,
    instance_pixels,
    pull_in,
    push_inst,
    push_out,
    term_gradients,
)
from boir_core.losses.reference import (
    ae_loss_ref,
    bbox_mask_paper_ref,
    bbox_mask_release_ref,
    paper_box_members,
    pixel_index,
)

COUNTS = (3, 0, 1, 4)
SIZE = (11, 13)
PAPER_OPTIONS = [dict(kernel=k, distance=d, instance_point=p, beta=b)
                 for (k, d), p, b in zip(itertools.product(("ae", "contrastive"), ("l2", "cosine")),
                                         ("center", "box", "center", "box"), (10.0, 1.0, 10.0, 5.0))]


def _setup(make_batch, counts=COUNTS, size=SIZE, dim=6, seed=0):
    outputs, batch = make_batch(counts=counts, size=size, emb_dim=dim, seed=seed)
    return outputs["emb"], batch["instance_bbox"], batch["instance_imgid"], batch["instance_center"]


@pytest.mark.parametrize("options", PAPER_OPTIONS, ids=lambda o: f"{o['kernel']}-{o['distance']}-{o['instance_point']}")
def test_paper_variant_matches_oracle(make_batch, options):
    emb, bbox, imgid, center = _setup(make_batch)
    t = bbox_mask_terms(emb, bbox, imgid, center, BboxMaskSettings(**options))
    ref = bbox_mask_paper_ref(emb, bbox, imgid, center, BboxMaskSettings(**options))
    for name in ("pull_in", "push_out", "push_inst"):
        assert torch.allclose(getattr(t, name), torch.stack(ref["per_instance"][name]), atol=1e-6), name
        assert torch.allclose(getattr(t, "loss_" + name), ref[name], atol=1e-6), name
    assert t.loss > 0


@pytest.mark.parametrize("variant,level", [("release-instance", 0), ("release-image", 1)])
@pytest.mark.parametrize("beta", [10.0, 0.5])
def test_release_variants_match_pseudo_code(make_batch, variant, level, beta):
    emb, bbox, imgid, _ = _setup(make_batch)
    bbox[1] = torch.tensor([SIZE[1] - 0.5, 4.0, 0.8, 5.0], dtype=bbox.dtype)  # skipped: x2 − x1 = 1 at the border
    t = bbox_mask_terms(emb, bbox, imgid, settings=BboxMaskSettings(variant=variant, beta=beta))
    want, per_image = bbox_mask_release_ref(emb, bbox, imgid, level=level, beta=beta)
    assert torch.allclose(t.loss, want, atol=1e-6)
    assert not bool(t.valid[1])
    # the per-instance values split every image's loss exactly
    values = t.pull_in + t.push_out + t.push_inst
    per_image_got = torch.zeros(len(COUNTS), dtype=values.dtype).index_add_(0, imgid, values)
    assert torch.allclose(per_image_got, torch.stack([torch.as_tensor(v, dtype=values.dtype) for v in per_image]),
                          atol=1e-6)


def test_release_closed_forms_single_instance():
    """Closed forms for one person (docs/release_vs_paper.md#bbox-mask-loss): level 1 gives 1 + ψ(p, bg); level 0
    pull + 1 + ψ(m, p̄ᶜ)."""
    g = torch.Generator().manual_seed(5)
    emb = torch.randn(1, 4, 10, 10, generator=g, dtype=torch.float64)
    bbox = torch.tensor([[2.0, 1.0, 5.0, 6.0]], dtype=torch.float64)
    imgid = torch.tensor([0])
    e = emb / emb.norm(dim=1, keepdim=True)
    p = e[0, :, 3, 3]  # floor((2+5)/2), floor((1+6)/2)
    inside = torch.zeros(10, 10, dtype=torch.bool)
    inside[0:8, 1:8] = True  # rows int(1)−1 … int(7)+1 (half-open), cols int(2)−1 … int(7)+1
    bg = e[0][:, ~inside].mean(1)
    level1 = bbox_mask_terms(emb, bbox, imgid, settings=BboxMaskSettings(variant="release-image"))
    assert torch.allclose(level1.loss, 1 + torch.exp(-10 / 4 * ((p - bg) ** 2).sum()))
    assert torch.equal(box_masks(bbox, 10, 10, "release-image")[0], inside)
    assert ae_loss_ref(torch.stack([p, bg])).item() == pytest.approx(level1.loss.item())


def test_gradients_match_oracle_and_soft_mask_carries_none(make_batch):
    emb, bbox, imgid, center = _setup(make_batch, counts=(2, 2), size=(8, 9), dim=4)
    for variant, ref in (("paper", lambda x: bbox_mask_paper_ref(x, bbox, imgid, center)["bbox_mask"]),
                         ("release-instance", lambda x: bbox_mask_release_ref(x, bbox, imgid, level=0)[0])):
        a = emb.clone().requires_grad_()
        bbox_mask_terms(a, bbox, imgid, center, BboxMaskSettings(variant=variant)).loss.backward()
        b = emb.clone().requires_grad_()
        ref(b).backward()
        assert torch.allclose(a.grad, b.grad, atol=1e-8), variant
        # weights from a separate constant map give the same gradient: s has no gradient path
        c = emb.clone().requires_grad_()
        bbox_mask_terms(EmbeddingMap.of(c, emb.clone()), bbox, imgid, center,
                        BboxMaskSettings(variant=variant)).loss.backward()
        assert torch.allclose(a.grad, c.grad, atol=1e-12), variant


@pytest.mark.parametrize("options", [dict(variant="paper"),
                                     dict(variant="paper", kernel="contrastive", distance="cosine"),
                                     dict(variant="release-instance"), dict(variant="release-image")],
                         ids=lambda o: "-".join(o.values()))
def test_gradcheck_with_fixed_soft_mask(make_batch, options):
    emb, bbox, imgid, center = _setup(make_batch, counts=(2, 1), size=(4, 5), dim=3, seed=2)
    weights = emb.clone()  # the soft mask is a constant: gradcheck then tests the true derivative
    fn = lambda x: bbox_mask_terms(EmbeddingMap.of(x, weights), bbox, imgid, center, BboxMaskSettings(**options)).loss  # noqa: E731
    assert torch.autograd.gradcheck(fn, (emb.clone().requires_grad_(),), atol=1e-6, fast_mode=True)


@pytest.mark.parametrize("variant", ["paper", "release-instance", "release-image"])
def test_invariant_to_the_order_of_people(make_batch, variant):
    emb, bbox, imgid, center = _setup(make_batch)
    perm = torch.randperm(imgid.numel(), generator=torch.Generator().manual_seed(3))
    a = bbox_mask_terms(emb, bbox, imgid, center, BboxMaskSettings(variant=variant))
    b = bbox_mask_terms(emb, bbox[perm], imgid[perm], center[perm], BboxMaskSettings(variant=variant))
    assert torch.allclose(a.loss, b.loss, atol=1e-12)
    for name in ("pull_in", "push_out", "push_inst"):
        assert torch.allclose(getattr(a, name)[perm], getattr(b, name), atol=1e-12)


def test_padded_capacity_choice_does_not_change_values(make_batch):
    """capacity=N is the sync-free layout used on CUDA; it must agree with the compact CPU layout."""
    emb, bbox, imgid, center = _setup(make_batch)
    for variant in ("paper", "release-image"):
        a = bbox_mask_terms(emb, bbox, imgid, center, BboxMaskSettings(variant=variant))
        b = bbox_mask_terms(emb, bbox, imgid, center, BboxMaskSettings(variant=variant, capacity=imgid.numel()))
        assert torch.allclose(a.loss, b.loss, atol=1e-12)


def test_no_instances_and_single_instance(make_batch):
    emb, bbox, imgid, center = _setup(make_batch, counts=(0, 0))
    for variant in ("paper", "release-image", "release-instance"):
        x = emb.clone().requires_grad_()
        t = bbox_mask_terms(x, bbox, imgid, center, BboxMaskSettings(variant=variant))
        t.loss.backward()
        assert t.loss.item() == 0 and t.pull_in.shape == (0,) and torch.isfinite(x.grad).all()
    emb, bbox, imgid, center = _setup(make_batch, counts=(1, 0))
    t = bbox_mask_terms(emb, bbox, imgid, center)
    assert t.push_inst.item() == 0 and t.loss_push_inst.item() == 0  # no pair: no push_inst
    assert t.loss_push_out > 0 and torch.allclose(t.loss, t.pull_in[0] + t.push_out[0])


def test_whole_map_box_tiny_box_border_box_and_identical_embeddings():
    H, W, D = 8, 7, 5
    g = torch.Generator().manual_seed(9)
    emb = torch.randn(1, D, H, W, generator=g, dtype=torch.float64)
    bbox = torch.tensor([[-3.0, -2.0, 20.0, 20.0],   # covers the whole map
                         [3.2, 4.1, 0.3, 0.2],       # smaller than a pixel
                         [5.5, -1.0, 4.0, 3.0],      # crosses the top-right border
                         [6.8, 7.5, 0.1, 0.1]],      # in the last pixel: the release skips it
                        dtype=torch.float64)
    center = torch.tensor([[3.0, 3.0], [3.3, 4.2], [6.2, 0.5], [6.9, 7.6]], dtype=torch.float64)
    imgid = torch.zeros(4, dtype=torch.long)
    masks = box_masks(bbox, H, W)
    assert masks[0].all() and masks[1].sum() == 1 and masks[1, 4, 3]
    assert masks[2].sum() == 2 * 2 and masks[2, 0:2, 5:7].all()  # columns 5, 6 and rows 0, 1
    t = bbox_mask_terms(emb, bbox, imgid, center)
    assert t.push_out[0] == 0 and not t.has_outside[0]  # documented: no outside pixels
    assert t.pull_in[1].abs() < 1e-12  # one-pixel box at p: p̄ = p
    ref = bbox_mask_paper_ref(emb, bbox, imgid, center)
    assert torch.allclose(t.loss, ref["bbox_mask"], atol=1e-6)
    for variant in ("release-image", "release-instance"):
        r = bbox_mask_terms(emb, bbox, imgid, settings=BboxMaskSettings(variant=variant))
        level = {"release-instance": 0, "release-image": 1}[variant]
        assert r.valid.tolist() == [True, True, True, False]  # the dilated tiny box survives; x2 − x1 = 1 does not
        assert torch.allclose(r.loss, bbox_mask_release_ref(emb, bbox, imgid, level=level)[0], atol=1e-6)
    # identical embeddings: pull 0, every Gaussian push exactly 1, no NaN anywhere, finite gradients
    same = torch.ones(1, D, H, W, dtype=torch.float64, requires_grad=True)
    for options in (dict(), dict(distance="cosine"), dict(kernel="contrastive"), dict(variant="release-instance"),
                    dict(variant="release-image")):
        t = bbox_mask_terms(same, bbox, imgid, center, BboxMaskSettings(**options))
        t.loss.backward()
        assert torch.isfinite(t.loss) and torch.isfinite(same.grad).all(), options
    t = bbox_mask_terms(same.detach(), bbox, imgid, center)
    assert torch.allclose(t.pull_in, torch.zeros(4, dtype=torch.float64))
    assert torch.allclose(t.push_inst, torch.ones(4, dtype=torch.float64))


def test_term_functions_and_dict(make_batch):
    emb, bbox, imgid, center = _setup(make_batch)
    t = bbox_mask_terms(emb, bbox, imgid, center, BboxMaskSettings(beta=5.0))
    assert torch.equal(pull_in(emb, bbox, imgid, center, BboxMaskSettings(beta=5.0)), t.pull_in)
    assert torch.equal(push_out(emb, bbox, imgid, center, BboxMaskSettings(beta=5.0)), t.push_out)
    assert torch.equal(push_inst(emb, bbox, imgid, center, BboxMaskSettings(beta=5.0)), t.push_inst)
    d = bbox_mask_loss(emb, bbox, imgid, center, BboxMaskSettings(beta=5.0))
    assert torch.allclose(d["bbox_mask"], d["pull_in"] + d["push_out"] + d["push_inst"])
    # β matters, and for any D
    assert not torch.allclose(bbox_mask_terms(emb, bbox, imgid, center, BboxMaskSettings(beta=1.0)).loss, t.loss)


def test_fp32_under_autocast(make_batch):
    emb, bbox, imgid, center = _setup(make_batch)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        t = bbox_mask_terms(emb.bfloat16(), bbox.float(), imgid, center.float())
    ref = bbox_mask_terms(emb.bfloat16().double(), bbox, imgid, center)
    assert t.loss.dtype == torch.float32 and torch.allclose(t.loss.double(), ref.loss, atol=1e-5)


def test_bad_input_errors_name_the_problem(make_batch):
    emb, bbox, imgid, center = _setup(make_batch)
    with pytest.raises(ValueError, match="variant"):
        bbox_mask_terms(emb, bbox, imgid, center, BboxMaskSettings(variant="release"))
    with pytest.raises(ValueError, match="kernel"):
        bbox_mask_terms(emb, bbox, imgid, center, BboxMaskSettings(variant="release-image", kernel="contrastive"))
    with pytest.raises(ValueError, match="instance_center"):
        bbox_mask_terms(emb, bbox, imgid)
    with pytest.raises(ValueError, match="instance_bbox"):
        bbox_mask_terms(emb, bbox[:, :3], imgid, center)
    with pytest.raises(ValueError, match="disagree on N"):
        bbox_mask_terms(emb, bbox, imgid[:-1], center)


def test_bbox_mask_loss_passes_every_option_through(make_batch):
    """The dict wrapper computes what bbox_mask_terms computes with the same options (a dropped option would
    silently train with the defaults: beta 10, the paper variant)."""
    from boir_core.losses import bbox_mask_loss, bbox_mask_terms

    outputs, batch = make_batch(counts=(3, 2), size=(10, 9))
    args = (outputs["emb"], batch["instance_bbox"], batch["instance_imgid"], batch["instance_center"])
    for options in ({"beta": 2.5}, {"distance": "cosine"}, {"variant": "release-instance"}):
        got = bbox_mask_loss(*args, settings=BboxMaskSettings(**options))
        want = bbox_mask_terms(*args, settings=BboxMaskSettings(**options))
        default = bbox_mask_terms(*args)
        assert torch.equal(got["bbox_mask"], want.loss) and not torch.equal(want.loss, default.loss), options
        assert torch.equal(got["push_out"], want.loss_push_out)


@pytest.mark.parametrize("options", [dict(), dict(distance="cosine"), dict(kernel="contrastive"),
                                     dict(variant="release-instance"), dict(variant="release-image")],
                         ids=["paper-l2", "paper-cosine", "paper-contrastive", "release-instance", "release-image"])
def test_all_zero_embedding_pixels_give_finite_gradients(make_batch, options):
    """A pixel whose embedding is exactly zero (a dead ReLU channel block, zero padding) has norm 0: its unit
    vector is 0 as in F.normalize, the loss equals the oracle's and no gradient is NaN (sqrt'(0) is infinite)."""
    emb, bbox, imgid, center = _setup(make_batch)
    emb = emb.detach().clone()
    emb[:, :, 2:6, 3:8] = 0.0  # inside several boxes and outside others
    emb.requires_grad_(True)
    t = bbox_mask_terms(emb, bbox, imgid, center, BboxMaskSettings(**options))
    t.loss.sum().backward()
    assert torch.isfinite(t.loss).all() and torch.isfinite(emb.grad).all(), options
    variant = options.get("variant", "paper")
    if variant == "paper":
        ref = bbox_mask_paper_ref(emb.detach(), bbox, imgid, center, BboxMaskSettings(**options))["bbox_mask"]
    else:
        level = {"release-instance": 0, "release-image": 1}[variant]
        ref = bbox_mask_release_ref(emb.detach(), bbox, imgid, level=level)[0]
    assert torch.allclose(t.loss.detach(), ref, atol=1e-6)


def test_paper_box_pixels_match_a_loop_oracle_at_the_edges():
    """The paper's B_i (module docstring): column u is in when its center u + ½ lies in [x, x + w] (both ends
    included), or when it contains x + w/2, clipped to the map; rows likewise. Boxes with edges exactly on
    pixel centers, thinner than a pixel, and partly or wholly outside the map."""
    from boir_core.losses import box_rows_cols
    from boir_core.losses.reference import paper_box_members

    def members(lo, size, n):
        inside = paper_box_members(lo, size, n)
        return [u in inside for u in range(n)]

    boxes = torch.tensor([[2.5, 1.5, 3.0, 2.0], [4.2, 3.1, 0.3, 0.2], [-3.0, 5.0, 4.0, 9.0], [9.5, -4.0, 3.0, 3.5],
                          [12.0, 20.0, 2.0, 2.0], [0.0, 0.0, 10.0, 8.0], [6.1, 2.0, 2.8, 0.9], [4.6, 4.6, 0.8, 0.8]],
                         dtype=torch.float64)
    height, width = 8, 10
    rows, cols, valid = box_rows_cols(boxes, height, width)
    for i, (x, y, w, h) in enumerate(boxes.tolist()):
        assert cols[i].tolist() == members(x, w, width), (i, "cols")
        assert rows[i].tolist() == members(y, h, height), (i, "rows")
    assert valid.all()


def test_lengths_of_every_instance_tensor_are_checked(make_batch):
    """Each of the box, image-id and center tensors is held to the same N, and the error names them all."""
    emb, bbox, imgid, center = _setup(make_batch)
    for args in ((bbox[:-1], imgid, center), (bbox, imgid[:-1], center), (bbox, imgid, center[:-1])):
        with pytest.raises(ValueError, match=r"disagree on N: \{'instance_bbox': \d+, 'instance_imgid': \d+, "
                                             r"'instance_center': \d+\}"):
            bbox_mask_terms(emb, *args)


def test_a_box_whose_soft_weights_all_underflow_falls_back_to_p():
    """Eq. 2's soft mean when every soft weight of the box is exactly 0 in float32 (the box's embeddings are far
    from p, with a sharp kernel): p̄ falls back to p, so the pull term is 0, not d(p, 0) from 0/0; the default
    instance point is the center (the call below leaves it out)."""
    H, W, D = 6, 6, 4
    emb = torch.zeros(1, D, H, W)
    emb[0, :, 5, 5] = 1.0  # the instance's center pixel, outside its box
    bbox = torch.tensor([[0.0, 0.0, 3.0, 3.0]])  # pixels (0..2, 0..2): embeddings 0, r(0, p/|p|) = 1
    center = torch.tensor([[5.2, 5.3]])
    imgid = torch.zeros(1, dtype=torch.long)
    t = bbox_mask_terms(emb, bbox, imgid, center, BboxMaskSettings(beta=1e4))  # psi = exp(-beta / D * 1) = 0 in float32
    assert t.soft_mask_sum[0] == 0  # every weight underflowed
    assert t.pull_in[0] == 0 and torch.isfinite(t.loss)
    center_point = BboxMaskSettings(beta=1e4, instance_point="center")
    assert torch.equal(t.loss, bbox_mask_terms(emb, bbox, imgid, center, center_point).loss)


# ---- a smaller batch: input checks, helpers, returned tensors, edge pixels ---------------------------------

SMALL_COUNTS = (3, 0, 2)
SMALL_SIZE = (7, 9)


def _small_setup(make_batch, counts=SMALL_COUNTS, size=SMALL_SIZE, dim=4, seed=0):
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
        ("bbox_mask_terms", "variant", "release",
         lambda: bbox_mask_terms(emb, bbox, imgid, center, BboxMaskSettings(variant="release"))),
        ("bbox_mask_terms", "kernel", "gaussian",
         lambda: bbox_mask_terms(emb, bbox, imgid, center, BboxMaskSettings(kernel="gaussian"))),
        ("bbox_mask_terms", "distance", "l1",
         lambda: bbox_mask_terms(emb, bbox, imgid, center, BboxMaskSettings(distance="l1"))),
        ("bbox_mask_terms", "instance_point", "middle",
         lambda: bbox_mask_terms(emb, bbox, imgid, center, BboxMaskSettings(instance_point="middle"))),
    ]


@pytest.mark.parametrize("index", range(9))
def test_a_bad_choice_is_named_with_its_value_and_the_choices(make_batch, index):
    """Every string option of the public functions is checked where it is read; the message starts with the
    argument's own name and the value given (``kernel='gaussian' is not one of ['ae', 'contrastive']``)."""
    from boir_core.losses.bbox_mask import DISTANCES, INSTANCE_POINTS, KERNELS, VARIANTS

    function, name, value, call = _choice_calls(*_small_setup(make_batch))[index]
    choices = {"variant": VARIANTS, "kernel": KERNELS, "distance": DISTANCES, "instance_point": INSTANCE_POINTS}[name]
    with pytest.raises(ValueError) as info:
        call()
    assert str(info.value) == f"{name}={value!r} is not one of {list(choices)}", function


def test_bad_shapes_are_named_with_the_tensor_and_its_shape(make_batch):
    emb, bbox, imgid, center = _small_setup(make_batch)
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
    emb, bbox, imgid, center = _small_setup(make_batch)
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
    emb, bbox, imgid, center = _small_setup(make_batch)
    _, dim, h, w = emb.shape
    beta, temperature = 4.0, 0.5
    t = bbox_mask_terms(emb, bbox, imgid, center, BboxMaskSettings(kernel=kernel, beta=beta, temperature=temperature))
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
        t = bbox_mask_terms(emb, bbox, imgid, center, BboxMaskSettings(**options))
        ref = bbox_mask_paper_ref(emb, bbox, imgid, center, BboxMaskSettings(**options))
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
    t = bbox_mask_terms(emb, bbox, imgid, center, BboxMaskSettings(kernel="contrastive", temperature=1e-4))
    assert t.soft_mask_sum[0] == 0
    assert torch.equal(t.p_bar, t.p)
    # push_out = softplus(ℓ(p, p̄ᶜ) − ℓ(p, p̄)) with ℓ(p, p̄) = 0 and p̄ᶜ = (p + e_0)/27 (36 − 9 pixels)
    p = torch.full((D,), 0.5, dtype=torch.float64)
    outside_mean = (p + torch.tensor([1.0, 0, 0, 0], dtype=torch.float64)) / (H * W - 9)
    background = -float(((p - outside_mean) ** 2).sum()) / (2 * 1e-4)
    assert float(t.push_out[0]) == pytest.approx(math.log1p(math.exp(background)), rel=1e-9, abs=0)
    ref = bbox_mask_paper_ref(emb, bbox, imgid, center, BboxMaskSettings(kernel="contrastive", temperature=1e-4))
    assert float(ref["per_instance"]["push_out"][0]) == pytest.approx(float(t.push_out[0]), rel=1e-9, abs=0)


@pytest.mark.parametrize("kernel", ["ae", "contrastive"])
def test_term_gradients_gives_each_term_its_own_gradient(make_batch, kernel):
    """``term_gradients`` returns ∂L/∂emb for ``pull_in``, ``push_out``, ``push_inst`` and ``total`` under
    those names, each equal to the gradient of the loop oracle's term (the soft mask carries none)."""
    emb, bbox, imgid, center = _small_setup(make_batch, counts=(3, 2), size=(5, 6), dim=3, seed=1)
    options = dict(kernel=kernel, beta=3.0, temperature=0.5)
    grads = term_gradients(emb, bbox, imgid, center, BboxMaskSettings(**options))
    assert sorted(grads) == ["pull_in", "push_inst", "push_out", "total"]
    x = emb.clone().requires_grad_(True)
    ref = bbox_mask_paper_ref(x, bbox, imgid, center, BboxMaskSettings(**options))
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
    emb, bbox, imgid, center = _small_setup(make_batch)
    cpu = bbox_mask_terms(emb, bbox, imgid, center, BboxMaskSettings(kernel=kernel))
    gpu = bbox_mask_terms(emb.cuda(), bbox.cuda(), imgid.cuda(), center.cuda(), BboxMaskSettings(kernel=kernel))
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


def test_psi_is_the_closed_form_kernel_and_refuses_a_non_positive_dimension():
    """ψ(r) = exp(−β/D·r); D (the embedding's channel count) must be positive, and the refusal says which."""
    from boir_core.losses.bbox_mask import psi

    r = torch.tensor([0.0, 0.5, 2.0], dtype=torch.float64)
    torch.testing.assert_close(psi(r, 3.0, 6.0), torch.exp(-0.5 * r))
    for dim in (0, -2.0):
        with pytest.raises(ValueError, match=rf"^psi: dim \(D\) must be > 0, got {dim}$"):
            psi(r, 1.0, dim)
