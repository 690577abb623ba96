"""boir_core.viz.training (training logs as series and figures) and boir_core.viz.scenes (the pictures the
notebooks show a trained model), on files the tests write themselves."""
from __future__ import annotations

import json

import numpy as np
import pytest

from boir_core.model.demo_weights import MANIFEST_NAME
from boir_core.viz import scenes
from boir_core.viz import training as tr

ITER = [{"type": "iter", "epoch": 0, "iter": 50, "lr": 0.001, "grad_norm": 2.0, "scale": 1.0, "total": 2.0,
         "multi_heatmap": 1.5},
        {"type": "iter", "epoch": 0, "iter": 100, "lr": 0.002, "grad_norm": 1.0, "scale": 1.0, "total": 1.0,
         "multi_heatmap": 1.0, "bbox": 0.5},
        {"type": "epoch", "epoch": 0, "iter": 100, "seconds": 9.0, "images_per_s": 3.0, "total": 1.4}]


def _write_log(path, records, extra_lines=()):
    path.write_text("\n".join([json.dumps(r) for r in records] + list(extra_lines)) + "\n")
    return path


def test_read_metrics_and_series(tmp_path):
    log = _write_log(tmp_path / "metrics.jsonl", ITER, extra_lines=[""])
    records = tr.read_metrics(log)
    assert len(records) == 3
    s = tr.metric_series(records)
    assert sorted(s) == ["bbox", "multi_heatmap", "total"]  # loss terms only: no lr, grad_norm, scale
    np.testing.assert_array_equal(s["total"][0], [50, 100])
    np.testing.assert_array_equal(s["total"][1], [2.0, 1.0])
    np.testing.assert_array_equal(s["bbox"][0], [100])  # a term logged once has one point
    e = tr.metric_series(records, "epoch")
    assert list(e) == ["total"] and e["total"][1].tolist() == [1.4]
    assert tr.metric_series(records, keys=["lr"])["lr"][1].tolist() == [0.001, 0.002]
    with pytest.raises(ValueError, match="kind"):
        tr.metric_series(records, "step")


def test_a_bad_log_line_is_named(tmp_path):
    log = _write_log(tmp_path / "metrics.jsonl", ITER[:1], extra_lines=['{"type": "iter", '])
    with pytest.raises(ValueError, match=r"metrics.jsonl, line 2: not valid JSON"):
        tr.read_metrics(log)
    _write_log(log, ITER[:1], extra_lines=["[1, 2]"])
    with pytest.raises(ValueError, match="line 2: a record must be a JSON object"):
        tr.read_metrics(log)


def _weights_dir(tmp_path, with_log=True):
    d = tmp_path / "weights"
    (d / "logs").mkdir(parents=True)
    if with_log:
        _write_log(d / "logs" / "demo_boir.metrics.jsonl", ITER)
    (d / "demo_boir.pt").write_bytes(b"not read here")
    entry = {"file": "demo_boir.pt", "sha256": "0" * 64,
             "training": {"steps": 100, "batch_size": 8, "log": "logs/demo_boir.metrics.jsonl" if with_log else None},
             "metrics": {"all": {"AP": 0.3}},
             "learning_curve": [{"steps": 50, "AP": 0.1}, {"steps": 75, "AP": None}]}
    (d / MANIFEST_NAME).write_text(json.dumps({"format": "boir-kit-demo-weights", "version": 1,
                                               "weights": {"boir": entry}}))
    return d


def test_shipped_training_log_reads_the_log_and_the_manifests_ap_points(tmp_path):
    d = _weights_dir(tmp_path)
    log = tr.shipped_training_log("boir", weights_dir=d)
    assert log.name == "BoIR" and log.steps == 100
    assert log.ap == [(50.0, 0.1, "mid-run checkpoint"), (100.0, 0.3, "shipped weights")]  # no AP: no point
    assert log.series["total"][1].tolist() == [2.0, 1.0] and log.epochs["total"][1].tolist() == [1.4]
    fig = tr.training_curves_figure([log, tr.TrainingLog.from_file(d / "logs" / "demo_boir.metrics.jsonl", "again")])
    titles = [ax.get_title() for ax in fig.axes]
    assert {"total", "multi_heatmap", "bbox", "AP (SynthCrowd val)"} <= set(titles)
    with pytest.raises(FileNotFoundError, match="names no training log"):
        tr.shipped_training_log("boir", weights_dir=_weights_dir(tmp_path / "other", with_log=False))


