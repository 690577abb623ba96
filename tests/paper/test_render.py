"""Paper-vs-ours rendering: cells, missing rows, demo labels, Table 5 and Table 3.

Expected cell texts are computed here with integer arithmetic on tenths, not with the module's helpers.
"""
from __future__ import annotations

import json

import pytest

from boir_core.paper import (
    ResultsError,
    display_table,
    format_diff,
    get_table,
    render_all,
    render_paper_table,
    render_table,
    table_cells,
)

METRICS = ("AP", "AP50", "AP75", "AP_M", "AP_L", "AR")


def _result(key="boir_w32_coco_val", dataset="coco", split="val", metrics=None, **extra):
    out = {"key": key, "dataset": dataset, "split": split, "metrics": metrics or {},
           "model": {"arch": "boir", "backbone": "hrnet_w32"}, "config_name": "coco_w32", "demo": False,
           "date": "2024-01-01", "unused_extra_key": [1, 2, 3]}
    out.update(extra)
    return out


def _md_rows(text: str) -> list[list[str]]:
    rows = []
    for line in text.splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            rows.append([c.strip() for c in line.strip()[1:-1].split(" | ")])
    return rows


def _row_with(text: str, needle: str) -> list[str]:
    found = [r for r in _md_rows(text) if needle in r[-1]]
    assert len(found) == 1, (needle, found)
    return found[0]


def _expected_cell(paper: float, bp: int) -> str:
    """Paper value and our fraction in basis points (not ending in 5) -> 'paper / ours (diff)'."""
    assert bp % 10 != 5
    ours_t = (bp + 5) // 10  # tenths of a percent, rounded half up (no ties by construction)
    paper_t = round(paper * 10)
    d = ours_t - paper_t
    sign = "+" if d > 0 else "−" if d < 0 else "±"
    return f"{paper_t // 10}.{paper_t % 10} / {ours_t // 10}.{ours_t % 10} ({sign}{abs(d) // 10}.{abs(d) % 10})"


def test_cells_show_paper_ours_and_difference():
    bps = dict(zip(METRICS, (6994, 8927, 7741, 6506, 7831, 7713)))
    text = render_table(6, [_result(metrics={m: bp / 10000 for m, bp in bps.items()})])
    row = _row_with(text, "`boir_w32_coco_val`")
    assert row[:3] == ["BoIR", "HRNet-W32", "512"]
    paper = get_table(6).row("boir_w32_coco_val").values
    for metric, cell in zip(METRICS, row[3:9]):
        assert cell == _expected_cell(paper[metric], bps[metric]), metric
    assert row[3] == "70.6 / 69.9 (−0.7)"  # the documented example
    assert row[5] == "77.4 / 77.4 (±0.0)"
    assert "DEMO" not in text and "[demo]" not in text
    # other rows keep the paper's number alone
    hrnet = [r for r in _md_rows(text) if r[0] == "HRNet [62]"][0]
    assert hrnet[3:9] == ["75.8", "90.6", "82.5", "72.0", "82.7", "80.9"]


def test_cell_objects_match_text():
    cells = table_cells(6, [_result(metrics={"AP": 0.7123, "AR": 0.7501})])
    ap = [c for c in cells if c.key == "boir_w32_coco_val" and c.column.name == "AP"][0]
    assert ap.paper == 70.6 and abs(ap.ours - 71.23) < 1e-9 and ap.diff == pytest.approx(0.6)  # 71.2 - 70.6
    ar = [c for c in cells if c.key == "boir_w32_coco_val" and c.column.name == "AR"][0]
    assert ar.diff == pytest.approx(-1.3)  # 75.01 prints as 75.0; 75.0 - 76.3
    assert all(c.ours is None for c in cells if c.key != "boir_w32_coco_val")


