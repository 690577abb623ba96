"""What the first mutation run of the loss helpers, the focal, contrastive and total losses left untested
(issue 14; benchmarks/README.md#mutation-testing): the error messages a user reads, the shared helpers
against loops, the instance subset for every cap, and CID's contrastive term in the total.

A ``meta`` tensor stands in for a GPU tensor where the rule is "keep the input's device" or "read nothing back":
it has a device that is not the CPU and no data, so a helper that drops the device or reads a value fails.
"""
from __future__ import annotations

import math

import pytest
import torch

from boir_core.config import LossConfig
from boir_core.losses import (
    bbox_loss,
    cid_contrastive_loss,
    info_nce_per_instance,
    instance_heatmap_loss,
    total_loss,
)
from boir_core.losses._common import check_shape, mean_over_images, padded_capacity, rank_in_image
from boir_core.losses.focal import subsample_instances
from boir_core.losses.reference import bbox_mask_paper_ref, focal_loss_ref
from boir_core.losses.total import REQUIRED_BATCH_KEYS

# ---- check_shape: the messages a user reads ---------------------------------------------------------------


@pytest.mark.parametrize("value, ndim, last, error, message", [
    ([[0.0, 0.0, 1.0, 1.0]], 2, 4, TypeError, "box must be a torch.Tensor, got list"),
    (torch.zeros(2, 3), 4, None, ValueError, "box must be 4-d, got shape (2, 3)"),
    (torch.zeros(3, 5), 2, 4, ValueError, "box must be 2-d with last dimension 4, got shape (3, 5)"),
    (torch.zeros(3), 2, 4, ValueError, "box must be 2-d with last dimension 4, got shape (3,)"),
    # the *last* dimension, also when it is not the second
    (torch.zeros(2, 5, 4), 3, 5, ValueError, "box must be 3-d with last dimension 5, got shape (2, 5, 4)"),
])
def test_check_shape_names_the_argument_and_what_it_wanted(value, ndim, last, error, message):
    with pytest.raises(error) as info:
        check_shape("box", value, ndim, last)
    assert str(info.value) == message


def test_check_shape_accepts_the_right_shapes_and_losses_pass_the_message_on(make_batch):
    check_shape("box", torch.zeros(2, 4, 5), 3, 5)  # last dimension 5, second 4: accepted
    check_shape("box", torch.zeros(0, 4), 2, 4)
    check_shape("emb", torch.zeros(1, 2, 3, 4), 4)
    outputs, batch = make_batch()
    with pytest.raises(ValueError) as info:
        bbox_loss(outputs["bbox"], batch["instance_coord"], batch["instance_imgid"], batch["instance_bbox"][:, :3])
    n = batch["instance_imgid"].numel()
    assert str(info.value) == f"instance_bbox must be 2-d with last dimension 4, got shape ({n}, 3)"


# ---- rank_in_image, padded_capacity, mean_over_images against loops ----------------------------------------


def _rank_loop(imgid):
    seen: dict[int, int] = {}
    out = []
    for b in imgid.tolist():
        out.append(seen.get(b, 0))
        seen[b] = seen.get(b, 0) + 1
    return torch.tensor(out, dtype=torch.long)


@pytest.mark.parametrize("imgid, num_images", [
    ([], 3), ([2], 3), ([1], 2), ([0], 1), ([2, 0, 2, 1, 0, 2], 3), ([3, 3], 5),
])
def test_rank_in_image_matches_a_loop(imgid, num_images):
    t = torch.tensor(imgid, dtype=torch.long)
    got = rank_in_image(t, num_images)
    assert got.dtype == torch.long and torch.equal(got, _rank_loop(t))


def test_rank_in_image_reads_nothing_back():
    """The number of images comes from the caller: one_hot without it would read max(imgid) back (a host
    synchronisation every step on a GPU; on a meta tensor, an error)."""
    got = rank_in_image(torch.tensor([1, 0, 1], device="meta"), 3)
    assert got.device.type == "meta" and got.shape == (3,)


@pytest.mark.parametrize("imgid, num_images, capacity, want", [
    ([0, 0, 1], 2, 1, 1),            # a given capacity is used as is ...
    ([0, 0, 1], 2, 7, 7),
    ([0, 0, 1], 2, 0, 1),            # ... but at least one slot
    ([], 3, None, 1),                # no instance: one slot
    ([0, 2, 0, 3, 0], 4, None, 3),   # CPU: the largest per-image count, not N
    ([2, 0, 1], 3, None, 1),         # one person per image: one slot
    ([], 0, None, 1),
])
def test_padded_capacity_on_cpu(imgid, num_images, capacity, want):
    assert padded_capacity(torch.tensor(imgid, dtype=torch.long), num_images, capacity) == want


@pytest.mark.parametrize("n, want", [(5, 5), (1, 1), (0, 1)])
def test_padded_capacity_off_the_cpu_is_n_from_the_shape(n, want):
    imgid = torch.zeros(n, dtype=torch.long, device="meta")  # no data to read: the answer must come from the shape
    got = padded_capacity(imgid, 3)
    assert isinstance(got, int) and got == want


def _mean_loop(values, imgid, num_images, min_count=1, valid=None):
    per_image = []
    for b in range(num_images):
        idx = [i for i in range(values.numel()) if int(imgid[i]) == b and (valid is None or bool(valid[i]))]
        if len(idx) >= min_count and idx:
            per_image.append(sum(float(values[i]) for i in idx) / len(idx))
    return sum(per_image) / len(per_image) if per_image else 0.0


IMGID = torch.tensor([3, 0, 3, 1, 1, 3, 0, 4])  # images 0, 1, 3 with 2, 2, 3 instances, image 4 with 1, image 2 none
VALUES = torch.tensor([0.5, -1.0, 2.0, 3.5, 0.25, 4.0, 1.5, 8.0], dtype=torch.float64)


