"""The helpers the losses share (``losses/_common.py``): the shape messages a user reads, and the per-image
ranks, padded capacity and per-image means against loops.

A ``meta`` tensor stands in for a GPU tensor where the rule is "keep the input's device" or "read nothing back":
it has a device that is not the CPU and no data, so a helper that drops the device or reads a value fails.
"""
from __future__ import annotations

import math

import pytest
import torch

from boir_core.losses import bbox_loss
from boir_core.losses._common import check_shape, mean_over_images, padded_capacity, rank_in_image

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