def test_shipped_description_names_only_the_shipped_files(tmp_path):
    d = _weights_dir(tmp_path)
    text = tr.shipped_description(d / "demo_boir.pt", weights_dir=d)
    assert text == "shipped demo BOIR weights: 100 steps of 8 images, AP 0.300 on SynthCrowd val"
    assert tr.shipped_description(tmp_path / "final.pt", weights_dir=d) is None
    assert tr.shipped_description(None, weights_dir=d) is None
    assert tr.shipped_description(d / "demo_boir.pt", weights_dir=tmp_path / "none") is None


def test_the_kits_own_shipped_logs_load():
    for arch in ("boir", "cid"):
        log = tr.shipped_training_log(arch)
        assert log.steps and "total" in log.series and log.ap and log.ap[-1][2] == "shipped weights"


def test_scenes_small_set_pictures_and_centers(tmp_path, monkeypatch):
    from boir_core.data.sources.synthetic import SynthCrowdSpec, make_synthcrowd

    full = tmp_path / "full"
    make_synthcrowd(full, SynthCrowdSpec(num_train=1, num_val=3, image_size=(96, 128), max_people=3))
    monkeypatch.setattr(scenes, "FULL_SET", str(full))  # an absolute path: read as it is
    assert scenes.synthcrowd_root(tmp_path / "work", 3) == full  # a generated full set is used, not copied
    assert not (tmp_path / "work").exists()
    pics = scenes.val_pictures(full, 2)
    ann = json.loads((full / "annotations" / "person_keypoints_val.json").read_text())
    assert [p.name for p in pics] == [im["file_name"] for im in ann["images"][:2]]
    first = [a for a in ann["annotations"] if a["image_id"] == ann["images"][0]["id"] and a["num_keypoints"] > 0]
    assert pics[0].boxes == [list(map(float, a["bbox"])) for a in first]
    assert pics[0].image.ndim == 3 and pics[0].image.dtype == np.uint8
    k = np.asarray(first[0]["keypoints"], float).reshape(-1, 3)
    assert scenes.keypoint_center(first[0]) == pytest.approx(tuple(k[k[:, 2] > 0, :2].mean(0)))
    assert scenes.keypoint_center({"keypoints": [1, 2, 0]}) is None
    with pytest.raises(FileNotFoundError, match="person_keypoints_train.json"):
        scenes.val_pictures(tmp_path / "work", 1, split="train")


def test_scenes_generate_a_small_set_when_the_full_one_is_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(scenes, "FULL_SET", str(tmp_path / "no_full_set"))
    root = scenes.synthcrowd_root(tmp_path / "work", 1)
    assert root == tmp_path / "work" / "synthcrowd" and not (tmp_path / "no_full_set").exists()
    assert [p.name for p in scenes.val_pictures(root, 5)] == ["000001.jpg"]  # one val image asked for


def _study_row(setting, minutes, ap, loss, steps):
    return {"setting": setting, "cpu_minutes": minutes, "AP": ap, "held_out_loss": loss, "steps": steps}