@pytest.mark.parametrize("min_count", [None, 1, 2, 3, 4])
def test_mean_over_images_matches_a_loop(min_count):
    kwargs = {} if min_count is None else {"min_count": min_count}
    got = mean_over_images(VALUES, IMGID, 5, **kwargs)
    want = _mean_loop(VALUES, IMGID, 5, 1 if min_count is None else min_count)
    assert got.dtype == torch.float64 and math.isclose(float(got), want, rel_tol=1e-12, abs_tol=1e-15)


@pytest.mark.parametrize("min_count", [1, 2])
@pytest.mark.parametrize("dtype", [torch.bool, torch.float64])
def test_mean_over_images_counts_only_valid_instances(min_count, dtype):
    valid = torch.tensor([1, 0, 1, 1, 1, 0, 1, 0]).to(dtype)  # image 3 keeps 2 of 3, image 4 none
    got = mean_over_images(VALUES, IMGID, 5, min_count, valid=valid)
    want = _mean_loop(VALUES, IMGID, 5, min_count, valid)
    assert math.isclose(float(got), want, rel_tol=1e-12)
    assert not math.isclose(want, _mean_loop(VALUES, IMGID, 5, min_count))  # the mask matters here


def test_mean_over_images_keeps_the_values_device():
    got = mean_over_images(VALUES.to("meta"), IMGID.to("meta"), 5, 2, valid=torch.ones(8, device="meta"))
    assert got.device.type == "meta" and got.shape == ()


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


# ---- total_loss: messages, the temperature, CID's contrastive term ------------------------------------------


def _key_error(outputs, batch, cfg=None):
    with pytest.raises(KeyError) as info:
        total_loss(outputs, batch, cfg or LossConfig())
    return info.value.args[0]


def test_total_loss_names_the_mapping_and_the_key_that_is_missing(make_batch):
    outputs, batch = make_batch()
    for key in REQUIRED_BATCH_KEYS:
        msg = _key_error(outputs, {k: v for k, v in batch.items() if k != key})
        assert msg == f"total_loss: batch has no {key!r} (has: {sorted(k for k in batch if k != key)})"
    for key in ("instance_heatmap", "center", "buk"):
        rest = {k: v for k, v in outputs.items() if k != key}
        assert _key_error(rest, batch) == f"total_loss: outputs has no {key!r} (has: {sorted(rest)})"
    no_box = {k: v for k, v in batch.items() if k != "instance_bbox"}
    want = f"total_loss: batch has no 'instance_bbox' (has: {sorted(no_box)})"
    assert _key_error(outputs, no_box) == want  # needed by the box loss
    assert _key_error({k: v for k, v in outputs.items() if k != "bbox"}, no_box) == want  # and the Bbox Mask Loss
    with pytest.raises(TypeError) as info:
        total_loss(outputs, batch, {"weighting": "paper"})
    assert str(info.value) == "loss_cfg must be a boir_core.config.LossConfig, got dict"


def test_total_loss_passes_the_temperature_to_the_contrastive_bbox_mask_loss(make_batch):
    outputs, batch = make_batch(counts=(2, 1), size=(6, 5), emb_dim=3)
    out = total_loss(outputs, batch, LossConfig(emb_loss="contrastive", temperature=0.5))
    want = bbox_mask_paper_ref(outputs["emb"], batch["instance_bbox"], batch["instance_imgid"],
                               batch["instance_center"], kernel="contrastive", temperature=0.5)["bbox_mask"]
    assert torch.allclose(out["bbox_mask"], want, atol=1e-8)


def _alike_features(outputs, seed=0):
    """Features nearly equal at every pixel: CID's contrastive loss is then about log(instances of the image)."""
    g = torch.Generator().manual_seed(seed)
    f = outputs["features"]
    return torch.ones_like(f) + 0.01 * torch.randn(f.shape, generator=g, dtype=f.dtype)


@pytest.mark.parametrize("weighting", ["paper", "release"])
def test_cid_outputs_add_the_contrastive_loss_with_weight_one(make_batch, weighting):
    outputs, batch = make_batch(counts=(2, 0, 3))
    cid = {"heatmap": torch.cat([outputs["buk"], outputs["center"]], 1), "features": _alike_features(outputs),
           "instance_heatmap": outputs["instance_heatmap"]}
    cfg = LossConfig(weighting=weighting)
    out = total_loss(cid, batch, cfg)
    contrastive = cid_contrastive_loss(cid["features"], batch["instance_coord"], batch["instance_imgid"])
    assert contrastive > 0.5  # (2·log 2 + 3·log 3) / 5 ≈ 0.93: large enough to see
    assert torch.allclose(out["contrastive"], contrastive)
    if weighting == "paper":
        want = out["multi_heatmap"] + out["instance_heatmap"] + contrastive
    else:
        want = (cfg.multi_heatmap_weight * out["multi_heatmap"] + cfg.single_heatmap_weight * out["instance_heatmap"]
                + contrastive) / 3
    assert torch.allclose(out["total"], want, rtol=1e-12)


def test_boir_outputs_never_get_the_contrastive_loss_even_with_features(make_batch):
    outputs, batch = make_batch()
    outputs = dict(outputs, features=_alike_features(outputs))
    out = total_loss(outputs, batch, LossConfig())
    assert set(out) == {"multi_heatmap", "instance_heatmap", "bbox", "bbox_mask", "pull_in", "push_out", "push_inst",
                        "total"}
    assert torch.allclose(out["total"], out["multi_heatmap"] + out["instance_heatmap"] + out["bbox"] + out["bbox_mask"],
                          rtol=1e-12)
