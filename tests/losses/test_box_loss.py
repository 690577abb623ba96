"""Anchor-free decoding and the 1 − CIoU box loss (docs/release_vs_paper.md#box-loss-and-decoding) against a loop
oracle and closed forms."""
from __future__ import annotations

import math

import pytest
import torch

from boir_core.losses import bbox_loss, ciou, decode_ltrb
from boir_core.losses.reference import bbox_loss_ref


@pytest.mark.parametrize("decode", ["xy", "release"])
def test_box_loss_matches_loop_oracle(make_batch, decode):
    outputs, batch = make_batch(counts=(3, 0, 2, 1), size=(9, 11))
    batch["instance_coord"][0] = torch.tensor([0, 10])  # window clipped at a corner
    args = (outputs["bbox"], batch["instance_coord"], batch["instance_imgid"], batch["instance_bbox"])
    got = bbox_loss(*args, decode=decode)
    want = bbox_loss_ref(*args, decode=decode)
    assert torch.allclose(got, want, atol=1e-10)


def test_box_loss_gradients_match_oracle(make_batch):
    """α carries no gradient, so a finite-difference gradcheck does not apply; compare with the oracle."""
    outputs, batch = make_batch(counts=(2, 1), size=(6, 5))
    rest = (batch["instance_coord"], batch["instance_imgid"], batch["instance_bbox"])
    m1 = outputs["bbox"].clone().requires_grad_()
    m2 = outputs["bbox"].clone().requires_grad_()
    bbox_loss(m1, *rest).backward()
    bbox_loss_ref(m2, *rest).backward()
    assert torch.allclose(m1.grad, m2.grad, atol=1e-10)
    assert m1.grad.abs().sum() > 0


def test_perfect_prediction_gives_zero_and_release_swap_does_not():
    # one person in a 8x8 map, box x=1, y=2, w=4, h=3; center (y, x) = (3, 2)
    gt = torch.tensor([[1.0, 2.0, 4.0, 3.0]], dtype=torch.float64)
    ys, xs = torch.meshgrid(torch.arange(8.0), torch.arange(8.0), indexing="ij")
    ltrb = torch.stack([xs - 1, ys - 2, 5 - xs, 5 - ys]).double()[None]  # exact distances everywhere
    coord = torch.tensor([[3, 2]])
    imgid = torch.tensor([0])
    assert bbox_loss(ltrb, coord, imgid, gt).abs() < 1e-9
    assert bbox_loss(ltrb, coord, imgid, gt, decode="release") > 0.05


def test_ciou_closed_forms():
    box = torch.tensor([2.0, 3.0, 4.0, 6.0], dtype=torch.float64)
    assert torch.allclose(ciou(box, box), torch.tensor(1.0, dtype=torch.float64), atol=1e-9)
    # same shape, shifted by its width: IoU 0, ρ² = 16, enclosing 8x6 -> c² = 100, v = 0
    shifted = torch.tensor([6.0, 3.0, 4.0, 6.0], dtype=torch.float64)
    assert torch.allclose(ciou(shifted, box), torch.tensor(-16 / 100, dtype=torch.float64), atol=1e-9)
    # nested boxes with different aspect: IoU = 1/4 and the aspect term v
    inner = torch.tensor([3.0, 4.5, 2.0, 3.0], dtype=torch.float64)
    iou, v = 6 / 24, 4 / math.pi ** 2 * (math.atan(4 / 6) - math.atan(2 / 3)) ** 2
    assert torch.allclose(ciou(inner, box), torch.tensor(iou - v * v / (v - iou + 1), dtype=torch.float64), atol=1e-9)


def test_decode_paper_versus_release():
    ltrb = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert decode_ltrb(ltrb, torch.tensor(10), torch.tensor(20)).tolist() == [9.0, 18.0, 4.0, 6.0]
    assert decode_ltrb(ltrb, torch.tensor(10), torch.tensor(20), "paper").tolist() == [9.0, 18.0, 4.0, 6.0]
    assert decode_ltrb(ltrb, torch.tensor(10), torch.tensor(20), "release").tolist() == [19.0, 8.0, 4.0, 6.0]
    with pytest.raises(ValueError, match=r"^decode must be one of \['paper', 'release'\], got 'yx'"):
        decode_ltrb(ltrb, torch.tensor(1), torch.tensor(1), "yx")


