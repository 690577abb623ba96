"""Focal, multi heatmap and instance keypoint losses against the element-by-element oracle (docs/training.md#losses),
and the instance loss's random subset for every cap (drawn on the CPU generator, moved to the device; a ``meta``
tensor stands in for a GPU tensor)."""
from __future__ import annotations

import pytest
import torch

from boir_core.losses import focal_loss, instance_heatmap_loss, multi_heatmap_loss
from boir_core.losses.focal import subsample_instances
from boir_core.losses.reference import focal_loss_ref


def _probs(shape, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(*shape, generator=g, dtype=torch.float64).clamp(1e-4, 1 - 1e-4)


def test_focal_matches_oracle_with_mask(make_batch):
    _, batch = make_batch(counts=(1, 2))
    target = batch["multi_heatmap"]
    prob = _probs(target.shape, 3)
    got = focal_loss(prob, target, batch["multi_mask"])
    want = focal_loss_ref(prob, target, batch["multi_mask"])
    assert torch.allclose(got, want, atol=1e-10, rtol=1e-9)
    assert (target == 1).any()


def test_focal_without_positives_is_unnormalised_negative_sum():
    target = torch.full((1, 2, 4, 5), 0.3, dtype=torch.float64)
    prob = _probs(target.shape, 4)
    got = focal_loss(prob, target)
    closed = -(torch.log(1 - prob) * prob ** 2 * 0.7 ** 4).sum()
    assert torch.allclose(got, closed) and torch.allclose(got, focal_loss_ref(prob, target))


def test_multi_heatmap_loss_is_one_call_over_buk_then_center(make_batch):
    outputs, batch = make_batch()
    got = multi_heatmap_loss(outputs["center"], outputs["buk"], batch["multi_heatmap"], batch["multi_mask"])
    prob = torch.sigmoid(torch.cat([outputs["buk"], outputs["center"]], 1)).clamp(1e-4, 1 - 1e-4)
    want = focal_loss_ref(prob, batch["multi_heatmap"], batch["multi_mask"])
    assert torch.allclose(got, want, atol=1e-10)
    # the order matters: center is the last channel
    swapped = multi_heatmap_loss(outputs["buk"][:, :1], torch.cat([outputs["buk"][:, 1:], outputs["center"]], 1),
                                 batch["multi_heatmap"], batch["multi_mask"])
    assert not torch.allclose(got, swapped)


def test_multi_heatmap_shape_error_names_key(make_batch):
    outputs, batch = make_batch()
    with pytest.raises(ValueError, match="multi_heatmap"):
        multi_heatmap_loss(outputs["center"], outputs["buk"][:, :1], batch["multi_heatmap"], batch["multi_mask"])


def test_instance_loss_matches_oracle_and_handles_zero_instances(make_batch):
    outputs, batch = make_batch(counts=(2, 1))
    got = instance_heatmap_loss(outputs["instance_heatmap"], batch["instance_heatmap"], batch["instance_mask"])
    prob = torch.sigmoid(outputs["instance_heatmap"]).clamp(1e-4, 1 - 1e-4)
    want = focal_loss_ref(prob, batch["instance_heatmap"], batch["instance_mask"][:, :, None, None])
    assert torch.allclose(got, want, atol=1e-10)
    outputs, batch = make_batch(counts=(0, 0))
    logits = outputs["instance_heatmap"].requires_grad_()
    zero = instance_heatmap_loss(logits, batch["instance_heatmap"], batch["instance_mask"])
    zero.backward()
    assert zero.item() == 0 and logits.grad.shape == logits.shape


def test_instance_cap_draws_a_reproducible_random_subset(make_batch):
    outputs, batch = make_batch(counts=(4, 3))
    args = (outputs["instance_heatmap"], batch["instance_heatmap"], batch["instance_mask"])
    a = instance_heatmap_loss(*args, max_instances=3, generator=torch.Generator().manual_seed(1))
    b = instance_heatmap_loss(*args, max_instances=3, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    keep = torch.randperm(7, generator=torch.Generator().manual_seed(1))[:3].sort().values
    want = instance_heatmap_loss(args[0][keep], args[1][keep], args[2][keep], max_instances=200)
    assert torch.allclose(a, want)
    full = instance_heatmap_loss(*args, max_instances=200)
    assert not torch.allclose(a, full)


def test_focal_gradcheck_and_fp32_under_autocast(make_batch):
    outputs, batch = make_batch(counts=(1,), size=(4, 3), num_keypoints=1)
    logits = outputs["buk"].clone().requires_grad_()
    center = outputs["center"].clone()
    assert torch.autograd.gradcheck(
        lambda x: multi_heatmap_loss(center, x, batch["multi_heatmap"], batch["multi_mask"]), (logits,))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = multi_heatmap_loss(center.bfloat16(), outputs["buk"].bfloat16(), batch["multi_heatmap"].float(),
                                 batch["multi_mask"].float())
    assert out.dtype == torch.float32 and torch.isfinite(out)


# ---- subsample_instances and the instance keypoint loss's cap ----------------------------------------------


@pytest.mark.parametrize("num_instances, max_instances", [(5, 0), (5, -1), (0, 0), (3, 3), (2, 3), (1, 1)])
def test_no_subset_when_the_cap_is_off_or_not_exceeded(num_instances, max_instances):
    g = torch.Generator().manual_seed(3)
    before = g.get_state()
    assert subsample_instances(num_instances, max_instances, g) is None
    assert torch.equal(g.get_state(), before)  # nothing drawn: the next steps' subsets do not move


@pytest.mark.parametrize("num_instances, max_instances", [(5, 1), (6, 2), (4, 3)])
def test_subset_is_the_first_draws_of_the_generator_sorted_on_the_cpu(num_instances, max_instances):
    got = subsample_instances(num_instances, max_instances, torch.Generator().manual_seed(5))  # default device
    want = sorted(torch.randperm(num_instances, generator=torch.Generator().manual_seed(5)).tolist()[:max_instances])
    assert got.device.type == "cpu" and got.dtype == torch.long and got.tolist() == want


def test_subset_is_drawn_on_the_cpu_generator_and_moved_to_the_device():
    want = subsample_instances(6, 2, torch.Generator().manual_seed(1)).tolist()
    # a notebook that made another device the default (torch.set_default_device) still draws on the CPU generator
    with torch.device("meta"):
        got = subsample_instances(6, 2, torch.Generator().manual_seed(1), device="cpu")
    assert got.device.type == "cpu" and got.tolist() == want
    on = subsample_instances(6, 2, torch.Generator().manual_seed(1), device="meta")
    assert on.device.type == "meta" and on.shape == (2,)


def _instance_oracle(logits, heatmap, mask):
    prob = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    return focal_loss_ref(prob, heatmap, mask[:, :, None, None])


def test_instance_loss_cap_zero_keeps_everybody_and_cap_one_keeps_one(make_batch):
    outputs, batch = make_batch(counts=(2, 3))
    args = (outputs["instance_heatmap"], batch["instance_heatmap"], batch["instance_mask"])
    full = _instance_oracle(*args)
    for cap in (0, -1, 5):
        got = instance_heatmap_loss(*args, max_instances=cap, generator=torch.Generator().manual_seed(0))
        assert torch.allclose(got, full, atol=1e-10), cap
    k = int(torch.randperm(5, generator=torch.Generator().manual_seed(2))[0])
    one = instance_heatmap_loss(*args, max_instances=1, generator=torch.Generator().manual_seed(2))
    assert torch.allclose(one, _instance_oracle(*(a[k:k + 1] for a in args)), atol=1e-10)
    assert not torch.allclose(one, full)
