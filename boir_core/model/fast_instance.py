"""The instance head for decoding, rewritten to do the same arithmetic with less work (inference only).

At test time every person center (y, x) is looked up in every view of the image (the image and its
mirror, docs/inference.md#decoding-steps), so the head runs for ``V · n`` people that share only
``V`` maps G = conv_down(F). The readable head (:class:`~boir_core.model.InstanceKeypointHead`, CID's
:class:`~boir_core.model.cid.GFDHead`) copies G once per person and concatenates the two attended copies
[G ⊙ a_i, G ⊙ m_i] (2c channels) before the 1×1 fuse conv W = [W_1 | W_2]. Because the fuse conv is linear,

    W [G ⊙ a_i ; G ⊙ m_i] = (W_1 · diag(a_i)) G  +  m_i ⊙ (W_2 G)

so the per-person work is one c×c matrix (W_1 scaled by a_i's columns) applied to the view's G, plus a
scaled copy of W_2 G, which is computed **once per view**. Nothing of size [V·n, 2c, H, W] is built: half
the multiply-adds of the fuse conv and a third of the memory traffic. The fuse bias is dropped when an
InstanceNorm follows (BoIR: the norm removes any per-channel constant exactly).

Everything is batched (matrix products over [V, n·c, c] × [V, c, H·W]); there is no Python loop over
people or views, and the same code traces to ONNX with a dynamic number of people and a dynamic map size
(:mod:`boir_core.engine.inference.export`). ``tests/model/test_fast_instance.py`` checks it against the readable head.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .instance_head import RELATIVE_COORD_SCALE

__all__ = ["views_heatmaps"]


def _rel_maps(coords: torch.Tensor, h: int, w: int, like: torch.Tensor) -> torch.Tensor:
    """[n, 2, h, w] relative-coordinate maps ((x_i − x)/32, (y_i − y)/32), built from the map's own size."""
    xs = torch.arange(w, device=like.device).to(like.dtype)
    ys = torch.arange(h, device=like.device).to(like.dtype)
    yi = coords[:, 0].to(like.dtype)[:, None, None]
    xi = coords[:, 1].to(like.dtype)[:, None, None]
    zeros = torch.zeros_like(yi) * xs[None, None, :] * ys[None, :, None]  # [n, h, w] of zeros, traceable
    rx = (xi - xs[None, None, :]) / RELATIVE_COORD_SCALE + zeros
    ry = (yi - ys[None, :, None]) / RELATIVE_COORD_SCALE + zeros
    return torch.stack((rx, ry), dim=1)


def views_heatmaps(head: nn.Module, features: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """Instance heatmap logits of every center in every view: [V · n, K, H, W], view-major.

    Row ``v · n + i`` equals ``head(features, coords.repeat(V, 1), arange(V).repeat_interleave(n))[v · n + i]``
    up to float rounding. ``head`` is BoIR's :class:`~boir_core.model.InstanceKeypointHead` or CID's
    :class:`~boir_core.model.cid.GFDHead`; ``features`` [V, C_b, H, W]; ``coords`` [n, 2] int64 (y, x).
    """
    boir = isinstance(head.fuse_attn, nn.Sequential)  # BoIR: conv + InstanceNorm + ReLU; CID: a bare conv
    v, cb, h, w = features.shape
    n = coords.shape[0]
    p = h * w
    g = head.conv_down(features)  # [V, c, H, W], once per view
    c = head.conv_down.out_channels  # module attributes, not shapes: constants in an exported graph
    gf = g.reshape(v, c, p)
    # the backbone vector at every center in every view: [V, n, C_b]
    params = features[:, :, coords[:, 0], coords[:, 1]].permute(0, 2, 1)
    a = head.c_attn.atn(params)  # [V, n, c] channel weights (LayerNorm inside for BoIR)
    b = head.s_attn.atn(params)  # [V, n, c] spatial query
    # spatial mask m: [Σ_c G_c b_c, r_x, r_y] → 5×5 conv → InstanceNorm (BoIR) / sigmoid (CID)
    s = torch.matmul(b, gf).reshape(v * n, 1, h, w)
    rel = _rel_maps(coords, h, w, g).repeat(v, 1, 1, 1)
    m = head.s_attn.conv(torch.cat((s, rel), dim=1)).reshape(v * n, p)
    m = _instance_norm(m, head.s_attn.norm.eps) if boir else torch.sigmoid(m)
    # fuse conv without the 2c-channel concatenation
    fuse = head.fuse_attn[0] if boir else head.fuse_attn
    w1 = fuse.weight[:, :c, 0, 0]  # [c_out, c] acts on G ⊙ a
    w2 = fuse.weight[:, c:, 0, 0]  # [c_out, c] acts on G ⊙ m
    c_out = fuse.out_channels
    per_person = (w1[None, None] * a[:, :, None, :]).reshape(v, n * c_out, c)  # W_1 · diag(a_i)
    u = torch.matmul(per_person, gf).reshape(v, n, c_out, p)
    shared = torch.matmul(w2, gf)  # [V, c_out, P]: W_2 G once per view
    u = u + m.reshape(v, n, 1, p) * shared[:, None]  # [V, n, c, P]
    if boir:  # InstanceNorm (no affine; the fuse bias cancels in it exactly), then ReLU
        u = _instance_norm(u, head.fuse_attn[1].eps)
    else:
        u = u + fuse.bias[:, None]
    u = torch.relu(u)
    k = head.heatmap_conv.out_channels
    out = torch.matmul(head.heatmap_conv.weight[:, :, 0, 0], u) + head.heatmap_conv.bias[:, None]  # [V, n, K, P]
    return out.reshape(v * n, k, h, w)


def _instance_norm(x: torch.Tensor, eps: float) -> torch.Tensor:
    """Zero mean, unit (biased) variance over the last dimension, as ``nn.InstanceNorm2d`` without affine."""
    mean = x.mean(dim=-1, keepdim=True)
    x = x - mean
    var = (x * x).mean(dim=-1, keepdim=True)
    return x * torch.rsqrt(var + eps)
