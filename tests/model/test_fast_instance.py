"""The decoding-time instance head and BN folding give the readable network's outputs."""
from __future__ import annotations

import pytest
import torch
from model_helpers import randomise

from boir_core.model import CID, BoIR, InstanceKeypointHead
from boir_core.model.cid import GFDHead
from boir_core.model.fast_instance import views_heatmaps
from boir_core.model.fold import fold_batchnorm
from boir_core.model.random_weights import seeded_trained_like_


@pytest.mark.parametrize("head", [InstanceKeypointHead(24, 8, 5), GFDHead(24, 8, 5)], ids=["boir", "cid"])
@pytest.mark.parametrize("views", [1, 2])
def test_views_heatmaps_equal_the_readable_head(head, views):
    randomise(head)
    feats = torch.randn(views, 24, 9, 13, generator=torch.Generator().manual_seed(1))
    coords = torch.tensor([[0, 0], [8, 12], [4, 5], [0, 12]])  # corners and the middle
    imgid = torch.arange(views).repeat_interleave(len(coords))
    ref = head(feats, coords.repeat(views, 1), imgid)
    fast = views_heatmaps(head, feats, coords)
    assert fast.shape == ref.shape == (views * 4, 5, 9, 13)
    torch.testing.assert_close(fast, ref, atol=2e-5, rtol=1e-5)
    # a person's maps depend on its own center only: dropping the others changes nothing
    torch.testing.assert_close(views_heatmaps(head, feats, coords[1:2])[0], ref[1], atol=2e-5, rtol=1e-5)


def _small(cls):
    kw = dict(neck_channels=32, neck_middle_channels=16, head_channels=16) if cls is BoIR else {}
    return seeded_trained_like_(cls(17, backbone="hrnet_w18_small", train_heads=False, inst_channels=16, **kw))


@pytest.mark.parametrize("cls", [BoIR, CID])
def test_folding_batchnorm_keeps_the_outputs_and_the_original(cls):
    model = _small(cls)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(0))
    folded, n = fold_batchnorm(model, lambda m: m.center_logits(m.features(x[:1])))
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    left = [m for m in folded.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert n == len(bns) - len(left) and n > 0.9 * len(bns)  # every conv -> BN pair (ASPP's pooled BN too)
    with torch.no_grad():
        f0, f1 = model.features(x), folded.features(x)
        torch.testing.assert_close(f1, f0, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(folded.center_logits(f0), model.center_logits(f0), atol=1e-4, rtol=1e-4)
    for k, v in model.state_dict().items():  # the caller's model is untouched
        assert torch.equal(v, before[k]), k