def test_a_study_is_read_back_row_by_row_and_a_bad_line_is_named(tmp_path):
    from boir_core.studies import load_study

    rows = [_study_row("base", 15.0, 0.02, 0.031, 950), _study_row("px96", 15.0, 0.05, 0.028, 1700)]
    (tmp_path / "s.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    assert load_study("s", tmp_path) == rows
    (tmp_path / "bad.jsonl").write_text(json.dumps(rows[0]) + "\n{not json\n")
    with pytest.raises(ValueError, match=r"bad\.jsonl, line 2: not valid JSON"):
        load_study("bad", tmp_path)
    (tmp_path / "list.jsonl").write_text("[1, 2]\n")
    with pytest.raises(ValueError, match=r"list\.jsonl, line 1: a study row must be a JSON object, got list"):
        load_study("list", tmp_path)
    with pytest.raises(FileNotFoundError, match="no study 'missing'"):
        load_study("missing", tmp_path)


def test_recipe_study_figure_draws_each_setting_against_cpu_minutes():
    import matplotlib.pyplot as plt

    rows = [_study_row("base", 15.0, 0.02, 0.031, 950), _study_row("base", 30.0, 0.10, 0.025, 1900),
            _study_row("px96", 15.0, 0.05, 0.028, 1700)]
    fig = tr.recipe_study_figure(rows)
    ap_ax, loss_ax = fig.axes
    lines = {ln.get_label(): ln for ln in ap_ax.get_lines()}
    assert set(lines) == {"base", "px96"}
    np.testing.assert_allclose(lines["base"].get_xdata(), [15.0, 30.0])
    np.testing.assert_allclose(lines["base"].get_ydata(), [0.02, 0.10])
    loss_lines = {ln.get_label(): ln for ln in loss_ax.get_lines()}
    np.testing.assert_allclose(loss_lines["px96"].get_ydata(), [0.028])
    assert sorted(t.get_text() for t in ap_ax.texts) == ["1700", "1900", "950"]
    plt.close(fig)


def test_recipe_study_rows_from_another_cpu_are_hollow_and_not_joined():
    """CPU-minutes compare only on one CPU: a row from a CPU other than most rows' is its own hollow series."""
    import matplotlib.pyplot as plt

    rows = [{**_study_row("px96", 15.0, 0.06, 0.76, 1559), "cpu": "EPYC"},
            {**_study_row("base", 15.0, 0.02, 0.99, 800), "cpu": "EPYC"},
            {**_study_row("px96", 36.0, 0.30, 0.46, 6000), "cpu": "Xeon"}]
    fig = tr.recipe_study_figure(rows)
    lines = {ln.get_label(): ln for ln in fig.axes[0].get_lines()}
    assert set(lines) == {"px96", "base", "px96 (another CPU)"}
    np.testing.assert_allclose(lines["px96"].get_xdata(), [15.0])  # not joined to the Xeon's point
    np.testing.assert_allclose(lines["px96 (another CPU)"].get_ydata(), [0.30])
    assert lines["px96 (another CPU)"].get_markerfacecolor() == "none" and lines["px96"].get_linestyle() == "-"
    plt.close(fig)


def test_the_committed_recipe_study_replays_and_names_its_cpu():
    """Every committed row says what ran (the command with the exact step count), where (the CPU line) and
    what it measured; the command's overrides are the setting's own."""
    from boir_core.studies import STUDIES_DIR, load_study

    assert (STUDIES_DIR / "recipe_study.jsonl").is_file(), "the kit ships its recipe study"
    rows = load_study("recipe_study")
    assert rows
    for r in rows:
        assert f"train.max_steps={r['steps']}" in r["command"] and r["command"].startswith(
            "python -m boir_core train --config demo"), r["command"]
        assert all(o in r["command"] for o in r["overrides"])
        assert "GFLOP/s" in r["cpu"] and r["threads"] >= 1
        assert 0.0 <= r["AP"] <= 1.0 and r["held_out_loss"] > 0 and r["steps"] > 0
        assert r["cpu_minutes"] == pytest.approx(r["train_seconds"] * r["threads"] / 60, abs=0.01)


def test_a_studys_main_cpu_is_the_one_most_rows_ran_on_and_a_tie_goes_to_the_first():
    assert tr.study_main_cpu([{"cpu": "A"}, {"cpu": "B"}, {"cpu": "B"}]) == "B"
    assert tr.study_main_cpu([{"cpu": "B"}, {"cpu": "A"}, {"cpu": "A"}, {"cpu": "B"}]) == "B"
    assert tr.study_main_cpu([]) is None
