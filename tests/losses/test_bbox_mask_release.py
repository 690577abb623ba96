"""The release's Bbox Mask Loss (losses/bbox_mask_release.py): the dilated box pixel sets at the map's borders,
the fields every result carries besides the losses, and the strict ``Σs < 1e-5`` rule of the positive group's
fallback. Oracles are plain loops over boxes and pixels."""
from __future__ import annotations

import math

import pytest
import torch

from boir_core.losses import BboxMaskSettings, bbox_mask_release, bbox_mask_terms, box_rows_cols
from boir_core.losses.reference import _unit_map, bbox_mask_release_ref, release_box_span

H, W = 8, 10


def _span(lo: float, size: float, n: int):
    """The release's half-open pixel range along one axis (reference.release_box_span) as a set, and whether it
    spans at least 2 pixels."""
    a, b = release_box_span(lo, size, n)
    return set(range(a, b)), b - a >= 2


def _oracle_box(box, height=H, width=W):
    """(rows, cols, valid) of one xywh box, as Python sets and a bool; empty sets for a skipped box."""
    x, y, w, h = box
    cols, ok_x = _span(x, w, width)
    rows, ok_y = _span(y, h, height)
    valid = ok_x and ok_y
    return (rows, cols, True) if valid else (set(), set(), False)


# boxes in an 8 × 10 map, each with why it is there
BORDER_BOXES = [
    [0.2, 2.0, 0.5, 3.0],    # thin at the left border: columns clamp(−1) = 0 … 1, one pixel wide: skipped
    [-3.0, 1.0, 3.5, 2.0],   # mostly left of the map, ends at x = 0.5: one column left, skipped
    [3.0, 7.5, 2.0, 0.3],    # thin at the bottom border: rows 6 … clamp(8) = 7, one pixel high: skipped
    [2.0, 0.3, 3.0, 0.4],    # thin at the top border: skipped
    [-0.5, -0.7, 3.0, 2.5],  # crosses the top-left corner: int(−0.5) = 0 (toward zero), rows 0, 1, columns 0 … 2
    [8.6, 5.2, 3.0, 4.0],    # crosses the bottom-right corner: columns 7, 8 and rows 4 … 6 (never the last ones)
    [12.0, 3.0, 2.0, 2.0],   # wholly right of the map: skipped
    [-6.0, -5.0, 2.0, 2.0],  # wholly above and left of the map: skipped
    [1.0, 0.5, 0.8, 0.8],    # smaller than a pixel: the dilation keeps it (2 × 2)
    [0.0, 0.0, 10.0, 8.0],   # the whole map: the last row and column stay outside
]


def test_release_box_pixels_match_a_loop_oracle_at_the_borders():
    """rows, columns and ``valid`` of release_rows_cols (and box_rows_cols with a release variant) equal the
    loop oracle on boxes that are thin, or cross or leave the map at each border."""
    boxes = torch.tensor(BORDER_BOXES, dtype=torch.float64)
    for variant in ("release-image", "release-instance"):
        rows, cols, valid = box_rows_cols(boxes, H, W, variant)
        for i, box in enumerate(BORDER_BOXES):
            want_rows, want_cols, want_valid = _oracle_box(box)
            assert bool(valid[i]) == want_valid, (i, box, "valid")
            assert set(torch.nonzero(rows[i]).flatten().tolist()) == want_rows, (i, box, "rows")
            assert set(torch.nonzero(cols[i]).flatten().tolist()) == want_cols, (i, box, "cols")
    assert [bool(v) for v in valid] == [False, False, False, False, True, True, False, False, True, True]


