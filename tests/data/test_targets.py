"""Targets (docs/data_format.md#targets) against loop-based oracles and the worked examples of
docs/data_format.md#gaussian-size."""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from boir_core.data.targets import (
    TargetRules,
    boxes_from_corners,
    build_targets,
    gaussian_maps,
    gaussian_radius,
    gaussian_sigma,
    keypoint_centers,
    select_instances,
)

STILL = TargetRules(center_jitter=False)  # no jitter: instance coordinates are int(center)


def radius_oracle(h: float, w: float, o: float = 0.7) -> int:
    """CornerNet's three quadratics, one scalar at a time (r2, r3 halved, not divided by 2a)."""
    roots = []
    for a, b, c in ((1.0, h + w, w * h * (1 - o) / (1 + o)),
                    (4.0, 2 * (h + w), (1 - o) * w * h),
                    (4 * o, -2 * o * (h + w), (o - 1) * w * h)):
        roots.append((b + math.sqrt(b * b - 4 * a * c)) / 2)
    return max(0, int(min(roots)))


def draw_oracle(size, points, radii):
    """Paste a (2r+1)² Gaussian kernel per point, max-merged, as CenterNet's draw_gaussian does, at the
    pixel Python's int() gives (truncation toward zero, as the release)."""
    out = np.zeros((size, size))
    for (x, y), r in zip(points, radii):
        cx, cy = int(x), int(y)
        if not (0 <= cx < size and 0 <= cy < size):
            continue
        sigma = (2 * r + 1) / 6
        for yy in range(cy - r, cy + r + 1):
            for xx in range(cx - r, cx + r + 1):
                if 0 <= xx < size and 0 <= yy < size:
                    g = math.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma * sigma))
                    out[yy, xx] = max(out[yy, xx], g)
    return out


@pytest.mark.parametrize("h, w, r, sigma", [(16, 8, 2, 0.83), (32, 16, 5, 1.83), (64, 32, 11, 3.83),
                                            (100, 60, 20, 6.83)])
def test_radius_matches_spec_examples(h, w, r, sigma):
    assert gaussian_radius(h, w) == r
    assert gaussian_sigma(r) == pytest.approx(sigma, abs=0.005)


def test_radius_is_at_most_0_137_of_the_box_perimeter_half():
    """The docstring's and docs/data_format.md's coefficient: r / (h + w) tends to the root of the third
    quadratic, (√(4o²(ρ+1)² + 16·o(1−o)·ρ) − 2o(ρ+1)) / (2(ρ+1)) for aspect ratio ρ = h / w, largest at
    ρ = 1 (0.137, not the 0.18 once written); 0.123 at 2:1, 0.090 at 4:1."""
    o, big = 0.7, 1e7
    for rho, coef in ((1, 0.137), (2, 0.123), (4, 0.090)):
        closed = (math.sqrt(4 * o * o * (rho + 1) ** 2 + 16 * o * (1 - o) * rho) - 2 * o * (rho + 1)) / (2 * (rho + 1))
        assert float(gaussian_radius(rho * big, big)) / (big * (rho + 1)) == pytest.approx(closed, abs=1e-6)
        assert closed == pytest.approx(coef, abs=5e-4)
    h, w = np.meshgrid(np.arange(1, 227), np.arange(1, 227), indexing="ij")
    assert (gaussian_radius(h, w) / (h + w)).max() <= 0.137


def test_radius_matches_scalar_oracle():
    rng = np.random.default_rng(1)
    hw = rng.uniform(0, 150, size=(200, 2))
    got = gaussian_radius(hw[:, 0], hw[:, 1])
    assert got.tolist() == [radius_oracle(h, w) for h, w in hw]