def test_missing_metric_and_pycocotools_minus_one_say_na():
    text = render_table(6, [_result(metrics={"AP": 0.7, "AP_M": -1})])
    row = _row_with(text, "`boir_w32_coco_val`")
    assert row[3] == "70.6 / 70.0 (−0.6)"
    assert row[6] == "65.1 / n/a" and row[4] == "89.2 / n/a"


def test_rows_without_result_show_their_command():
    text = render_table(6)
    cid = _row_with(text, "cid_coco_w32.yaml")
    assert cid[0] == "CID [54]" and cid[3] == "69.8" and "/" not in "".join(cid[3:9])
    assert "python -m boir_core evaluate --config configs/cid_coco_w32.yaml" in cid[-1]
    assert "no result" in cid[-1]
    others = [r for r in _md_rows(text) if r[0].startswith(("SBL", "DEKR", "PETR", "ED-Pose"))]
    assert len(others) == 5 and all(r[-1] == "paper only" for r in others)
    # ablation rows: their config and the table's make target
    t4 = render_paper_table(4)
    full = _row_with(t4, "t4_full.yaml")
    assert full[:3] == ["✓", "✓", "70.6"]
    assert "configs/ablations/t4_full.yaml" in full[-1] and "make reproduce TABLE=4" in full[-1]
    assert "Table 4 (left)" in t4 and "Table 4 (right)" in t4
    for key in ("t4_contrastive_cosine", "t4_contrastive_l2", "t4_ae_l2", "t4_no_bmask_no_bbox"):
        assert f"configs/ablations/{key}.yaml" in t4


@pytest.mark.parametrize("demo_kwargs", [{"dataset": "synthcrowd"}, {"dataset": "coco", "demo": True}])
def test_demo_results_are_labelled(demo_kwargs):
    text = render_table(6, [_result(metrics={"AP": 0.3012}, **demo_kwargs)])
    banner = [line for line in text.splitlines() if "DEMO MODE" in line]
    assert len(banner) == 1 and banner[0].startswith(">")
    row = _row_with(text, "`boir_w32_coco_val`")
    assert row[3] == "70.6 / 30.1 (−40.5) [demo]"
    assert "[demo]" in row[-1]
    # every cell of the demo run is tagged, cells of other rows are not
    assert all(c.endswith("[demo]") for c in row[3:9] if "/" in c)
    assert "[demo]" not in "".join(_row_with(text, "cid_coco_w32.yaml"))


def test_wrong_dataset_is_an_error_not_a_silent_match(tmp_path):
    f = tmp_path / "metrics_crowd.json"
    f.write_text(json.dumps(_result(dataset="crowdpose", split="test", metrics={"AP": 0.7})))
    with pytest.raises(ResultsError) as e:
        render_table(6, tmp_path)
    assert str(f) in str(e.value) and "'dataset'" in str(e.value) and "boir_w32_coco_val" in str(e.value)
    f.write_text(json.dumps(_result(split="test", metrics={"AP": 0.7})))
    with pytest.raises(ResultsError, match="'split'"):
        render_table(6, tmp_path)


def test_table5_params_time_and_device():
    res = [_result(metrics={"AP": 0.7031}, params={"inference": 31_830_000, "total": 33_430_000},
                   timings={"network_ms": 40.3, "decode_ms": 12.4, "device": "NVIDIA H100 80GB HBM3"}),
           _result(key="boir_w48_coco_val", metrics={"AP": 0.7249}, params={"inference": 68_870_000})]
    text = render_table(5, res)
    header = [r for r in _md_rows(text) if r[0] == "Method"][0]
    assert header[2:6] == ["# params. (M)", "Time (ms)", "AP", "Device (paper / ours)"]
    w32 = _row_with(text, "`boir_w32_coco_val`")
    assert w32[2] == "31.8 / 31.8 (±0.0)"
    assert w32[3] == "110.6 / 52.7 (−57.9)"  # 40.3 + 12.4 ms against the paper's 110.6
    assert w32[4] == _expected_cell(70.6, 7031)
    assert w32[5] == "RTX 3090, batch 1 / NVIDIA H100 80GB HBM3"
    w48 = _row_with(text, "`boir_w48_coco_val`")
    assert w48[2] == "68.9 / 68.9 (±0.0)" and w48[3] == "167.3 / n/a"
    assert "device not recorded" not in w48[5]  # no time, so no device claim
    assert "RTX 3090" in text