@pytest.mark.parametrize("variant,level", [("release-instance", 0), ("release-image", 1)])
def test_release_loss_skips_the_boxes_the_release_skips_at_the_borders(variant, level):
    """The loss of a batch holding the border boxes equals the release's pseudo-code (which skips a box whose
    clamped extent is under 2 pixels): a skipped box counted as a person changes every push of its image."""
    g = torch.Generator().manual_seed(11)
    emb = torch.randn(2, 3, H, W, generator=g, dtype=torch.float64)
    boxes = torch.tensor(BORDER_BOXES, dtype=torch.float64)
    imgid = torch.tensor([0, 1, 0, 1, 0, 1, 0, 1, 1, 0])
    t = bbox_mask_terms(emb, boxes, imgid, settings=BboxMaskSettings(variant=variant))
    want, _ = bbox_mask_release_ref(emb, boxes, imgid, level=level)
    assert torch.allclose(t.loss, want, atol=1e-9)
    assert t.valid.tolist() == [_oracle_box(b)[2] for b in BORDER_BOXES]
    skipped = ~t.valid
    for name in ("pull_in", "push_out", "push_inst"):
        assert torch.equal(getattr(t, name)[skipped], torch.zeros(int(skipped.sum()), dtype=torch.float64)), name


def _point(box, height=H, width=W):
    """(row, column) where the release reads p: floor((x + w)/2), floor((y + h)/2), clipped to the map."""
    x, y, w, h = box
    return min(max(math.floor((y + h) / 2), 0), height - 1), min(max(math.floor((x + w) / 2), 0), width - 1)


FIELD_BOXES = [[1.3, 0.6, 4.0, 3.5], [4.2, 2.5, 5.1, 5.0], [0.0, 0.0, 10.0, 8.0], [6.0, 3.0, 1.0, 2.5]]
FIELD_IMGID = [0, 1, 1, 0]


def _field_setup(beta):
    g = torch.Generator().manual_seed(4)
    emb = torch.randn(2, 3, H, W, generator=g, dtype=torch.float64)
    boxes = torch.tensor(FIELD_BOXES, dtype=torch.float64)
    return emb, boxes, torch.tensor(FIELD_IMGID)


@pytest.mark.parametrize("beta", [10.0, 0.5])
def test_release_instance_fields_match_loop_values(beta):
    """Besides the losses, release-instance returns for each person the point where p is read, p, the soft mean
    p̄ = Σ s·e / Σ s over its dilated box with s = exp(−β·Σ_d (e − p)²), the mean p̄ᶜ of e outside the box, the
    soft-mask sum Σ s and has_outside (always true: a release box never reaches the last row or column), each
    in the map's dtype; notebook 03 builds its closed forms on them."""
    emb, boxes, imgid = _field_setup(beta)
    e = _unit_map(emb)
    t = bbox_mask_terms(emb, boxes, imgid, settings=BboxMaskSettings(variant="release-instance", beta=beta))
    for i, box in enumerate(FIELD_BOXES):
        b = FIELD_IMGID[i]
        rows, cols, valid = _oracle_box(box)
        assert valid, i
        r, c = _point(box)
        p = e[b, :, r, c]
        weights, weighted, outside = 0.0, torch.zeros(3, dtype=torch.float64), []
        for v in range(H):
            for u in range(W):
                if v in rows and u in cols:
                    s = math.exp(-beta * float(((e[b, :, v, u] - p) ** 2).sum()))
                    weights += s
                    weighted = weighted + s * e[b, :, v, u]
                else:
                    outside.append(e[b, :, v, u])
        assert t.point_yx[i].tolist() == [r, c], i
        assert torch.allclose(t.p[i], p, atol=1e-12), i
        assert t.soft_mask_sum[i].item() == pytest.approx(weights, rel=1e-9), i
        assert torch.allclose(t.p_bar[i], weighted / weights, atol=1e-9), i
        assert torch.allclose(t.p_bar_out[i], torch.stack(outside).mean(0), atol=1e-12), i
    assert t.has_outside.dtype == torch.bool and t.has_outside.tolist() == [True] * len(FIELD_BOXES)
    for name in ("p", "p_bar", "p_bar_out", "soft_mask_sum", "pull_in", "push_out", "push_inst"):
        assert getattr(t, name).dtype == torch.float64, name


