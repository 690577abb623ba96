"""Figure 1's pair rule, the B∖A pixel sets, the fixed-β kernel and the per-person separation score
(boir_core.viz.figures / boir_core.viz.similarity), against hand-made boxes, loops and synthetic clusters."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from boir_core.losses import psi
from boir_core.viz import figures as fg
from boir_core.viz import similarity as vs

# ---------------------------------------------------------------------------------------------------
# the pair rule


def test_the_pair_rule_skips_near_identical_boxes_and_picks_the_pair_beside():
    boxes = [[0, 0, 10, 20], [0.5, 0.5, 10, 20],  # nearly the same box: the most overlapping pair
             [30, 0, 10, 20], [35, 0, 10, 20]]  # side by side: IoU 1/3, centers 5 apart = 0.5 x the side 10
    assert fg.most_overlapping_pair(boxes)[:2] == (0, 1)
    i, j, iou = fg.separated_overlapping_pair(boxes)
    assert (i, j) == (2, 3) and iou == pytest.approx(1 / 3)
    assert fg.separated_overlapping_pair(boxes, min_center_distance=0.51) is None  # 5 < 0.51 x 10


def test_the_pair_rule_refuses_boxes_that_share_a_center_and_breaks_ties_by_order():
    small, beside, around = [0, 0, 10, 20], [6, 0, 10, 20], [-2.5, -5, 15, 30]
    assert fg.box_iou(small, around) == pytest.approx(4 / 9)  # inside the IoU range, but the same center
    assert fg.separated_overlapping_pair([small, around]) is None
    # (0, 1) and (1, 2) both have IoU exactly 0.25 and centers 6 apart (>= 0.5 x 10): the first pair wins
    assert fg.box_iou(small, beside) == fg.box_iou(beside, around) == 0.25
    assert fg.separated_overlapping_pair([small, beside, around]) == (0, 1, 0.25)
    assert fg.separated_overlapping_pair([around, beside, small]) == (0, 1, 0.25)
    assert fg.separated_overlapping_pair([small, beside, around], iou_range=(0.3, 0.6)) is None
    assert fg.separated_overlapping_pair([small]) is None


def test_the_pair_rule_matches_a_brute_force_reading_of_its_docstring():
    rng = np.random.default_rng(4)
    for _ in range(20):
        boxes = [[*rng.uniform(0, 30, 2), *rng.uniform(4, 20, 2)] for _ in range(6)]
        ok = []
        for i in range(6):
            for j in range(i + 1, 6):
                (yi, xi), (yj, xj) = fg.box_center(boxes[i]), fg.box_center(boxes[j])
                side = min(boxes[i][2], boxes[i][3], boxes[j][2], boxes[j][3])
                v = fg.box_iou(boxes[i], boxes[j])
                if 0.2 <= v <= 0.6 and math.hypot(yi - yj, xi - xj) >= 0.5 * side:
                    ok.append((-v, i, j))
        got = fg.separated_overlapping_pair(boxes)
        assert got == (None if not ok else (min(ok)[1], min(ok)[2], -min(ok)[0]))


def test_the_pair_rule_names_bad_arguments():
    with pytest.raises(ValueError, match="iou_range"):
        fg.separated_overlapping_pair([[0, 0, 1, 1]], iou_range=(0.7, 0.2))
    with pytest.raises(ValueError, match="min_center_distance"):
        fg.separated_overlapping_pair([[0, 0, 1, 1]], min_center_distance=-1)


# ---------------------------------------------------------------------------------------------------
# B∖A and region means


def _in_box_loop(box, height, width):
    """The loss's pixel set, read from its docstring: pixel centers inside the box, plus the center pixel."""
    x, y, w, h = box
    cx = min(max(math.floor(x + w / 2), 0), width - 1)
    cy = min(max(math.floor(y + h / 2), 0), height - 1)
    out = np.zeros((height, width), bool)
    for v in range(height):
        for u in range(width):
            col = x <= u + 0.5 <= x + w or u == cx
            row = y <= v + 0.5 <= y + h or v == cy
            out[v, u] = col and row
    return out


