"""Seeded random weights with trained-like statistics, for speed and agreement checks without a checkpoint.

The release initialises every conv with N(0, 0.001²) (docs/model.md#backbone-hrnet). Untrained, such
a network outputs nearly flat maps, and its activations shrink layer after layer into float32 denormals,
which CPUs process tens of times slower: neither its timings nor its argmaxes tell anything about a trained
model. These weights fix both: PyTorch's default (Kaiming-uniform) initialisation, then every
BatchNorm's running statistics estimated on a random probe batch, so each BN normalises its input as in a
trained network. The center bias is raised so that about ``max_proposals`` peaks pass the 0.01 threshold and
the decoder does its full work. Used by ``benchmarks/bench_inference.py`` and the backend tests.
"""
from __future__ import annotations

import torch
import torch.nn as nn

__all__ = ["seeded_trained_like_"]


@torch.no_grad()
def seeded_trained_like_(model: nn.Module, seed: int = 0, probe_size: int = 128) -> nn.Module:
    """Re-initialise ``model`` in place (see the module docstring); returns it in eval mode."""
    gen = torch.Generator().manual_seed(seed)
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear, nn.LayerNorm)):
                m.reset_parameters()
            if isinstance(m, nn.BatchNorm2d):
                m.reset_running_stats()
                m.momentum = None  # cumulative average over the probe batch
        dev = next(model.parameters()).device
        probe = torch.randn(2, 3, probe_size, probe_size, generator=gen).to(dev)
        model.train()
        model.center_logits(model.features(probe))
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.momentum = 0.1
    finally:
        torch.random.set_rng_state(state)
    return model.eval()