def test_release_image_fields_are_p_p_and_zero():
    """release-image never uses p̄, p̄ᶜ nor the soft mask (level 1 of the release has no per-person groups): it
    reports p̄ = p̄ᶜ = p, soft-mask sum 0, pull 0 and has_outside true, all in the map's dtype, with p read at the
    release's point."""
    emb, boxes, imgid = _field_setup(10.0)
    e = _unit_map(emb)
    t = bbox_mask_terms(emb, boxes, imgid, settings=BboxMaskSettings(variant="release-image"))
    want_p = torch.stack([e[b, :, r, c] for b, (r, c) in zip(FIELD_IMGID, map(_point, FIELD_BOXES))])
    assert t.point_yx.tolist() == [list(_point(box)) for box in FIELD_BOXES]
    assert torch.allclose(t.p, want_p, atol=1e-12)
    assert torch.equal(t.p_bar, t.p) and torch.equal(t.p_bar_out, t.p)
    zeros = torch.zeros(len(FIELD_BOXES), dtype=torch.float64)
    assert t.soft_mask_sum.dtype == torch.float64 and torch.equal(t.soft_mask_sum, zeros)
    assert t.pull_in.dtype == torch.float64 and torch.equal(t.pull_in, zeros)
    assert t.loss_pull_in.dtype == torch.float64 and t.loss_pull_in.item() == 0
    assert t.has_outside.dtype == torch.bool and t.has_outside.tolist() == [True] * len(FIELD_BOXES)


def test_release_fallback_to_p_is_strictly_below_the_threshold(monkeypatch):
    """The release keeps the soft mean p̄ when Σs equals the threshold and falls back to the group [p] only when
    Σs is below it (``Σs < 1e-5``). A real map practically never gives Σs = 1e-5 to the last bit, so the threshold
    is moved to the box's own Σs instead: at Σs the pull is ‖p − p̄‖²/(2D) > 0; one ulp above Σs, p̄ = p, the
    pull is 0 and the out-push is 1 + ψ(p, p̄ᶜ)."""
    g = torch.Generator().manual_seed(7)
    D = 3
    emb = torch.randn(1, D, H, W, generator=g, dtype=torch.float64)
    box = [2.2, 1.4, 4.0, 4.5]
    boxes, imgid = torch.tensor([box], dtype=torch.float64), torch.zeros(1, dtype=torch.long)
    assert bbox_mask_release.RELEASE_TINY_MASK_SUM == 1e-5
    t = bbox_mask_terms(emb, boxes, imgid, settings=BboxMaskSettings(variant="release-instance", beta=2.0))
    s = t.soft_mask_sum[0]
    p, p_bar, p_bar_out = t.p[0], t.p_bar[0], t.p_bar_out[0]
    assert s > 1e-5 and not torch.allclose(p, p_bar)

    monkeypatch.setattr(bbox_mask_release, "RELEASE_TINY_MASK_SUM", s.item())
    at = bbox_mask_terms(emb, boxes, imgid, settings=BboxMaskSettings(variant="release-instance", beta=2.0))
    assert torch.equal(at.p_bar[0], p_bar)
    assert at.pull_in[0].item() == pytest.approx(float(((p - p_bar) ** 2).sum()) / (2 * D), rel=1e-12)
    assert at.pull_in[0] > 0

    monkeypatch.setattr(bbox_mask_release, "RELEASE_TINY_MASK_SUM", torch.nextafter(s, s + 1).item())
    above = bbox_mask_terms(emb, boxes, imgid, settings=BboxMaskSettings(variant="release-instance", beta=2.0))
    assert torch.equal(above.p_bar[0], p) and above.pull_in[0] == 0
    want_out = 1 + math.exp(-2.0 / D * float(((p - p_bar_out) ** 2).sum()))
    assert above.push_out[0].item() == pytest.approx(want_out, rel=1e-12)
