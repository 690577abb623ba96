"""The Bbox Mask Loss: every variant equals its loop oracle (float64, 1e-6), gradients, no-gradient soft
mask, order invariance and the degenerate cases (N = 0, N = 1, whole-map / tiny / border boxes, identical
embeddings)."""
from __future__ import annotations

import itertools

import pytest
import torch

from boir_core.losses import bbox_mask_loss, bbox_mask_terms, box_masks, pull_in, push_inst, push_out
from boir_core.losses.reference import ae_loss_ref, bbox_mask_paper_ref, bbox_mask_release_ref

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
    t = bbox_mask_terms(emb, bbox, imgid, center, **options)
    ref = bbox_mask_paper_ref(emb, bbox, imgid, center, **options)
    for name in ("pull_in", "push_out", "push_inst"):
        assert torch.allclose(getattr(t, name), torch.stack(ref["per_instance"][name]), atol=1e-6), name
        assert torch.allclose(getattr(t, "loss_" + name), ref[name], atol=1e-6), name
    assert t.loss > 0


@pytest.mark.parametrize("variant,level", [("release-instance", 0), ("release-image", 1)])
@pytest.mark.parametrize("beta", [10.0, 0.5])
def test_release_variants_match_pseudo_code(make_batch, variant, level, beta):
    emb, bbox, imgid, _ = _setup(make_batch)
    bbox[1] = torch.tensor([SIZE[1] - 0.5, 4.0, 0.8, 5.0], dtype=bbox.dtype)  # skipped: x2 − x1 = 1 at the border
    t = bbox_mask_terms(emb, bbox, imgid, variant=variant, beta=beta)
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
    level1 = bbox_mask_terms(emb, bbox, imgid, variant="release-image")
    assert torch.allclose(level1.loss, 1 + torch.exp(-10 / 4 * ((p - bg) ** 2).sum()))
    assert torch.equal(box_masks(bbox, 10, 10, "release-image")[0], inside)
    assert ae_loss_ref(torch.stack([p, bg])).item() == pytest.approx(level1.loss.item())


def test_gradients_match_oracle_and_soft_mask_carries_none(make_batch):
    emb, bbox, imgid, center = _setup(make_batch, counts=(2, 2), size=(8, 9), dim=4)
    for variant, ref in (("paper", lambda x: bbox_mask_paper_ref(x, bbox, imgid, center)["bbox_mask"]),
                         ("release-instance", lambda x: bbox_mask_release_ref(x, bbox, imgid, level=0)[0])):
        a = emb.clone().requires_grad_()
        bbox_mask_terms(a, bbox, imgid, center, variant=variant).loss.backward()
        b = emb.clone().requires_grad_()
        ref(b).backward()
        assert torch.allclose(a.grad, b.grad, atol=1e-8), variant
        # weights from a separate constant map give the same gradient: s has no gradient path
        c = emb.clone().requires_grad_()
        bbox_mask_terms(c, bbox, imgid, center, variant=variant, similarity_emb=emb.clone()).loss.backward()
        assert torch.allclose(a.grad, c.grad, atol=1e-12), variant


@pytest.mark.parametrize("options", [dict(variant="paper"),
                                     dict(variant="paper", kernel="contrastive", distance="cosine"),
                                     dict(variant="release-instance"), dict(variant="release-image")],
                         ids=lambda o: "-".join(o.values()))
def test_gradcheck_with_fixed_soft_mask(make_batch, options):
    emb, bbox, imgid, center = _setup(make_batch, counts=(2, 1), size=(4, 5), dim=3, seed=2)
    weights = emb.clone()  # the soft mask is a constant: gradcheck then tests the true derivative
    fn = lambda x: bbox_mask_terms(x, bbox, imgid, center, similarity_emb=weights, **options).loss  # noqa: E731
    assert torch.autograd.gradcheck(fn, (emb.clone().requires_grad_(),), atol=1e-6, fast_mode=True)


@pytest.mark.parametrize("variant", ["paper", "release-instance", "release-image"])
def test_invariant_to_the_order_of_people(make_batch, variant):
    emb, bbox, imgid, center = _setup(make_batch)
    perm = torch.randperm(imgid.numel(), generator=torch.Generator().manual_seed(3))
    a = bbox_mask_terms(emb, bbox, imgid, center, variant=variant)
    b = bbox_mask_terms(emb, bbox[perm], imgid[perm], center[perm], variant=variant)
    assert torch.allclose(a.loss, b.loss, atol=1e-12)
    for name in ("pull_in", "push_out", "push_inst"):
        assert torch.allclose(getattr(a, name)[perm], getattr(b, name), atol=1e-12)


