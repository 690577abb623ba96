"""The instance keypoint heads (docs/model.md#instance-keypoint-head, docs/model.md#boir-vs-cid) against
loop-based per-person oracles."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from model_helpers import randomise

from boir_core.model import InstanceKeypointHead, relative_coordinate_maps, sample_instance_params
from boir_core.model.cid import GFDHead
from boir_core.ops import PRIOR_BIAS

C_B, C, K, H, W = 12, 6, 5, 7, 9


def _layer_norm(z, ln):
    return (z - z.mean()) / torch.sqrt(z.var(unbiased=False) + ln.eps) * ln.weight + ln.bias


def _inorm(x, eps=1e-5):  # x [C, H, W]: per-channel zero mean, unit variance
    m = x.mean(dim=(1, 2), keepdim=True)
    v = x.var(dim=(1, 2), unbiased=False, keepdim=True)
    return (x - m) / torch.sqrt(v + eps)


def _spatial_inputs(g, b, y, x):
    """Loop oracle of [s, r_x, r_y]: per-pixel dot product and relative coordinates (x_i − x)/32."""
    c, h, w = g.shape
    out = torch.zeros(3, h, w)
    for yy in range(h):
        for xx in range(w):
            out[0, yy, xx] = sum(g[ch, yy, xx] * b[ch] for ch in range(c))
            out[1, yy, xx] = (x - xx) / 32.0
            out[2, yy, xx] = (y - yy) / 32.0
    return out


def boir_oracle(head, feats, coord, imgid):
    outs = []
    for i in range(coord.shape[0]):
        y, x, b = int(coord[i, 0]), int(coord[i, 1]), int(imgid[i])
        p = feats[b, :, y, x]
        g = F.conv2d(feats[b:b + 1], head.conv_down.weight, head.conv_down.bias)[0]
        lin_c, ln_c = head.c_attn.atn
        a = _layer_norm(lin_c.weight @ p + lin_c.bias, ln_c)
        zc = g * a[:, None, None]
        lin_s, ln_s = head.s_attn.atn
        bvec = _layer_norm(lin_s.weight @ p + lin_s.bias, ln_s)
        inp = _spatial_inputs(g, bvec, y, x)
        m = _inorm(F.conv2d(inp[None], head.s_attn.conv.weight, head.s_attn.conv.bias, padding=2)[0])
        zs = g * m
        fuse = head.fuse_attn[0]
        h = F.conv2d(torch.cat([zc, zs])[None], fuse.weight, fuse.bias)[0]
        h = torch.relu(_inorm(h))
        outs.append(F.conv2d(h[None], head.heatmap_conv.weight, head.heatmap_conv.bias)[0])
    return torch.stack(outs) if outs else torch.zeros(0, K, H, W)


def cid_oracle(head, feats, coord, imgid):
    outs = []
    for i in range(coord.shape[0]):
        y, x, b = int(coord[i, 0]), int(coord[i, 1]), int(imgid[i])
        p = feats[b, :, y, x]
        g = F.conv2d(feats[b:b + 1], head.conv_down.weight, head.conv_down.bias)[0]
        a = head.c_attn.atn.weight @ p + head.c_attn.atn.bias
        bvec = head.s_attn.atn.weight @ p + head.s_attn.atn.bias
        inp = _spatial_inputs(g, bvec, y, x)
        m = torch.sigmoid(F.conv2d(inp[None], head.s_attn.conv.weight, head.s_attn.conv.bias, padding=2)[0])
        h = F.conv2d(torch.cat([g * a[:, None, None], g * m])[None], head.fuse_attn.weight, head.fuse_attn.bias)
        outs.append(F.conv2d(torch.relu(h), head.heatmap_conv.weight, head.heatmap_conv.bias)[0])
    return torch.stack(outs)


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(1)
    feats = torch.randn(2, C_B, H, W, generator=g)
    coord = torch.tensor([[0, 0], [3, 8], [6, 4], [2, 2]])
    imgid = torch.tensor([1, 0, 1, 0])
    return feats, coord, imgid


def test_boir_instance_head_matches_loop_oracle(batch):
    head = randomise(InstanceKeypointHead(C_B, C, K))
    feats, coord, imgid = batch
    with torch.no_grad():
        out = head(feats, coord, imgid)
        ref = boir_oracle(head, feats, coord, imgid)
    assert out.shape == (4, K, H, W)
    assert torch.allclose(out, ref, atol=1e-4), (out - ref).abs().max()


def test_cid_gfd_head_matches_loop_oracle(batch):
    head = randomise(GFDHead(C_B, C, K), seed=3)
    feats, coord, imgid = batch
    with torch.no_grad():
        assert torch.allclose(head(feats, coord, imgid), cid_oracle(head, feats, coord, imgid), atol=1e-4)


def test_instances_are_independent_and_zero_people_work(batch):
    head = randomise(InstanceKeypointHead(C_B, C, K))
    feats, coord, imgid = batch
    with torch.no_grad():
        full = head(feats, coord, imgid)
        perm = torch.tensor([2, 0, 3, 1])
        assert torch.allclose(head(feats, coord[perm], imgid[perm]), full[perm], atol=1e-5)
        assert torch.allclose(head(feats, coord[1:2], imgid[1:2]), full[1:2], atol=1e-5)
    empty = head(feats, coord[:0], imgid[:0])
    assert empty.shape == (0, K, H, W)
    empty.sum().backward()  # a batch with no people must still back-propagate (zero gradient)
    assert head.conv_down.weight.grad is not None and not head.conv_down.weight.grad.any()


def test_params_default_to_backbone_vectors_at_the_centers(batch):
    head = randomise(InstanceKeypointHead(C_B, C, K))
    feats, coord, imgid = batch
    params = sample_instance_params(feats, coord, imgid)
    for i in range(4):
        assert torch.equal(params[i], feats[imgid[i], :, coord[i, 0], coord[i, 1]])
    with torch.no_grad():
        assert torch.equal(head(feats, coord, imgid), head(feats, coord, imgid, params))
        other = head(feats, coord, imgid, params.flip(0))
    assert not torch.allclose(other, head(feats, coord, imgid))


def test_relative_coordinate_maps_closed_form():
    coord = torch.tensor([[2, 5]])  # (y, x)
    rel = relative_coordinate_maps(coord, 4, 7)
    ys, xs = torch.meshgrid(torch.arange(4.0), torch.arange(7.0), indexing="ij")
    assert torch.equal(rel[0, 0], (5 - xs) / 32) and torch.equal(rel[0, 1], (2 - ys) / 32)


def test_release_init_prior_and_bad_input(batch):
    head = InstanceKeypointHead(C_B, C, K)
    for conv in (head.conv_down, head.s_attn.conv, head.fuse_attn[0], head.heatmap_conv):
        assert torch.allclose(conv.bias, torch.full_like(conv.bias, PRIOR_BIAS))
    assert not head.c_attn.atn[0].bias.any()
    feats, coord, imgid = batch
    with torch.no_grad():
        prob = torch.sigmoid(head(feats, coord, imgid))
    # sanity value of docs/model.md#values-at-initialisation
    assert torch.allclose(prob, torch.full_like(prob, 0.01), atol=2e-3)
    with pytest.raises(ValueError, match="outside the feature map"):
        head(feats, torch.tensor([[H, 0]]), torch.tensor([0]))
    with pytest.raises(ValueError, match="outside the feature map"):
        head(feats, torch.tensor([[0, 0]]), torch.tensor([2]))
    with pytest.raises(ValueError, match=r"\[N, 2\]"):
        head(feats, torch.tensor([0, 0]), torch.tensor([0]))
    with pytest.raises(TypeError, match="int64"):
        head(feats, coord.float(), imgid)
