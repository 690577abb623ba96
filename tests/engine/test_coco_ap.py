"""boir_core.engine.evaluation.coco_ap (the plain re-derivation of the COCO keypoint metrics) against pycocotools."""
import json
import os
from pathlib import Path

import numpy as np
import pytest

from boir_core.data import get_profile
from boir_core.engine.evaluation.coco_ap import crowd_index, keypoint_ap, oks_matrix
from boir_core.engine.evaluation.evaluate import evaluate_results


def _scene(seed=0, n_images=12):
    rng = np.random.default_rng(seed)
    images, anns, results = [], [], []
    for im in range(1, n_images + 1):
        images.append({"id": im, "file_name": f"{im}.jpg", "width": 320, "height": 320})
        for _ in range(int(rng.integers(1, 5))):
            k = np.zeros((17, 3))
            c = rng.uniform(60, 260, 2)
            k[:, :2] = c + rng.normal(0, 30, (17, 2))
            k[:, 2] = np.where(rng.random(17) < 0.8, 2, 0)
            k[0, 2] = 2
            x0, y0 = k[k[:, 2] > 0, :2].min(0)
            x1, y1 = k[k[:, 2] > 0, :2].max(0)
            aid = len(anns) + 1
            anns.append({"id": aid, "image_id": im, "category_id": 1, "iscrowd": 0, "keypoints": k.ravel().tolist(),
                         "num_keypoints": int((k[:, 2] > 0).sum()), "bbox": [x0, y0, x1 - x0, y1 - y0],
                         "area": float((x1 - x0) * (y1 - y0))})
            if rng.random() < 0.85:
                d = k.copy()
                d[:, :2] += rng.normal(0, rng.uniform(0.5, 10), (17, 2))
                d[:, 2] = 1
                results.append({"image_id": im, "category_id": 1, "keypoints": d.ravel().tolist(),
                                "score": float(rng.random())})
        if rng.random() < 0.5:  # a false pose
            d = np.column_stack([rng.uniform(0, 320, 17), rng.uniform(0, 320, 17), np.ones(17)])
            results.append({"image_id": im, "category_id": 1, "keypoints": d.ravel().tolist(),
                            "score": float(rng.random())})
    gt = {"images": images, "annotations": anns,
          "categories": [{"id": 1, "name": "person", "keypoints": list(get_profile("coco").keypoints),
                          "skeleton": []}]}
    return gt, results


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_keypoint_ap_equals_pycocotools(seed):
    gt, results = _scene(seed)
    ours = keypoint_ap(results, gt, get_profile("coco").sigmas)
    ref = evaluate_results(results, gt, "coco")
    assert 0.05 < ref["AP"] < 0.95  # a non-trivial case
    for k in ("AP", "AP50", "AP75", "AR"):
        assert ours[k] == pytest.approx(ref[k], abs=1e-12), k


def test_oks_matrix_closed_form():
    g = {"keypoints": [10, 10, 2, 20, 20, 0], "area": 100.0}
    d = [12, 10, 1, 99, 99, 1]
    sig = [0.05, 0.05]
    assert oks_matrix([d], [g], sig)[0, 0] == pytest.approx(np.exp(-4 / (2 * 100 * 0.1 ** 2)))


def test_crowd_index_matches_the_crowdpose_files():
    from boir_skips import skip_or_fail_in_ci

    root = Path(os.environ.get("BOIR_REAL_FIXTURES", Path(__file__).resolve().parents[2] / "../shared/fixtures/real"))
    f = root / "crowdpose" / "test_crowdpose.json"
    if not f.is_file():
        skip_or_fail_in_ci(f"real fixtures absent: {f}")
    d = json.loads(f.read_text())
    for im in d["images"]:
        people = [a for a in d["annotations"] if a["image_id"] == im["id"]]
        assert crowd_index(people) == pytest.approx(im["crowdIndex"], abs=0.005 + 1e-9)  # the files round to 0.01