def test_radius_matches_scalar_oracle_on_every_integer_box_up_to_226():
    """The sides reach gaussian_radius rounded up, so integers are its whole domain in training: every box
    from 0 x 0 to 226 x 226 (a side of a rotated box clipped to the largest, 160-pixel, output map is at most
    ceil(159·√2) = 225), degenerate and tiny boxes included."""
    h, w = np.meshgrid(np.arange(227), np.arange(227), indexing="ij")
    got = gaussian_radius(h.ravel(), w.ravel())
    assert got.dtype == np.int64
    assert got.tolist() == [radius_oracle(a, b) for a, b in zip(h.ravel().tolist(), w.ravel().tolist())]


def test_gaussian_maps_match_paste_oracle():
    rng = np.random.default_rng(2)
    size = 24
    pts = rng.uniform(-3, size + 3, size=(12, 2))
    radii = rng.integers(0, 6, size=12)
    maps = gaussian_maps(pts, np.ones(12, bool), radii, size)
    np.testing.assert_allclose(maps.max(0), draw_oracle(size, pts, radii), atol=1e-6)
    for m, (x, y) in zip(maps, pts):
        if -1 < x < size and -1 < y < size:  # int() truncates toward zero: (-1, 0) lands on pixel 0
            assert m[int(y), int(x)] == 1.0 and m.max() == 1.0
        else:
            assert m.max() == 0.0


def test_points_in_minus_one_to_zero_are_drawn_at_pixel_zero():
    """The release takes pixels with Python's int(): x = -0.6 is drawn at column 0, x = -1.0 is not drawn."""
    pts = np.array([[-0.6, 5.5], [5.5, -0.3], [-0.99, -0.01], [-1.0, 5.0], [5.0, -1.2], [7.99, 7.99],
                    [8.0, 3.0], [3.0, 8.0]])
    maps = gaussian_maps(pts, np.ones(len(pts), bool), np.full(len(pts), 1), 8)
    assert maps.dtype == np.float32
    assert maps[0, 5, 0] == 1.0 and maps[1, 0, 5] == 1.0 and maps[2, 0, 0] == 1.0 and maps[5, 7, 7] == 1.0
    assert maps[3].max() == maps[4].max() == maps[6].max() == maps[7].max() == 0.0
    # the center pixel and the instance coordinate follow the same int()
    idx, coords = select_instances(np.array([[-0.5, 3.2], [3.7, -0.9], [-1.0, 3.0]]), np.ones(3, bool),
                                   np.array([1.0, 2.0, 3.0]), 8, None, STILL)
    assert idx.tolist() == [0, 1] and coords.tolist() == [[3, 0], [0, 3]]


def test_radius_uses_the_box_sides_rounded_up():
    """gaussian_radius((ceil(h), ceil(w))) as the release: a 15.2 x 8.1 box gets the radius of 16 x 9 (3),
    not that of 15.2 x 8.1 (2); a rotated box's sides are Euclidean lengths, rounded up the same way."""
    from boir_core.data.targets import person_radii

    assert radius_oracle(15.2, 8.1) == 2 and radius_oracle(16, 9) == 3
    box = np.array([[[10.0, 20.0], [18.1, 20.0], [10.0, 35.2], [18.1, 35.2]]])  # TL, TR, BL, BR
    assert person_radii(box, 64).tolist() == [3]
    a = math.radians(30)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    rotated = (box[0] - [10, 20]) @ rot.T + [30, 20]
    assert person_radii(rotated[None], 64).tolist() == [3]
    # the corners are clipped to the map before the sides are measured: a box hanging off the left edge
    off = box - [14.0, 0.0]  # x from -4 to 4.1: w = 4.1 -> 5, h = 15.2 -> 16
    assert person_radii(off, 64).tolist() == [radius_oracle(16, 5)] != [radius_oracle(16, 9)]
    # ... and to the last pixel, S - 1, on the right and at the bottom: x 30..80, y 56..90 on a 64 map is
    # 33 x 7 (not 35 x 9 clipped to S + 1, 32 x 6 to S - 2, 50 x 34 unclipped)
    tail = np.array([[[30.0, 56.0], [80.0, 56.0], [30.0, 90.0], [80.0, 90.0]]])
    assert person_radii(tail, 64).tolist() == [radius_oracle(7, 33)] == [3]
    assert {radius_oracle(9, 35), radius_oracle(6, 32), radius_oracle(34, 50)}.isdisjoint({3})


