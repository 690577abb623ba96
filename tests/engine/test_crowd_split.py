"""AP on crowded vs sparse images: each half is scored against its own ground truth only."""
from __future__ import annotations

import json

import pytest
from test_evaluate import gt_as_results, perturbed, tiny_gt

from boir_core.engine.evaluation.crowd_split import crowd_split_metrics, split_by_crowd_index
from boir_core.engine.evaluation.evaluate import evaluate_results


def test_split_uses_crowd_index_with_the_threshold_inclusive():
    gt = tiny_gt(crowd_index=(0.1, 0.5, 0.9, 0.49))
    assert split_by_crowd_index(gt) == ([101, 102], [100, 103])
    assert split_by_crowd_index(gt, threshold=0.95) == ([], [100, 101, 102, 103])
    del gt["images"][2]["crowdIndex"]
    with pytest.raises(ValueError, match="image id 102"):
        split_by_crowd_index(gt, source="gt.json")


def test_perfect_on_crowded_and_absent_on_sparse_gives_1_and_0(tmp_path):
    gt = tiny_gt(crowd_index=(0.1, 0.6, 0.9, 0.2))
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(gt))
    crowded_only = [r for r in gt_as_results(gt) if r["image_id"] in (101, 102)]
    m = crowd_split_metrics(crowded_only, path, dataset="coco")
    assert m["crowded"]["AP"] == pytest.approx(1.0) and m["crowded"]["images"] == 2
    assert m["sparse"]["AP"] == 0.0 and m["sparse"]["images"] == 2
    assert m["crowded"]["crowd_index"] == pytest.approx(0.75) and m["sparse"]["crowd_index"] == pytest.approx(0.15)


def test_each_half_equals_evaluating_that_half_alone(tmp_path):
    # an independent route: cut the ground truth and the results by hand and evaluate each file directly
    gt = tiny_gt(crowd_index=(0.1, 0.6, 0.9, 0.2, 0.7), people=4)
    res = perturbed(gt, seed=1, k=17)
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(gt))
    (tmp_path / "res.json").write_text(json.dumps(res))
    m = crowd_split_metrics(tmp_path / "res.json", path, dataset="coco")
    for name, ids in (("crowded", {101, 102, 104}), ("sparse", {100, 103})):
        part = {**gt, "images": [i for i in gt["images"] if i["id"] in ids],
                "annotations": [a for a in gt["annotations"] if a["image_id"] in ids]}
        (tmp_path / f"{name}.json").write_text(json.dumps(part))
        alone = evaluate_results([r for r in res if r["image_id"] in ids], tmp_path / f"{name}.json", "coco")
        assert {k: m[name][k] for k in alone} == pytest.approx(alone)
    assert 0 < m["crowded"]["AP"] < 1 and 0 < m["sparse"]["AP"] < 1