def test_difference_pixels_match_a_loop():
    rng = np.random.default_rng(0)
    for _ in range(10):
        a = [*rng.uniform(-3, 12, 2), *rng.uniform(0.3, 9, 2)]
        b = [*rng.uniform(-3, 12, 2), *rng.uniform(0.3, 9, 2)]
        got = vs.difference_pixels(b, a, 11, 13).numpy()
        want = _in_box_loop(b, 11, 13) & ~_in_box_loop(a, 11, 13)
        np.testing.assert_array_equal(got, want)


def test_region_mean_is_the_mean_over_the_mask_and_nan_when_empty():
    values = np.arange(12, dtype=float).reshape(3, 4)
    mask = np.zeros((3, 4), bool)
    mask[1, 1:3] = True
    assert vs.region_mean(values, mask) == pytest.approx(5.5)
    assert vs.region_mean(torch.tensor(values), torch.tensor(mask)) == pytest.approx(5.5)
    assert math.isnan(vs.region_mean(values, np.zeros((3, 4), bool)))
    with pytest.raises(ValueError, match="same shape"):
        vs.region_mean(values, mask[:2])


# ---------------------------------------------------------------------------------------------------
# the fixed-β kernel


def test_fixed_beta_similarity_is_the_loss_kernel_on_normalised_features():
    rng = np.random.default_rng(3)
    f = rng.normal(size=(6, 5, 7)) * rng.uniform(0.5, 3, size=(1, 5, 7))
    got = fg.fixed_beta_similarity(f, (2, 4), beta=12.0)
    e = f / np.linalg.norm(f, axis=0, keepdims=True)
    assert got[2, 4] == pytest.approx(1.0)
    for y, x in ((0, 0), (4, 6), (3, 1)):
        r = float(((e[:, y, x] - e[:, 2, 4]) ** 2).sum())
        assert got[y, x] == pytest.approx(math.exp(-12.0 / 6 * r), rel=1e-9)
        assert got[y, x] == pytest.approx(float(psi(torch.tensor(r, dtype=torch.float64), 12.0, 6)), rel=1e-9)
    # scaling one pixel's raw feature changes nothing (unit vectors), unlike the median bandwidth
    f2 = f.copy()
    f2[:, 0, 0] *= 10
    assert fg.fixed_beta_similarity(f2, (2, 4), 12.0)[0, 0] == pytest.approx(got[0, 0])


def test_psi_is_exp_minus_beta_over_d_and_names_a_bad_d():
    r = torch.tensor([0.0, 0.5, 2.0], dtype=torch.float64)
    torch.testing.assert_close(psi(r, 10.0, 4), torch.exp(-2.5 * r))
    with pytest.raises(ValueError, match="dim"):
        psi(r, 1.0, 0)


# ---------------------------------------------------------------------------------------------------
# per-person samples and their separation


def test_instance_pixels_sample_skips_shared_pixels_and_small_people_and_is_seeded():
    boxes = [[0, 0, 6, 8], [4, 0, 6, 8], [20, 0, 2, 2]]  # 0 and 1 share columns 4-5; 2 has 4 pixels
    pixels, labels = vs.instance_pixels_sample(boxes, 10, 24, per_person=8, seed=1)
    assert sorted(set(labels.tolist())) == [0, 1]  # person 2 has fewer than 8 pixels
    assert np.bincount(labels).tolist() == [8, 8]
    masks = [_in_box_loop(b, 10, 24) for b in boxes]
    for (r, c), lab in zip(pixels, labels):
        assert masks[lab][r, c] and sum(m[r, c] for m in masks) == 1  # inside its own box, in no other
    assert len({tuple(p) for p in pixels}) == 16  # no pixel twice
    again, _ = vs.instance_pixels_sample(boxes, 10, 24, per_person=8, seed=1)
    np.testing.assert_array_equal(pixels, again)
    other, _ = vs.instance_pixels_sample(boxes, 10, 24, per_person=8, seed=2)
    assert not np.array_equal(pixels, other)
    # person 0's draw does not depend on who else is in the picture
    alone, _ = vs.instance_pixels_sample([boxes[0], [15, 0, 4, 8]], 10, 24, per_person=8, seed=1)
    shared, _ = vs.instance_pixels_sample(boxes, 10, 24, per_person=8, seed=1, exclusive=False)
    np.testing.assert_array_equal(alone[:8], shared[:8])
    with pytest.raises(ValueError, match="per_person"):
        vs.instance_pixels_sample(boxes, 10, 24, per_person=0)