def test_radius_per_person_from_the_sides_not_the_diagonals():
    """Several people at once, each from its own height |TL - BL| and width |TL - TR|."""
    from boir_core.data.targets import person_radii

    def box(x0, y0, w, h):
        return [[x0, y0], [x0 + w, y0], [x0, y0 + h], [x0 + w, y0 + h]]

    boxes = np.array([box(2, 3, 40, 10), box(5, 5, 6, 50), box(20, 20, 3, 3)], float)
    assert person_radii(boxes, 64).tolist() == [radius_oracle(10, 40), radius_oracle(50, 6), radius_oracle(3, 3)]
    assert radius_oracle(10, 40) != radius_oracle(math.hypot(10, 40), 40)  # the diagonal would change it


def test_keypoint_centers_average_labelled_points_only():
    k = np.array([[[0, 0, 0], [2, 4, 1], [4, 8, 2]], [[9, 9, 0], [1, 1, 0], [5, 5, 0]],
                  [[7, 3, 0], [6, 9, 1], [1, 1, 0]]], float)
    c, ok = keypoint_centers(k)
    np.testing.assert_allclose(c[0], [3, 6])
    np.testing.assert_allclose(c[2], [6, 9])  # one labelled keypoint is its own center
    assert ok.tolist() == [True, False, True]


def _person(cx, cy, half, k=5, v=2):
    kp = np.array([[cx - half + i * 2 * half / (k - 1), cy + (i % 2) * 2 - 1, v] for i in range(k)], float)
    x0, y0, x1, y1 = cx - half, cy - half, cx + half, cy + half
    corners = np.array([[x0, y0], [x1, y0], [x0, y1], [x1, y1]], float)
    return kp, corners


def test_build_targets_peaks_order_and_small_person_rule():
    s = 64
    people = [_person(20, 20, 12), _person(44, 40, 6), _person(50, 12, 3)]
    kp = np.stack([p[0] for p in people])
    corners = np.stack([p[1] for p in people])
    areas = np.array([3000.0, 1500.0, 500.0])  # input px²: the third is < 32² -> no center (COCO rule)
    t = build_targets(kp, corners, areas, s, rules=STILL)
    k = kp.shape[1]
    assert t.multi_heatmap.shape == (k + 1, s, s)
    for p in range(3):  # every labelled keypoint peaks at 1 in its BUK channel, small people included
        for j in range(k):
            assert t.multi_heatmap[j, int(kp[p, j, 1]), int(kp[p, j, 0])] == 1.0
    centers, _ = keypoint_centers(kp)
    assert t.center_valid.tolist() == [True, True, False]
    for p in (0, 1):
        assert t.multi_heatmap[k, int(centers[p, 1]), int(centers[p, 0])] == 1.0
    assert t.multi_heatmap[k, int(centers[2, 1]), int(centers[2, 0])] < 1.0
    # instances: small person dropped, the rest in ascending area order, unjittered int(center)
    assert t.person_index.tolist() == [1, 0]
    np.testing.assert_array_equal(t.instance_coord, np.trunc(centers[[1, 0]][:, ::-1]).astype(int))
    np.testing.assert_allclose(t.instance_center, centers[[1, 0]], rtol=1e-6)
    np.testing.assert_allclose(t.instance_heatmap[0].max(0), draw_oracle(s, kp[1, :, :2], [t.radius[1]] * k),
                               atol=1e-6)
    # CrowdPose rule: no area test
    t2 = build_targets(kp, corners, areas, s, rules=replace(STILL, small_person_no_center=False))
    assert t2.center_valid.all() and t2.person_index.tolist() == [2, 1, 0]
    # every instance output has one row per instance, in the instance order
    assert t.instance_heatmap.shape == (2, k, s, s) and t.instance_mask.shape == (2, k)
    np.testing.assert_array_equal(t.instance_keypoints, kp[[1, 0]].astype(np.float32))
    np.testing.assert_array_equal(t.instance_bbox, boxes_from_corners(corners, s)[[1, 0]])
    # exactly 32² input px² is not small
    t3 = build_targets(kp, corners, np.array([3000.0, 1500.0, 32.0 ** 2]), s, rules=STILL)
    assert t3.center_valid.tolist() == [True, True, True]


