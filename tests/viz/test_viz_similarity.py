"""similarity_map against the kernels' closed forms."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from boir_core.viz.similarity import similarity_map


def test_kernels_match_closed_forms():
    g = torch.Generator().manual_seed(0)
    emb = torch.randn(4, 5, 6, generator=g, dtype=torch.float64)
    e = emb / emb.norm(dim=0, keepdim=True)
    q = e[:, 2, 3]
    for kernel, beta in (("gaussian", 10.0), ("release", 2.0)):
        sim = similarity_map(emb, point=(2, 3), beta=beta, kernel=kernel)
        scale = beta / 4 if kernel == "gaussian" else beta
        r, c = 4, 1
        assert sim[2, 3] == pytest.approx(1.0)
        assert sim[r, c].item() == pytest.approx(math.exp(-scale * float(((e[:, r, c] - q) ** 2).sum())))
    cos = similarity_map(emb.numpy(), query=emb[:, 0, 0].numpy() * 3, kernel="cosine")
    assert torch.allclose(cos, torch.einsum("dhw,d->hw", e, e[:, 0, 0]))
    assert similarity_map(emb, point=(0, 0), beta=100.0).max() == pytest.approx(1.0)


def test_bad_arguments_are_named():
    emb = np.zeros((3, 4, 4), dtype=np.float32)
    with pytest.raises(ValueError, match="kernel"):
        similarity_map(emb, point=(0, 0), kernel="l1")
    with pytest.raises(ValueError, match="outside"):
        similarity_map(emb, point=(4, 0))
    with pytest.raises(ValueError, match="exactly one"):
        similarity_map(emb)
