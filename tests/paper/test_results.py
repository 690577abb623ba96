"""Reading metrics JSON files: folders, tolerance of extra keys, and errors naming file and key."""
from __future__ import annotations

import json

import pytest

from boir_core.paper import ResultsError, load_results, parse_result, render_table


def _good(key="boir_w32_coco_val", **extra):
    out = {"dataset": "coco", "split": "val", "key": key,
           "model": {"arch": "boir", "backbone": "hrnet_w32"}, "config_name": "coco_w32",
           "config": {"model": {"backbone": "hrnet_w32"}}, "checkpoint": {"path": "w32.pth", "sha256": "ab"},
           "metrics": {"AP": 0.706, "AR": 0.763, "AP_M": -1}, "timings": {"network_ms": 50.0, "decode_ms": 7.5,
                                                                         "device": "cpu"},
           "params": {"inference": 31_830_000, "total": 33_430_000}, "demo": False, "date": "2024-01-01",
           "something_new": {"nested": True}}
    out.update(extra)
    return out


def _write(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj) if not isinstance(obj, str) else obj)
    return path


def test_folder_scan_finds_metrics_files_and_skips_predictions(tmp_path):
    _write(tmp_path / "runs" / "a" / "metrics.json", _good())
    _write(tmp_path / "runs" / "b" / "eval_t4_full.json", _good("t4_full"))  # any name with "metrics" inside
    _write(tmp_path / "runs" / "a" / "keypoints_val_results.json", [{"image_id": 1, "score": 0.9}])
    _write(tmp_path / "runs" / "a" / "half_written.json", "{not json")
    res = load_results(tmp_path)
    assert sorted(res) == ["boir_w32_coco_val", "t4_full"]
    r = res["boir_w32_coco_val"]
    assert r.metrics["AP"] == pytest.approx(0.706) and r.percent("AR") == pytest.approx(76.3)
    assert r.metrics["AP_M"] is None  # pycocotools' -1
    assert r.time_ms == pytest.approx(57.5) and r.params_inference == 31_830_000 and r.device == "cpu"
    assert r.arch == "boir" and r.config_name == "coco_w32" and not r.demo
    assert r.source.endswith("metrics.json")
    assert r.raw["something_new"] == {"nested": True}


def test_demo_flag_from_dataset_or_field():
    assert parse_result(_good(dataset="synthcrowd", demo=False)).demo
    assert parse_result(_good(demo=True)).demo
    assert not parse_result(_good()).demo


@pytest.mark.parametrize("change, key", [
    ({"metrics": {"AP": 70.6}}, "metrics.AP"),
    ({"metrics": {"AP": "0.7"}}, "metrics.AP"),
    ({"metrics": [0.7]}, "metrics"),
    ({"key": ""}, "key"),
    ({"key": 7}, "key"),
    ({"dataset": "mpii"}, "dataset"),
    ({"demo": "yes"}, "demo"),
    ({"params": {"inference": "31.8M"}}, "params.inference"),
    ({"params": {"inference": 1.5}}, "params.inference"),
    ({"timings": {"network_ms": -3}}, "timings.network_ms"),
    ({"timings": {"network_ms": 3, "device": 3090}}, "timings.device"),
    ({"model": "boir"}, "model"),
    ({"split": 1}, "split"),
])
def test_malformed_file_names_file_and_key(tmp_path, change, key):
    f = _write(tmp_path / "metrics_bad.json", _good(**change))
    with pytest.raises(ResultsError) as e:
        load_results(tmp_path)
    msg = str(e.value)
    assert str(f) in msg and f"'{key}'" in msg, msg


def test_null_key_fills_no_row(tmp_path):
    _write(tmp_path / "a" / "metrics.json", _good(key=None))
    _write(tmp_path / "b" / "metrics.json", _good())
    assert list(load_results(tmp_path)) == ["boir_w32_coco_val"]
    assert parse_result(_good(key=None)).key is None


@pytest.mark.parametrize("missing", ["dataset", "metrics"])
def test_missing_required_key(tmp_path, missing):
    obj = _good()
    del obj[missing]
    f = _write(tmp_path / "metrics.json", obj)
    with pytest.raises(ResultsError, match=f"'{missing}': missing") as e:
        load_results(f)
    assert str(f) in str(e.value)


def test_unreadable_metrics_file_and_missing_path(tmp_path):
    f = _write(tmp_path / "metrics.json", "{broken")
    with pytest.raises(ResultsError, match="not a readable JSON") as e:
        load_results(tmp_path)
    assert str(f) in str(e.value)
    with pytest.raises(ResultsError, match="no such metrics file"):
        load_results(tmp_path / "nope")
    _write(tmp_path / "metrics.json", [1, 2])
    with pytest.raises(ResultsError, match="JSON object"):
        load_results(tmp_path)


def test_duplicate_keys_name_both_sources(tmp_path):
    a = _write(tmp_path / "x" / "metrics.json", _good())
    b = _write(tmp_path / "y" / "metrics.json", _good())
    with pytest.raises(ResultsError) as e:
        load_results(tmp_path)
    assert str(a) in str(e.value) and str(b) in str(e.value)


def test_dict_inputs_are_named_by_position():
    with pytest.raises(ResultsError, match=r"<dict #1>: key 'metrics.AR'"):
        load_results([_good(), _good("t4_full", metrics={"AR": 2})])
    res = load_results(_good())
    assert list(res) == ["boir_w32_coco_val"]


def test_render_reads_a_folder(tmp_path):
    _write(tmp_path / "metrics.json", _good())
    text = render_table(6, tmp_path)
    assert "70.6 / 70.6 (±0.0)" in text and "metrics.json" in text


def test_reads_what_the_engine_writes(tmp_path):
    """The engine's writer and this reader agree on the schema (a demo run on SynthCrowd included)."""
    import boir_core.engine.evaluation.evaluate as evaluate
    evaluate.write_metrics_json(tmp_path / "coco" / "metrics.json", dataset="coco", split="val",
                                metrics={"AP": 0.7011, "AR": 0.7649, "AP_M": -1.0},
                                provenance=evaluate.MetricsProvenance(key="boir_w32_coco_val"),
                                measured=evaluate.Measurements(
                                    timings={"network_ms": 30.0, "decode_ms": 4.25, "device": "cpu"},
                                    params={"inference": 31_830_000, "total": 33_430_000}))
    evaluate.write_metrics_json(tmp_path / "demo" / "metrics.json", dataset="synthcrowd", split="val",
                                metrics={"AP": 0.25}, provenance=evaluate.MetricsProvenance(key="t4_full", demo=True))
    res = load_results(tmp_path)
    assert sorted(res) == ["boir_w32_coco_val", "t4_full"]
    r = res["boir_w32_coco_val"]
    assert r.metrics == {"AP": 0.7011, "AR": 0.7649, "AP_M": None}
    assert r.time_ms == pytest.approx(34.25) and r.params_inference == 31_830_000 and not r.demo
    assert res["t4_full"].demo
    assert "70.6 / 70.1 (−0.5)" in render_table(6, res)
    assert "70.6 / 25.0 (−45.6) [demo]" in render_table("4L", res)
