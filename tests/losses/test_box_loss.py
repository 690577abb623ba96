"""Anchor-free decoding and the 1 − CIoU box loss (docs/release_vs_paper.md#box-loss-and-decoding) against a loop
oracle and closed forms: the CIoU epsilons on flat and tiny boxes and to float64 rounding, ``decode_ltrb``'s old
spelling and output dtype, the 3 × 3 window's order and clipping, no warnings, and the input's device kept."""
from __future__ import annotations

import math
import warnings

import pytest
import torch

from boir_core.losses import bbox_loss, bbox_loss_per_instance, center_windows, ciou, decode_ltrb
from boir_core.losses.reference import bbox_loss_ref, ciou_ref


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
    loss, per_instance, count = bbox_loss_per_instance(m, coord, imgid, boxes)
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


def _ref(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    return ciou_ref(pred.unbind(-1), gt.unbind(-1))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_flat_box_of_width_one_against_an_all_zero_prediction_is_finite(dtype):
    """An all-zero bbox map (the release's head initialisation zeroes every conv) predicts boxes of size 0; a
    ground-truth box clipped to height 0 with width exactly 1 has area 1·eps. The union's + eps keeps IoU at
    0/(2·eps) = 0 (with − eps it would be 0/0 = NaN and the whole loss NaN)."""
    pred = torch.tensor([[3.0, 3.0, 0.0, 0.0]], dtype=dtype)
    gt = torch.tensor([[2.5, 5.0, 1.0, 0.0]], dtype=dtype)
    got = ciou(pred, gt)
    assert torch.isfinite(got).all()
    # IoU 0, ρ² = (0² + 4²)/4 = 4, c² = 1² + 2² = 5, v = 4/π²·atan(1/eps)² ≈ 1, α ≈ 1/2: CIoU ≈ −(0.8 + 0.5)
    v = 4 / math.pi ** 2 * math.atan(1e10) ** 2
    assert math.isclose(float(got[0]), -(4 / 5 + v * v / (v + 1)), rel_tol=1e-6)
    assert torch.allclose(got, _ref(pred, gt), rtol=0, atol=1e-6)
    bbox_map = torch.zeros(1, 4, 8, 8, dtype=dtype)
    args = (bbox_map, torch.tensor([[7, 4]]), torch.tensor([0]), torch.tensor([[4.0, 8.0, 1.0, 0.0]], dtype=dtype))
    loss = bbox_loss(*args)
    assert torch.isfinite(loss) and torch.allclose(loss, bbox_loss_ref(*args), rtol=0, atol=1e-6)


def test_ciou_of_boxes_smaller_than_the_square_root_of_eps():
    """c² + eps: for two boxes a few micro-pixels apart the enclosing diagonal c² is below eps = 1e-10, and
    ρ²/c² must stay a penalty in [0, 1] (with c² − eps the denominator turns negative)."""
    pred = torch.tensor([[0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 2e-6, 3e-6]], dtype=torch.float64)
    gt = torch.tensor([[0.0, 0.0, 5e-6, 0.0], [1.0, 1.0, 4e-6, 1e-6]], dtype=torch.float64)
    got = ciou(pred, gt)
    assert torch.allclose(got, _ref(pred, gt), rtol=1e-8, atol=0)  # 1 + 2e-6 keeps 10 digits of 2e-6
    # first pair by hand: IoU 0, ρ² = (5e-6)²/4, c² = (5e-6)² + eps, v = 4/π²·atan(5e-6/eps)², α = v/(v + 1 + eps)
    rho2, c2 = 25e-12 / 4, 25e-12 + 1e-10
    v = 4 / math.pi ** 2 * math.atan(5e-6 / 1e-10) ** 2
    assert math.isclose(float(got[0]), -(rho2 / c2 + v * v / (v + 1 + 1e-10)), rel_tol=1e-12)
    assert (got >= -2).all() and (got <= 1).all()


def test_ciou_matches_the_release_formula_to_float64_rounding():
    """Every eps of the release's CIoU in its place (union, c², α's denominator): equal to the loop oracle in
    float64 to 1e-13, where a sign flip of one eps (a 1e-10 relative change) shows."""
    g = torch.Generator().manual_seed(2)
    pred = torch.cat([torch.rand(64, 2, generator=g, dtype=torch.float64) * 10,
                      torch.rand(64, 2, generator=g, dtype=torch.float64) * 8 + 0.1], 1)
    gt = torch.cat([torch.rand(64, 2, generator=g, dtype=torch.float64) * 10,
                    torch.rand(64, 2, generator=g, dtype=torch.float64) * 8 + 0.1], 1)
    torch.testing.assert_close(ciou(pred, gt), _ref(pred, gt), rtol=0, atol=1e-13)


def test_decode_ltrb_accepts_the_old_spelling_of_paper():
    """``decode="xy"`` (the old word for ``paper``) warns naming the config key and decodes as ``paper``."""
    ltrb = torch.tensor([[1.0, 2.0, 3.0, 4.0]], dtype=torch.float64)
    x, y = torch.tensor([5]), torch.tensor([9])
    with pytest.warns(DeprecationWarning, match=r"loss\.bbox_decode.*'xy'.*'paper'"):
        got = decode_ltrb(ltrb, x, y, "xy")
    assert got.tolist() == [[4.0, 7.0, 4.0, 6.0]]


@pytest.mark.parametrize("decode", ["paper", "release"])
def test_decode_ltrb_returns_the_dtype_of_the_distances(decode):
    """The anchors are cast to the distances' dtype: float32 distances give float32 boxes, also for float64
    anchors (sub-pixel ones included)."""
    ltrb = torch.tensor([[1.0, 2.0, 3.0, 4.0], [0.5, 0.25, 1.0, 2.0]])
    x = torch.tensor([10.1, 3.0], dtype=torch.float64)
    y = torch.tensor([20.3, 7.0], dtype=torch.float64)
    got = decode_ltrb(ltrb, x, y, decode)
    assert got.dtype == torch.float32
    assert torch.equal(got, decode_ltrb(ltrb, x.float(), y.float(), decode))
    assert decode_ltrb(ltrb.double(), torch.tensor([10, 3]), torch.tensor([20, 7]), decode).dtype == torch.float64


def test_center_windows_are_row_major_and_clipped_to_the_map():
    """Window pixel k is (y + k // 3 − 1, x + k % 3 − 1), clipped into the map and marked invalid where it
    leaves it: an inner center, the top-left and the bottom-right corner of a 4 × 5 map."""
    coord = torch.tensor([[2, 3], [0, 0], [3, 4]])
    rows, cols, valid = center_windows(coord, 4, 5)
    for i, (y, x) in enumerate(coord.tolist()):
        for k in range(9):
            r, c = y + k // 3 - 1, x + k % 3 - 1
            assert rows[i, k] == min(max(r, 0), 3) and cols[i, k] == min(max(c, 0), 4), (i, k)
            assert bool(valid[i, k]) == (0 <= r < 4 and 0 <= c < 5), (i, k)
    assert rows.dtype == cols.dtype == torch.long


def test_the_box_loss_emits_no_warning():
    """No warning in a training log, not even PyTorch's once-per-process ones (made to show every time here):
    e.g. ``torch.meshgrid`` without ``indexing=``, which PyTorch says will become an error."""
    bbox_map = torch.rand(1, 4, 5, 6) * 3
    args = (bbox_map, torch.tensor([[2, 3], [0, 5]]), torch.tensor([0, 0]),
            torch.tensor([[1.0, 1.0, 3.0, 2.5], [4.0, 0.0, 2.0, 1.0]]))
    before = torch.is_warn_always_enabled()
    torch.set_warn_always(True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            loss = bbox_loss(*args)
    finally:
        torch.set_warn_always(before)
    assert torch.isfinite(loss)


def test_the_box_loss_keeps_every_tensor_on_the_input_device():
    """PyTorch's ``meta`` device (shapes only) stands in for a GPU on a CPU-only machine: a tensor made on the
    CPU by mistake meets a meta tensor and raises, as it would meet a CUDA tensor."""
    args = (torch.rand(2, 4, 5, 6), torch.tensor([[2, 3], [0, 5]]), torch.tensor([0, 1]),
            torch.tensor([[1.0, 1.0, 3.0, 2.5], [4.0, 0.0, 2.0, 1.0]]))
    loss, per_instance, count = bbox_loss_per_instance(*(a.to("meta") for a in args))
    assert loss.device.type == per_instance.device.type == count.device.type == "meta"
    assert per_instance.shape == count.shape == (2,)