def test_build_targets_dtypes_and_shapes():
    """The dtypes CONTRIBUTING.md gives for every target (float32 maps and numbers, int64 indices)."""
    kp, corners = _person(30, 30, 10)
    t = build_targets(kp[None].astype(int), corners[None].astype(int), [5000], 64, rules=STILL)
    for name in ("multi_heatmap", "instance_heatmap", "instance_mask", "instance_bbox", "instance_keypoints",
                 "instance_center"):
        assert getattr(t, name).dtype == np.float32, name
    assert t.instance_coord.dtype == np.int64 and t.radius.dtype == np.int64
    assert t.instance_keypoints.shape == (1, 5, 3) and t.instance_center.shape == (1, 2)
    assert boxes_from_corners(corners[None], 64, "release").dtype == np.float32


def test_person_without_labelled_keypoints_has_no_center_whatever_its_area():
    kp, corners = _person(30, 30, 10)
    kp2 = kp.copy()
    kp2[:, 2] = 0
    t = build_targets(np.stack([kp, kp2]), np.stack([corners, corners]), [5000.0, 9000.0], 64, rules=STILL)
    assert t.center_valid.tolist() == [True, False] and t.person_index.tolist() == [0]


def test_occluded_keypoints_v1_are_drawn_and_masked_like_visible_ones():
    kp, corners = _person(30, 30, 10)
    kp[:, 2] = [1, 2, 1, 1, 2]
    t = build_targets(kp[None], corners[None], [5000.0], 64, rules=STILL)
    assert t.instance_mask[0].tolist() == [1, 1, 1, 1, 1]
    for j in range(5):
        assert t.multi_heatmap[j, int(kp[j, 1]), int(kp[j, 0])] == 1.0 == t.instance_heatmap[0, j].max()