def test_padded_capacity_choice_does_not_change_values(make_batch):
    """capacity=N is the sync-free layout used on CUDA; it must agree with the compact CPU layout."""
    emb, bbox, imgid, center = _setup(make_batch)
    for variant in ("paper", "release-image"):
        a = bbox_mask_terms(emb, bbox, imgid, center, variant=variant)
        b = bbox_mask_terms(emb, bbox, imgid, center, variant=variant, capacity=imgid.numel())
        assert torch.allclose(a.loss, b.loss, atol=1e-12)


def test_no_instances_and_single_instance(make_batch):
    emb, bbox, imgid, center = _setup(make_batch, counts=(0, 0))
    for variant in ("paper", "release-image", "release-instance"):
        x = emb.clone().requires_grad_()
        t = bbox_mask_terms(x, bbox, imgid, center, variant=variant)
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
        r = bbox_mask_terms(emb, bbox, imgid, variant=variant)
        level = {"release-instance": 0, "release-image": 1}[variant]
        assert r.valid.tolist() == [True, True, True, False]  # the dilated tiny box survives; x2 − x1 = 1 does not
        assert torch.allclose(r.loss, bbox_mask_release_ref(emb, bbox, imgid, level=level)[0], atol=1e-6)
    # identical embeddings: pull 0, every Gaussian push exactly 1, no NaN anywhere, finite gradients
    same = torch.ones(1, D, H, W, dtype=torch.float64, requires_grad=True)
    for options in (dict(), dict(distance="cosine"), dict(kernel="contrastive"), dict(variant="release-instance"),
                    dict(variant="release-image")):
        t = bbox_mask_terms(same, bbox, imgid, center, **options)
        t.loss.backward()
        assert torch.isfinite(t.loss) and torch.isfinite(same.grad).all(), options
    t = bbox_mask_terms(same.detach(), bbox, imgid, center)
    assert torch.allclose(t.pull_in, torch.zeros(4, dtype=torch.float64))
    assert torch.allclose(t.push_inst, torch.ones(4, dtype=torch.float64))


def test_term_functions_and_dict(make_batch):
    emb, bbox, imgid, center = _setup(make_batch)
    t = bbox_mask_terms(emb, bbox, imgid, center, beta=5.0)
    assert torch.equal(pull_in(emb, bbox, imgid, center, beta=5.0), t.pull_in)
    assert torch.equal(push_out(emb, bbox, imgid, center, beta=5.0), t.push_out)
    assert torch.equal(push_inst(emb, bbox, imgid, center, beta=5.0), t.push_inst)
    d = bbox_mask_loss(emb, bbox, imgid, center, beta=5.0)
    assert torch.allclose(d["bbox_mask"], d["pull_in"] + d["push_out"] + d["push_inst"])
    # β matters, and for any D
    assert not torch.allclose(bbox_mask_terms(emb, bbox, imgid, center, beta=1.0).loss, t.loss)


def test_fp32_under_autocast(make_batch):
    emb, bbox, imgid, center = _setup(make_batch)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        t = bbox_mask_terms(emb.bfloat16(), bbox.float(), imgid, center.float())
    ref = bbox_mask_terms(emb.bfloat16().double(), bbox, imgid, center)
    assert t.loss.dtype == torch.float32 and torch.allclose(t.loss.double(), ref.loss, atol=1e-5)


def test_bad_input_errors_name_the_problem(make_batch):
    emb, bbox, imgid, center = _setup(make_batch)
    with pytest.raises(ValueError, match="variant"):
        bbox_mask_terms(emb, bbox, imgid, center, variant="release")
    with pytest.raises(ValueError, match="kernel"):
        bbox_mask_terms(emb, bbox, imgid, center, variant="release-image", kernel="contrastive")
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
        got = bbox_mask_loss(*args, **options)
        want = bbox_mask_terms(*args, **options)
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
    t = bbox_mask_terms(emb, bbox, imgid, center, **options)
    t.loss.sum().backward()
    assert torch.isfinite(t.loss).all() and torch.isfinite(emb.grad).all(), options
    variant = options.get("variant", "paper")
    if variant == "paper":
        ref = bbox_mask_paper_ref(emb.detach(), bbox, imgid, center, **options)["bbox_mask"]
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
    t = bbox_mask_terms(emb, bbox, imgid, center, beta=1e4)  # psi = exp(-beta / D * 1) = 0 in float32
    assert t.soft_mask_sum[0] == 0  # every weight underflowed
    assert t.pull_in[0] == 0 and torch.isfinite(t.loss)
    assert torch.equal(t.loss, bbox_mask_terms(emb, bbox, imgid, center, beta=1e4, instance_point="center").loss)