def test_ciou_of_zero_height_boxes():
    """eps is added to the heights: a flat box (h = 0, as a box wholly past the map's bottom edge is clipped
    to) has w/h → +inf and atan → +π/2, not −π/2, whichever of the two boxes is flat."""
    flat = torch.tensor([0.0, 0.0, 4.0, 0.0], dtype=torch.float64)
    tall = torch.tensor([0.0, 0.0, 4.0, 2.0], dtype=torch.float64)
    v = 4 / math.pi ** 2 * (math.atan(2) - math.pi / 2) ** 2  # atan(4/2) against atan(4/eps)
    rho2_c2 = 1 / 20  # centers (2, 0) and (2, 1); enclosing box 4 x 2
    expected = -rho2_c2 - v * v / (v + 1)  # IoU 0
    for pred, gt in ((flat, tall), (tall, flat)):
        assert ciou(pred, gt).item() == pytest.approx(expected, abs=1e-6)


def test_degenerate_inputs_give_finite_values(make_batch):
    outputs, batch = make_batch(counts=(0, 0), size=(5, 5))
    m = outputs["bbox"].clone().requires_grad_()
    zero = bbox_loss(m, batch["instance_coord"], batch["instance_imgid"], batch["instance_bbox"])
    zero.backward()
    assert zero.item() == 0 and torch.isfinite(m.grad).all()
    # all-zero (dummy) box adds nothing; a sub-pixel box and a zero-height prediction stay finite
    m = torch.zeros(1, 4, 5, 5, dtype=torch.float64, requires_grad=True)
    boxes = torch.tensor([[0.0, 0.0, 0.0, 0.0], [4.6, 4.2, 0.3, 0.4]], dtype=torch.float64)
    loss = bbox_loss(m, torch.tensor([[0, 0], [4, 4]]), torch.tensor([0, 0]), boxes)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(m.grad).all()
    with pytest.raises(ValueError, match="instance_bbox"):
        bbox_loss(m, torch.tensor([[0, 0]]), torch.tensor([0]), boxes[:1, :3])


def test_box_loss_fp32_under_autocast(make_batch):
    outputs, batch = make_batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = bbox_loss(outputs["bbox"].bfloat16(), batch["instance_coord"], batch["instance_imgid"],
                        batch["instance_bbox"].float())
    ref = bbox_loss(outputs["bbox"].bfloat16().double(), batch["instance_coord"], batch["instance_imgid"],
                    batch["instance_bbox"])
    assert out.dtype == torch.float32 and torch.allclose(out.double(), ref, atol=1e-5)


def test_dummy_boxes_add_exactly_zero_loss_and_zero_gradient():
    """An all-zero (dummy) box adds exactly 0 to the numerator, its window pixels still count in the
    denominator, and no gradient reaches the pixels only its window covers. Expected value by hand: the real
    person's 1 − CIoU summed over its window (ciou closed form per pixel) ÷ all window pixels."""
    g = torch.Generator().manual_seed(5)
    m = (torch.rand(1, 4, 9, 9, generator=g, dtype=torch.float64) * 3).requires_grad_()
    real_box = torch.tensor([1.0, 1.5, 3.0, 2.5], dtype=torch.float64)
    boxes = torch.stack([real_box, torch.zeros(4, dtype=torch.float64)])
    coord = torch.tensor([[2, 2], [7, 7]])  # (y, x): windows rows/cols 1..3 and 6..8 do not overlap
    imgid = torch.tensor([0, 0])
    loss, per_instance, count = bbox_loss(m, coord, imgid, boxes, return_per_instance=True)
    assert per_instance[1].item() == 0.0 and count.tolist() == [9.0, 9.0]
    by_hand = 0.0
    for y in (1, 2, 3):
        for x in (1, 2, 3):
            left, top, right, bottom = m[0, :, y, x].detach()
            pred = torch.stack([x - left, y - top, left + right, top + bottom])
            by_hand += 1 - float(ciou(pred, real_box))
    assert loss.item() == pytest.approx(by_hand / 18, rel=1e-12)
    loss.backward()
    assert torch.count_nonzero(m.grad[0, :, 6:9, 6:9]) == 0  # the dummy's window gets no gradient
    assert torch.count_nonzero(m.grad[0, :, 1:4, 1:4]) == 36  # the real one's does
    # the same loss without the dummy row: numerator unchanged, denominator 9 instead of 18
    alone = bbox_loss(m.detach(), coord[:1], imgid[:1], boxes[:1])
    assert alone.item() == pytest.approx(by_hand / 9, rel=1e-12)