def test_build_targets_jitters_by_default_reproducibly_and_honours_max_instances():
    """Jitter is on by default and drawn from the given generator (same seed, same targets); box_clipping
    and max_instances reach the instances."""
    people = [_person(8 + 12 * (i % 5), 8 + 12 * (i // 5), 4) for i in range(10)]
    kp = np.stack([p[0] for p in people])
    corners = np.stack([p[1] for p in people])
    areas = np.arange(10) * 100.0 + 2000.0
    a = build_targets(kp, corners, areas, 64, rng=np.random.default_rng(7))
    b = build_targets(kp, corners, areas, 64, rules=TargetRules(center_jitter=True),
                      rng=np.random.default_rng(7))
    still = build_targets(kp, corners, areas, 64, rules=STILL)
    np.testing.assert_array_equal(a.instance_coord, b.instance_coord)
    assert (a.instance_coord != still.instance_coord).any()
    few = build_targets(kp, corners, areas, 64, rules=TargetRules(max_instances=3),
                        rng=np.random.default_rng(7))
    assert len(few.person_index) == 3 and few.instance_heatmap.shape[0] == 3
    off = corners.copy()
    off[0, :, 0] -= 10  # the smallest person's box: x from -6 to 2, where the two clipping rules differ
    correct = build_targets(kp, off, areas, 64, rules=replace(STILL, box_clipping="correct")).instance_bbox[0]
    release = build_targets(kp, off, areas, 64, rules=replace(STILL, box_clipping="release")).instance_bbox[0]
    assert correct[2] == 2 and release[2] == 8


def test_unlabelled_and_out_of_map_keypoints():
    kp, corners = _person(30, 30, 10)
    kp[0, 2] = 0  # unlabelled -> mask 0
    kp[1, :2] = (-5, 30)  # labelled but outside the map -> mask 1, all-negative channel
    t = build_targets(kp[None], corners[None], [5000.0], 64, rules=STILL)
    assert t.instance_mask[0].tolist() == [0, 1, 1, 1, 1]
    assert t.instance_heatmap[0, 0].max() == 0 and t.instance_heatmap[0, 1].max() == 0
    assert t.instance_heatmap[0, 2].max() == 1.0


def test_duplicate_coordinates_keep_the_smaller_person():
    centers = np.array([[10.2, 10.7], [10.9, 10.1], [30.0, 30.0], [40.0, 10.5], [10.5, 40.0]])
    idx, coords = select_instances(centers, np.ones(5, bool), np.array([500.0, 100.0, 50.0, 600.0, 700.0]), 64,
                                   None, STILL)
    # same row or same column is not the same coordinate
    assert idx.tolist() == [2, 1, 3, 4] and coords.tolist() == [[30, 30], [10, 10], [10, 40], [40, 10]]
    assert idx.dtype == np.int64 and coords.dtype == np.int64


def test_equal_areas_keep_the_input_order():
    """A stable sort: people of equal area stay in input order (which decides who wins a shared pixel)."""
    rng = np.random.default_rng(4)
    centers = np.stack([np.arange(30) * 2 + 0.5, np.full(30, 5.5)], 1)
    areas = rng.integers(0, 3, size=30).astype(float)
    idx, _ = select_instances(centers, np.ones(30, bool), areas, 64, None, STILL)
    assert idx.tolist() == sorted(range(30), key=lambda i: areas[i])


def test_centers_at_or_past_the_last_pixel_are_not_instances():
    centers = np.array([[63.9, 10.0], [64.0, 10.0], [10.0, 64.5], [20.0, 20.0]])
    idx, coords = select_instances(centers, np.ones(4, bool), np.arange(4.0), 64, None, STILL)
    assert idx.tolist() == [0, 3] and coords.tolist() == [[10, 63], [20, 20]]


def test_jitter_stays_within_one_pixel_and_inside_the_map():
    rng = np.random.default_rng(3)
    centers = np.concatenate([rng.uniform(0, 64, size=(300, 2)), [[0.5, 63.5], [63.2, 0.1]]])
    idx, coords = select_instances(centers, np.ones(len(centers), bool), rng.uniform(1, 9, len(centers)),
                                   64, rng, TargetRules(center_jitter=True))
    base = np.trunc(centers[idx][:, ::-1])
    assert np.abs(coords - base).max() == 1 and (coords >= 0).all() and (coords < 64).all()
    # each axis of each person is drawn on its own from {-1, 0, 1}: all nine offsets occur
    assert {tuple(d) for d in (coords - base).astype(int).tolist()} == {(a, b) for a in (-1, 0, 1)
                                                                         for b in (-1, 0, 1)}
    # a jitter onto the first row / column is kept (only leaving the map reverts it)
    edge = np.full((200, 2), 1.5)
    idx, coords = select_instances(edge, np.ones(200, bool), np.arange(200.0), 64, np.random.default_rng(8))
    assert {0, 1, 2} == set(coords[:, 0].tolist()) | set(coords[:, 1].tolist())
    # with jitter on by default, from the generator given, or from a fresh one when none is given
    grid = np.stack(np.meshgrid(np.arange(4) * 6 + 10.5, np.arange(4) * 6 + 20.5), -1).reshape(-1, 2)
    ok, areas = np.ones(16, bool), np.arange(16.0)
    same = [select_instances(grid, ok, areas, 64, np.random.default_rng(9))[1] for _ in range(2)]
    np.testing.assert_array_equal(same[0], same[1])
    assert (same[0] != select_instances(grid, ok, areas, 64, None, STILL)[1]).any()
    assert len(select_instances(grid, ok, areas, 64, None)[0]) == 16
    assert len({tuple(c) for c in coords.tolist()}) == len(coords)  # no duplicates
    assert len(select_instances(centers, np.ones(len(centers), bool), np.ones(len(centers)), 64, rng,
                                TargetRules(max_instances=7))[0]) == 7


def test_box_clipping_correct_vs_release():
    # docs/release_vs_paper.md#box-clipping: a box starting at x = -20 with w = 60 -> release [0, 60], correct [0, 40]
    corners = np.array([[[-20, 5], [40, 5], [-20, 25], [40, 25]]], float)
    correct = boxes_from_corners(corners, 64, "correct")[0]
    release = boxes_from_corners(corners, 64, "release")[0]
    np.testing.assert_allclose(correct, [0, 5, 40, 20])
    np.testing.assert_allclose(release, [0, 5, 60, 20])
    # inside the map both agree; rotated boxes give their axis-aligned extent
    rot = np.array([[[30, 10], [40, 20], [20, 20], [30, 30]]], float)
    np.testing.assert_allclose(boxes_from_corners(rot, 64, "correct"), [[20, 10, 20, 20]])
    np.testing.assert_allclose(boxes_from_corners(rot, 64, "release"), [[20, 10, 20, 20]])
    with pytest.raises(ValueError, match="box_clipping"):
        boxes_from_corners(corners, 64, "sometimes")
    np.testing.assert_array_equal(boxes_from_corners(corners, 64), correct[None])  # "correct" by default


def test_box_clipping_at_the_right_and_bottom_edges():
    """The last pixel is S - 1: a box past the right/bottom edge, one right of the map, one left of it, one
    wider than the map."""
    def box(x0, y0, x1, y1):
        return [[x0, y0], [x1, y0], [x0, y1], [x1, y1]]

    corners = np.array([box(50, 60, 70, 80), box(70, 5, 80, 25), box(-20, 5, -5, 25), box(-10, 5, 100, 25)],
                       float)
    np.testing.assert_allclose(boxes_from_corners(corners, 64, "correct"),
                               [[50, 60, 13, 3], [63, 5, 0, 20], [0, 5, 0, 20], [0, 5, 63, 20]])
    np.testing.assert_allclose(boxes_from_corners(corners, 64, "release"),
                               [[50, 60, 20, 20], [63, 5, 10, 20], [0, 5, 15, 20], [0, 5, 63, 20]])


def test_no_people_gives_empty_well_shaped_targets():
    t = build_targets(np.zeros((0, 17, 3)), np.zeros((0, 4, 2)), np.zeros(0), 32)
    assert t.multi_heatmap.shape == (18, 32, 32) and t.multi_heatmap.max() == 0
    assert t.instance_heatmap.shape == (0, 17, 32, 32) and t.instance_coord.shape == (0, 2)
    assert t.instance_mask.shape == (0, 17) and t.instance_bbox.shape == (0, 4)
    assert t.radius.shape == (0,) and t.radius.dtype == np.int64 and t.instance_bbox.dtype == np.float32


@pytest.mark.parametrize("shape", [(2, 5, 2), (5, 3)])
def test_keypoints_of_the_wrong_shape_are_refused(shape):
    with pytest.raises(ValueError, match=r"keypoints must be \[P, K, 3\]"):
        build_targets(np.zeros(shape), np.zeros((2, 4, 2)), np.zeros(2), 32)


def test_an_unknown_box_clipping_is_refused_by_its_argument_name():
    """Called directly (not through a config), the refusal names the argument and the accepted values."""
    with pytest.raises(ValueError, match=r"^box_clipping must be one of \['paper', 'release'\], got 'clip'$"):
        boxes_from_corners(np.zeros((1, 4, 2)), 16, "clip")
