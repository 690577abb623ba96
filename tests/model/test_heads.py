"""Neck and dense heads: structure, release initialisation, the bbox-head init bug, and the forward API."""
from __future__ import annotations

import pytest
import torch

from boir_core.model import ASPP, CID, BoIR, MultiHead
from boir_core.ops import PRIOR_BIAS

C_B = 24


def _small_multihead(mode, seed=0):
    torch.manual_seed(seed)
    return MultiHead(C_B, 5, emb_dim=8, bbox_head_init=mode, neck_channels=16, neck_middle_channels=8,
                     head_channels=8, atrous_rates=(1, 2, 3))


def _bbox_step(mh, feats):
    """One forward/backward of a bbox-only loss; returns grads of the hidden block and of the features."""
    mh.zero_grad()
    feats = feats.clone().requires_grad_(True)
    out = mh(feats)
    loss = ((out["bbox"] - 3.0) ** 2).mean()
    loss.backward()
    hidden = torch.cat([p.grad.flatten() for p in mh.bbox_head.hidden_block.parameters()])
    return hidden, feats.grad, mh.bbox_head.output_conv.weight.grad.clone()


@pytest.mark.parametrize("mode", ["release", "working"])
def test_bbox_head_init_release_never_learns_ours_does(mode):
    mh = _small_multihead(mode).train()
    feats = torch.randn(2, C_B, 10, 10)
    with torch.no_grad():
        assert torch.equal(mh(feats)["bbox"], torch.ones(2, 4, 10, 10))  # every output 1.0 at init
    opt = torch.optim.SGD(mh.bbox_head.parameters(), lr=0.5)
    hidden1, fgrad1, wgrad1 = _bbox_step(mh, feats)
    opt.step()
    hidden2, fgrad2, wgrad2 = _bbox_step(mh, feats)
    # with the output weight at zero, no gradient reaches the block on the very first step in either mode
    assert not hidden1.any() and not fgrad1.any()
    if mode == "release":
        # the hidden block outputs exactly 0, so the output weight never gets gradient either: dead forever
        assert not wgrad1.any() and not wgrad2.any()
        assert not hidden2.any() and not fgrad2.any()
        assert not mh.bbox_head.output_conv.weight.any()
    else:
        assert wgrad1.abs().sum() > 0  # the output weight learns at step 1 ...
        assert hidden2.abs().sum() > 0 and fgrad2.abs().sum() > 0  # ... then the block and the features do


def test_release_init_of_neck_and_heads():
    mh = _small_multihead("working")
    for name in ("center_head", "buk_head", "emb_head"):
        out_conv = getattr(mh, name).output_conv
        # emb too (docs/release_vs_paper.md#release-quirks)
        assert torch.allclose(out_conv.bias, torch.full_like(out_conv.bias, PRIOR_BIAS))
    convs = [m for m in mh.neck.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(m.bias is None for m in convs)
    w = torch.cat([m.weight.flatten() for m in convs])
    assert abs(w.std().item() - 0.001) < 2e-4
    block = mh.bbox_head.hidden_block  # "working": standard PyTorch init, not N(0, 0.001²)
    assert block.conv1.weight.std() > 0.01
    assert mh.bbox_head.output_conv.weight.abs().sum() == 0
    with pytest.raises(ValueError, match="bbox_head_init"):
        MultiHead(C_B, 5, bbox_head_init="zeros")


def test_aspp_branch_dilations_by_impulse_response():
    aspp = ASPP(1, channels=4, middle_channels=2, atrous_rates=(2, 3, 5)).eval()
    with torch.no_grad():
        for m in aspp.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.weight.fill_(1.0)
    x = torch.zeros(1, 1, 21, 21)
    x[0, 0, 10, 10] = 1.0
    with torch.no_grad():
        for branch, r in zip(aspp.convs[1:4], (2, 3, 5)):
            nz = branch(x)[0, 0].nonzero().tolist()
            assert sorted(nz) == sorted([[10 + dy, 10 + dx] for dy in (-r, 0, r) for dx in (-r, 0, r)])
        assert aspp.convs[0](x)[0, 0].nonzero().tolist() == [[10, 10]]
        pooled = aspp.convs[4](x)[0, 0]
        assert torch.allclose(pooled, torch.full_like(pooled, 1 / 441))  # global: the same everywhere
    assert aspp.receptive_fields() == [1, 5, 7, 11, 0]


def test_aspp_image_pooling_accepts_one_image_in_training():
    aspp = ASPP(4, channels=8, middle_channels=4).train()
    out = aspp(torch.randn(1, 4, 6, 6))
    assert out.shape == (1, 8, 6, 6)
    assert torch.equal(aspp.convs[4][2].running_mean, torch.zeros(4))  # B=1 uses, not updates, running stats


@pytest.fixture(scope="module")
def small_models():
    torch.manual_seed(0)
    return {
        "train": BoIR(17, "hrnet_w18_small", inst_channels=8),
        "infer": BoIR(14, "hrnet_w18_small", inst_channels=8, train_heads=False),
        "cid": CID(17, "hrnet_w18_small", inst_channels=8),
    }


def test_forward_train_outputs_boir(small_models):
    m = small_models["train"].train()
    images = torch.randn(2, 3, 64, 64)
    coord, imgid = torch.tensor([[3, 4], [15, 0], [8, 8]]), torch.tensor([0, 1, 1])
    out = m.forward_train(images, coord, imgid)
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "features": (2, 240, 16, 16), "center": (2, 1, 16, 16), "buk": (2, 17, 16, 16),
        "emb": (2, 128, 16, 16), "bbox": (2, 4, 16, 16), "instance_heatmap": (3, 17, 16, 16)}
    m.eval()
    with torch.no_grad():
        f = m.features(images)
        assert torch.equal(m.center_logits(f), m.forward_train(images, coord, imgid)["center"])
        assert torch.equal(m.instance_heatmaps(f, coord, imgid), m(images, coord, imgid)["instance_heatmap"])
        none = m.forward_train(images, coord[:0], imgid[:0])["instance_heatmap"]
    assert none.shape == (0, 17, 16, 16)


def test_forward_inference_model_and_cid(small_models):
    images = torch.randn(1, 3, 64, 64)
    coord, imgid = torch.tensor([[5, 6]]), torch.tensor([0])
    with torch.no_grad():
        out = small_models["infer"].eval().forward_train(images, coord, imgid)
        assert set(out) == {"features", "center", "instance_heatmap"}
        assert out["instance_heatmap"].shape == (1, 14, 16, 16)
        cid = small_models["cid"].eval()
        out = cid.forward_train(images, coord, imgid)
        assert set(out) == {"features", "heatmap", "instance_heatmap"}
        assert out["heatmap"].shape == (1, 18, 16, 16)
        assert torch.equal(cid.center_logits(out["features"]), out["heatmap"][:, -1:])