def test_table3_fills_each_column_from_its_own_run():
    res = [_result(key="boir_w32_ochuman_test", dataset="ochuman", split="test",
                   metrics={"AP": 0.4712, "AR": 0.8026})]
    text = render_table(3, res)
    header = [r for r in _md_rows(text) if r[0] == "Method"][0]
    assert header[2:8] == ["COCO val AP", "COCO val AR", "OCHuman val AP", "OCHuman val AR",
                           "OCHuman test AP", "OCHuman test AR"]
    row = _row_with(text, "`boir_w32_ochuman_test`")
    assert row[2:6] == ["70.6", "76.3", "47.4", "80.1"]
    assert row[6:8] == [_expected_cell(47.0, 4712), _expected_cell(80.3, 8026)]
    assert "configs/ochuman_w32.yaml" in row[-1] and "no `boir_w32_coco_val` yet" in row[-1]
    # docs/release_vs_paper.md#paper-inconsistencies: CID's OCHuman numbers differ between paper and
    # README; the note says so
    assert "45.7" in text and "44.6" in text and "docs/release_vs_paper.md#paper-inconsistencies" in text


def test_format_diff_signs():
    assert format_diff(-0.7) == "−0.7"
    assert format_diff(0.3) == "+0.3"
    assert format_diff(0.0) == "±0.0" and format_diff(-0.04) == "±0.0"


def test_render_all_and_display(capsys):
    text = render_all()
    for head in ("Table 1:", "Table 2:", "Table 3:", "Table 4 (left)", "Table 4 (right)", "Table 5:",
                 "Table 6:", "Table 7 (left)", "Table 7 (right)"):
        assert f"#### {head}" in text
    shown = display_table(7)
    assert shown == render_paper_table(7)
    assert "t7_dim_128" in shown and "t7_beta_0.5" in shown
    capsys.readouterr()


def test_a_row_trained_off_the_papers_effective_batch_is_marked():
    batch = {"effective": 20, "paper": 80, "world_size": 1, "batch_size": 20, "accumulate": 1}
    text = render_table(6, [_result(metrics={"AP": 0.7}, batch=batch),
                            _result(key="cid_w32_coco_val", metrics={"AP": 0.65}, batch={**batch, "effective": 80}),
                            _result(key="boir_w48_coco_val", metrics={"AP": 0.72})])
    rows = {r[0] + " " + r[1]: r for r in _md_rows(text)}
    boir = next(r for k, r in rows.items() if "BoIR" in k and "W32" in k)
    assert all(c.endswith("[batch]") for c in boir[2:-1] if "/" in c)  # every cell with a result
    assert "effective batch 20, not the paper's 80" in boir[-1]
    others = [r for r in rows.values() if r is not boir]
    assert not any("[batch]" in c for r in others for c in r)  # the paper's batch, or none recorded
    with pytest.raises(ResultsError, match="batch.effective"):
        render_table(6, [_result(metrics={"AP": 0.7}, batch={"effective": "twenty"})])


def test_each_row_names_the_preset_of_its_weights():
    text = render_table(6, [_result(metrics={"AP": 0.7}, preset="release (released weights)"),
                            _result(key="cid_w32_coco_val", metrics={"AP": 0.65})])
    assert "ours: `boir_w32_coco_val` (<dict #0>; preset release (released weights))" in text
    assert "ours: `cid_w32_coco_val` (<dict #1>; preset not recorded)" in text
    with pytest.raises(ResultsError, match="'preset'"):
        render_table(6, [_result(metrics={"AP": 0.7}, preset=3)])