def _scene(person_vectors, noise, seed=0):
    """A [C, 12, 30] map: three side-by-side boxes, each pixel its person's vector plus noise."""
    rng = np.random.default_rng(seed)
    boxes = [[0, 0, 10, 12], [10, 0, 10, 12], [20, 0, 10, 12]]
    c = len(person_vectors[0])
    f = rng.normal(scale=noise, size=(c, 12, 30))
    for k, (x, _, w, _) in enumerate(boxes):
        f[:, :, x:x + w] += np.asarray(person_vectors[k])[:, None, None]
    return f, boxes


def test_separation_is_high_for_distinct_people_and_low_for_mixed_ones():
    eye = np.eye(8)[:3] * 3.0
    f, boxes = _scene(eye, noise=0.3)
    x, labels = vs.instance_embeddings(f, boxes, per_person=20, seed=0)
    assert x.shape == (60, 8) and np.allclose(np.linalg.norm(x, axis=1), 1.0)  # L2-normalised
    assert vs.separation_score(x, labels) > 0.7
    same, boxes = _scene([np.zeros(8)] * 3, noise=1.0)  # every person drawn from one distribution
    x, labels = vs.instance_embeddings(same, boxes, per_person=20, seed=0)
    assert abs(vs.separation_score(x, labels)) < 0.1
    assert math.isnan(vs.separation_score(x[:20], labels[:20]))  # one person: no score


def test_instance_tsne_keeps_distinct_people_apart():
    f, boxes = _scene(np.eye(8)[:3] * 3.0, noise=0.3)
    x, labels = vs.instance_embeddings(f, boxes, per_person=15, seed=0)
    y = fg.instance_tsne(x, seed=0)
    assert y.shape == (45, 2)
    d = np.linalg.norm(y[:, None] - y[None], axis=-1) + np.eye(45) * 1e9
    assert (labels[d.argmin(1)] == labels).all()  # every point's nearest neighbour is the same person's


def test_the_new_figures_draw():
    canvas = np.full((48, 120, 3), 90, np.uint8)
    heat = np.random.default_rng(0).uniform(size=(12, 30))
    maps = {m: {"median h": [heat, heat], "ψ, β = D": [heat, heat]} for m in ("CID", "BoIR")}
    scores = {m: {"median h": [0.1, 0.2], "ψ, β = D": [0.3, 0.4]} for m in ("CID", "BoIR")}
    fig = fg.similarity_grid_figure(canvas, [[0, 0, 40, 48], [20, 0, 40, 48]], maps, scores, score_label="leak ")
    assert len(fig.axes) == 10
    assert [ax.get_xlabel() for ax in fig.axes[1:5]] == ["leak 0.10", "leak 0.30", "leak 0.20", "leak 0.40"]
    pts = np.random.default_rng(1).normal(size=(20, 2))
    lab = np.repeat([0, 2], 10)
    fig = fg.instance_tsne_figure(canvas, [[0, 0, 40, 48], [50, 0, 20, 20], [70, 0, 40, 48]],
                                  {"CID": {"points": pts, "labels": lab, "score": 0.25},
                                   "BoIR": {"points": pts, "labels": lab, "score": 0.5}})
    assert len(fig.axes) == 3 and "silhouette 0.50" in fig.axes[2].get_title()
    entries = {n: {"poses": [], "center": heat, "tsne_points": pts if n == "BoIR" else None, "tsne_labels": lab,
                   "tsne_score": 0.5, "similarity": heat, "top_yx": (2, 3)} for n in ("CID", "BoIR")}
    fig = fg.comparison_figure(canvas, entries)
    assert len(fig.axes) == 8
    assert "no sample" in fig.axes[2].get_title() and "silhouette 0.50" in fig.axes[6].get_title()
