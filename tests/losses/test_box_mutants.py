"""The box loss (``losses/box.py``) where the other tests did not look (issue 14, mutation testing): the CIoU
epsilons on flat and tiny boxes and to float64 rounding, ``decode_ltrb``'s old spelling and output dtype, the
3 × 3 window's order and clipping, no warnings, and a non-CPU device."""
from __future__ import annotations

import math
import warnings

import pytest
import torch

from boir_core.losses import bbox_loss, center_windows, ciou, decode_ltrb
from boir_core.losses.reference import bbox_loss_ref, ciou_ref


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
    loss, per_instance, count = bbox_loss(*(a.to("meta") for a in args), return_per_instance=True)
    assert loss.device.type == per_instance.device.type == count.device.type == "meta"
    assert per_instance.shape == count.shape == (2,)
