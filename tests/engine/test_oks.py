"""Release-style OKS and greedy OKS-NMS against plain-loop oracles."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from boir_core.engine.inference.oks import check_sigmas, keypoint_box_areas, oks_nms, pairwise_oks

SIGMAS = [0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062, 0.062,
          0.107, 0.107, 0.087, 0.087, 0.089, 0.089]


def oks_loop(a, b, sigmas):
    """OKS of two poses, one keypoint at a time (area = mean keypoint-extent box area)."""
    def area(p):
        xs, ys = [q[0] for q in p], [q[1] for q in p]
        return (max(xs) - min(xs)) * (max(ys) - min(ys))
    s_area = (area(a) + area(b)) / 2
    total = 0.0
    for (xa, ya), (xb, yb), s in zip(a, b, sigmas):
        var = (2 * s) ** 2
        total += math.exp(-((xa - xb) ** 2 + (ya - yb) ** 2) / var / (s_area + np.spacing(1)) / 2)
    return total / len(sigmas)


def nms_loop(poses, scores, sigmas, thr):
    """The release's greedy loop: take the best remaining, drop those with OKS > thr, repeat."""
    order = sorted(range(len(poses)), key=lambda i: -scores[i])
    keep = []
    while order:
        i = order.pop(0)
        keep.append(i)
        order = [j for j in order if oks_loop(poses[i], poses[j], sigmas) <= thr]
    return keep


def clustered_poses(seed, n_clusters=4, per_cluster=4, k=17):
    """Poses jittered around a few base poses, so NMS has something to suppress."""
    rng = np.random.default_rng(seed)
    poses = []
    for _ in range(n_clusters):
        base = rng.uniform(0, 200, (k, 2))
        for _ in range(per_cluster):
            poses.append(base + rng.normal(0, rng.choice([0.5, 3.0, 10.0]), (k, 2)))
    scores = rng.random(len(poses))
    return np.array(poses), scores


def test_keypoint_box_areas():
    kp = torch.tensor([[[0.0, 0.0, 0.9], [4.0, 1.0, 0.1], [2.0, 3.0, 0.5]]])
    assert keypoint_box_areas(kp).tolist() == [12.0]


def test_pairwise_oks_matches_loop_oracle():
    poses, _ = clustered_poses(0)
    got = pairwise_oks(torch.tensor(poses), SIGMAS).numpy()
    for i in range(len(poses)):
        for j in range(len(poses)):
            assert got[i, j] == pytest.approx(oks_loop(poses[i], poses[j], SIGMAS), rel=1e-12, abs=1e-15)
    np.testing.assert_allclose(np.diag(got), 1.0)
    off_diag = got[~np.eye(len(poses), dtype=bool)]
    assert (off_diag < 0.5).any() and (off_diag > 0.8).any()  # near and far pairs are both covered


def test_oks_closed_form_single_keypoint_shift():
    # two 2-keypoint poses; only keypoint 0 moves by d: OKS = (exp(-d²/(2·(2σ)²·area)) + 1)/2
    a = torch.tensor([[[0.0, 0.0], [10.0, 20.0]], [[3.0, 0.0], [10.0, 20.0]]])
    sig = [0.05, 0.05]
    area_a, area_b = 10 * 20, 7 * 20
    expected = (math.exp(-9 / (2 * (2 * 0.05) ** 2 * ((area_a + area_b) / 2))) + 1) / 2
    assert pairwise_oks(a, sig)[0, 1].item() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("seed,thr", [(1, 0.8), (2, 0.7), (3, 0.5), (4, 0.95)])
def test_oks_nms_matches_greedy_loop(seed, thr):
    poses, scores = clustered_poses(seed)
    keep = oks_nms(torch.tensor(poses), torch.tensor(scores), SIGMAS, thr).tolist()
    expected = nms_loop(list(poses), list(scores), SIGMAS, thr)
    assert keep == expected
    assert 0 < len(keep) < len(poses)  # something was suppressed and something kept


def test_oks_nms_empty_and_errors():
    assert oks_nms(torch.zeros(0, 17, 3), torch.zeros(0), SIGMAS, 0.8).numel() == 0
    with pytest.raises(ValueError, match="scores"):
        oks_nms(torch.zeros(3, 17, 3), torch.zeros(2), SIGMAS, 0.8)
    with pytest.raises(ValueError, match="3 values for 17"):
        pairwise_oks(torch.zeros(2, 17, 2), [0.05] * 3)
    with pytest.raises(ValueError, match="divided by 10"):
        check_sigmas([0.26] * 17)
