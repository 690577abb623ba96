"""CID's InfoNCE contrastive loss (docs/model.md#boir-vs-cid) against a per-image cross-entropy loop."""
from __future__ import annotations

import math

import pytest
import torch

from boir_core.losses import cid_contrastive_loss, info_nce_per_instance
from boir_core.losses.reference import cid_contrastive_ref


def test_matches_per_image_cross_entropy(make_batch):
    outputs, batch = make_batch(counts=(3, 1, 0, 2))
    args = (outputs["features"], batch["instance_coord"], batch["instance_imgid"])
    assert torch.allclose(cid_contrastive_loss(*args), cid_contrastive_ref(*args), atol=1e-10)
    f = outputs["features"].clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda x: cid_contrastive_loss(x, *args[1:]), (f,), fast_mode=True)


def test_single_instance_images_add_zero_and_separation_lowers_the_loss():
    v = torch.randn(3, 8, dtype=torch.float64)
    per = info_nce_per_instance(v, torch.tensor([0, 1, 2]))
    assert torch.equal(per, torch.zeros(3, dtype=torch.float64))
    close = torch.tensor([[1.0, 0.0], [0.99, 0.1]], dtype=torch.float64)
    apart = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    two = torch.tensor([0, 0])
    assert (info_nce_per_instance(apart, two) < info_nce_per_instance(close, two)).all()
    with pytest.raises(ValueError, match="temperature"):
        info_nce_per_instance(v, torch.tensor([0, 0, 0]), temperature=0)


# ---- the contrastive loss's default temperature ----------------------------------------------------------


def test_info_nce_default_temperature_is_cids_0_05():
    g = torch.Generator().manual_seed(0)
    v = torch.randn(5, 3, generator=g, dtype=torch.float64)
    imgid = torch.tensor([1, 0, 1, 1, 0])
    got = info_nce_per_instance(v, imgid)
    u = [v[i] / v[i].norm() for i in range(5)]
    for i in range(5):
        same = [j for j in range(5) if imgid[j] == imgid[i]]
        den = sum(math.exp(float(u[i] @ u[j]) / 0.05) for j in same)
        assert math.isclose(float(got[i]), math.log(den) - float(u[i] @ u[i]) / 0.05, rel_tol=1e-9)
