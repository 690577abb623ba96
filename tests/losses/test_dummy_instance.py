"""loss.dummy_instance=release: an image without instances counts one dummy instance that adds nothing to any sum
but counts in the release Bbox Mask Loss's instance count and with 4 pixels in the box loss's window-pixel count
(docs/release_vs_paper.md#dummy-instance). Checked against the two divisors computed by hand,
N/(N + n_empty) and P/(P + 4·n_empty)."""
from __future__ import annotations

import pytest
import torch

from boir_core.config import Config, LossConfig
from boir_core.losses import bbox_loss, bbox_loss_per_instance, total_loss
from boir_core.losses.total import empty_images


def _window_pixels_by_hand(coord: torch.Tensor, height: int, width: int) -> int:
    """Σ over instances of the 3×3 window clipped to the map: (rows kept) × (columns kept)."""
    total = 0
    for y, x in coord.tolist():
        rows = min(y + 1, height - 1) - max(y - 1, 0) + 1
        cols = min(x + 1, width - 1) - max(x - 1, 0) + 1
        total += rows * cols
    return total


@pytest.mark.parametrize("variant", ["release-image", "release-instance"])
def test_the_dummies_scale_the_two_divisors_as_computed_by_hand(make_batch, variant):
    counts = (2, 0, 3, 0)  # N = 5 instances, n_empty = 2 images without any
    outputs, batch = make_batch(counts=counts, size=(12, 10))
    n, n_empty = sum(counts), sum(c == 0 for c in counts)
    p = _window_pixels_by_hand(batch["instance_coord"], 12, 10)
    base = LossConfig(weighting="release", bbox_mask_variant=variant, bbox_decode="release")
    without = total_loss(outputs, batch, base)
    with_dummies = total_loss(outputs, batch, LossConfig(**{**base.__dict__, "dummy_instance": "release"}))
    assert float(with_dummies["bbox"]) == pytest.approx(float(without["bbox"]) * p / (p + 4 * n_empty), rel=1e-12)
    for k in ("bbox_mask", "pull_in", "push_out", "push_inst"):
        assert float(with_dummies[k]) == pytest.approx(float(without[k]) * n / (n + n_empty), rel=1e-12, abs=1e-15), k
    assert float(without["bbox_mask"]) > 0 and float(without["bbox"]) > 0
    for k in ("multi_heatmap", "instance_heatmap"):  # the dummies' zero targets and masks add nothing there
        assert torch.equal(with_dummies[k], without[k]), k


def test_a_batch_without_empty_images_is_unchanged(make_batch):
    outputs, batch = make_batch(counts=(2, 1, 3))
    base = LossConfig(weighting="release", bbox_mask_variant="release-image")
    a = total_loss(outputs, batch, base)
    b = total_loss(outputs, batch, LossConfig(**{**base.__dict__, "dummy_instance": "release"}))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_the_box_loss_counts_four_pixels_per_dummy_and_the_empty_images_are_counted(make_batch):
    outputs, batch = make_batch(counts=(1, 2))
    args = (outputs["bbox"], batch["instance_coord"], batch["instance_imgid"], batch["instance_bbox"])
    _, per_instance, count = bbox_loss_per_instance(*args)
    loss = bbox_loss(*args, dummy_instances=torch.tensor(3))
    assert float(loss) == pytest.approx(float(per_instance.sum()) / (float(count.sum()) + 12), rel=1e-12)
    assert int(empty_images(torch.tensor([0, 0, 3]), 5)) == 3  # images 1, 2 and 4 hold nobody
    assert int(empty_images(torch.zeros(0, dtype=torch.long), 2)) == 2


def test_preset_release_turns_the_dummy_on_and_paper_leaves_it_off():
    assert Config().loss.dummy_instance == "paper"
    assert Config().override("preset=release").loss.dummy_instance == "release"
    assert Config().override("preset=release", "loss.dummy_instance=paper").loss.dummy_instance == "paper"


@pytest.mark.parametrize("variant", ["release-instance", "release-image"])
def test_a_tensor_dummy_count_divides_like_an_int_one_even_for_a_single_person(variant):
    """The release variants divide their sums by the instance count plus the dummies; a count that is a tensor
    (as the loss receives it) divides exactly as the int does, down to a batch of one person and no dummy."""
    from boir_core.losses import BboxMaskSettings, bbox_mask_terms

    torch.manual_seed(0)
    emb = torch.randn(1, 4, 8, 8)
    box, imgid = torch.tensor([[1.0, 2.0, 4.0, 3.0]]), torch.zeros(1, dtype=torch.long)
    settings = BboxMaskSettings(variant=variant)
    for dummies in (0, 2):
        as_int = bbox_mask_terms(emb, box, imgid, None, settings, dummy_instances=dummies)
        as_tensor = bbox_mask_terms(emb, box, imgid, None, settings, dummy_instances=torch.tensor(dummies))
        for name in ("pull_in", "push_out", "push_inst"):
            per_instance = getattr(as_int, name).sum()
            torch.testing.assert_close(getattr(as_int, f"loss_{name}"), per_instance / (1 + dummies))
            torch.testing.assert_close(getattr(as_tensor, f"loss_{name}"), per_instance / (1 + dummies))
