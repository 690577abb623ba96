"""Fold every eval-mode BatchNorm into the convolution that feeds it (inference only).

In eval mode BN is the affine map y = γ (x − μ) / √(σ² + ε) + β per channel. When x is the output of a
convolution with weight W and bias b, the two collapse into one convolution with

    W' = W · γ / √(σ² + ε)   (per output channel),     b' = (b − μ) · γ / √(σ² + ε) + β,

which saves a full read and write of every feature map the BN touched (HRNet has ~300 of them).

Which convolution feeds which BN is found by running the network once on a small probe and recording
tensors (forward hooks), so the rule holds for any architecture built from ``nn.Conv2d`` and
``nn.BatchNorm2d`` modules (timm's HRNet, our neck and heads) without a list of module names. A pair is
folded only when the BN's input is exactly the conv's output and no other module reads that output (a
functional reuse such as ``x + conv(x)`` is invisible to hooks; none exists in BoIR or CID, and the tests
compare the folded networks with the originals). :func:`fold_batchnorm` works on a copy and leaves the
given model untouched.
"""
from __future__ import annotations

import copy
from typing import Callable

import torch
import torch.nn as nn

__all__ = ["fold_batchnorm", "conv_bn_pairs"]


def conv_bn_pairs(model: nn.Module, run: Callable[[nn.Module], object]) -> list[tuple[str, str]]:
    """(conv name, BN name) pairs where the BN's only input is the conv's output, found by calling ``run``."""
    names = {m: n for n, m in model.named_modules()}
    produced: dict[int, nn.Module] = {}  # id(output tensor) -> conv that produced it
    readers: dict[int, list[nn.Module]] = {}  # id(tensor) -> modules that read it
    keep_alive: list[torch.Tensor] = []  # ids must stay unique during the probe
    hooks = []

    def on_conv(mod, inp, out):
        produced[id(out)] = mod
        keep_alive.append(out)

    def on_any(mod, inp):
        for t in inp:
            if torch.is_tensor(t):
                readers.setdefault(id(t), []).append(mod)
                keep_alive.append(t)

    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(on_conv))
        if not list(m.children()):  # leaf modules read tensors
            hooks.append(m.register_forward_pre_hook(on_any))
    try:
        with torch.no_grad():
            run(model)
    finally:
        for h in hooks:
            h.remove()
    pairs: dict[nn.Module, nn.Module] = {}
    for tid, conv in produced.items():
        rd = readers.get(tid, [])
        if type(conv) is nn.Conv2d and len(rd) == 1 and type(rd[0]) is nn.BatchNorm2d and conv not in pairs:
            pairs[conv] = rd[0]
    bn_count: dict[nn.Module, int] = {}
    for bn in pairs.values():
        bn_count[bn] = bn_count.get(bn, 0) + 1
    return [(names[c], names[b]) for c, b in pairs.items() if bn_count[b] == 1]


def _set(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, leaf, new)


def fold_batchnorm(model: nn.Module, run: Callable[[nn.Module], object]) -> tuple[nn.Module, int]:
    """A copy of ``model`` (eval mode) with every conv → BN pair folded; returns (copy, number folded).

    ``run(model)`` must call the network on a small probe input so that every conv → BN pair executes.
    A BN with ``track_running_stats=False`` or in a pair that is not exclusive is left alone.
    """
    model = copy.deepcopy(model).eval()
    pairs = conv_bn_pairs(model, run)
    folded = 0
    for conv_name, bn_name in pairs:
        conv = model.get_submodule(conv_name)
        bn = model.get_submodule(bn_name)
        if not isinstance(bn, nn.BatchNorm2d) or bn.running_mean is None or conv.groups < 1:
            continue
        with torch.no_grad():
            scale = (bn.weight if bn.affine else torch.ones_like(bn.running_var)) / torch.sqrt(
                bn.running_var + bn.eps)
            shift = bn.bias if bn.affine else torch.zeros_like(bn.running_mean)
            w = conv.weight * scale.reshape(-1, 1, 1, 1)
            b = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
            b = (b - bn.running_mean) * scale + shift
            new = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                            conv.dilation, conv.groups, bias=True, padding_mode=conv.padding_mode,
                            device=conv.weight.device, dtype=conv.weight.dtype)
            new.weight.copy_(w)
            new.bias.copy_(b)
        _set(model, conv_name, new)
        _set(model, bn_name, nn.Identity())
        folded += 1
    return model, folded
