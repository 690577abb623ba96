"""boir_core.paper.reproduce and boir_core.paper.plan (row → run planning, weights names, demo detection) and
notebooks 06 / 07.

The slow tests execute both notebooks with papermill in demo mode and read the executed outputs: every
table rendered with its title and paper numbers, the DEMO label, and Table 5's measured 31.8 / 68.9 M.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from boir_core.paper import ABLATION_KEYS, TABLES, render_table
from boir_core.paper import reproduce as rp
from boir_core.paper.values import all_keys

REPO = Path(__file__).resolve().parents[2]


# ---- planning ---------------------------------------------------------------------------------------

def test_every_key_has_a_run_with_an_existing_config():
    assert set(rp.RUNS) == set(all_keys())
    for key, run in rp.RUNS.items():
        assert run.config_path.is_file(), f"{key}: {run.config_path} missing"
        assert run.tables, key
        if key in ABLATION_KEYS:
            assert run.kind == "ablation" and run.weights == key
        else:
            assert run.kind == "evaluate" and run.arch == key.split("_")[0]


def test_runs_match_the_table_datasets():
    from boir_core.config import load_config

    for key, run in rp.RUNS.items():
        cfg = load_config(run.config_path, list(run.overrides))
        assert cfg.data.dataset == run.dataset, key
        assert cfg.model.arch == run.arch, key
        split = "test" if run.split == "test-dev" else run.split
        assert cfg.data.test_split == split, key
        for tid in run.tables:
            t = TABLES[tid]
            if tid != "3":
                assert t.dataset == run.dataset, (key, tid)


def test_ochuman_rows_use_coco_weights_and_val_override():
    r = rp.RUNS["boir_w32_ochuman_val"]
    assert r.weights == "boir_coco_w32" and "data.test_split=val" in r.overrides
    assert rp.RUNS["cid_w32_ochuman_test"].weights == "cid_coco_w32"
    assert rp.RUNS["boir_w48_crowdpose_finetune_test"].weights == "boir_crowdpose_w48_finetune"


def test_plan_per_table():
    assert [r.key for r in rp.plan(1)] == ["cid_w32_coco_testdev", "boir_w32_coco_testdev",
                                          "boir_w48_coco_testdev"]
    assert {r.key for r in rp.plan(5)} == {"cid_w32_coco_val", "boir_w32_coco_val", "boir_w48_coco_val"}
    t3 = {r.key for r in rp.plan(3)}
    assert len(t3) == 9 and "boir_w48_ochuman_test" in t3
    assert [r.key for r in rp.plan(4)] == [r.key for t in ("4L", "4R") for r in TABLES[t].rows]
    everything = rp.plan(0)
    assert len(everything) == len(all_keys()) == len({r.key for r in everything})
    kinds = [r.kind for r in everything]
    assert kinds == sorted(kinds, key=lambda k: k != "evaluate")  # evaluations first


def test_demo_plan_limits_ablations():
    keys = [r.key for r in rp.plan(0, demo=True, demo_ablation_rows=2)]
    assert [k for k in keys if k in ABLATION_KEYS] == ["t4_no_bmask_no_bbox", "t7_beta_0.5"]
    assert [r.key for r in rp.plan(4, demo=True, demo_ablation_rows=2)] == ["t4_no_bmask_no_bbox",
                                                                           "t4_contrastive_cosine"]
    assert len(rp.plan(7, demo=True, demo_ablation_rows="all")) == 11
    assert [r.key for r in rp.plan(7, demo=True, demo_ablation_rows=["t7_dim_8"])] == ["t7_dim_8"]
    assert rp.plan(4, demo=True, demo_ablation_rows=0) == []
    with pytest.raises(ValueError):
        rp.ablation_subset(4, ["boir_w32_coco_val"])


def test_table_numbers():
    assert rp.table_numbers(0) == list(range(1, 8)) and rp.table_numbers("all") == list(range(1, 8))
    assert rp.table_ids(4) == ["4L", "4R"] and rp.table_ids(5) == ["5"]
    for bad in (8, -1):
        with pytest.raises(ValueError):
            rp.table_numbers(bad)


def test_demo_ablation_config_carries_the_row_switches(tmp_path):
    cfg = rp.demo_ablation_config("t4_contrastive_cosine", tmp_path, iters=3)
    assert (cfg.loss.emb_loss, cfg.loss.distance) == ("contrastive", "cosine")
    assert cfg.model.backbone == "hrnet_w18_small" and cfg.data.input_size == 128  # tiny, not W32
    assert cfg.train.max_steps_per_epoch == 3 and cfg.name == "t4_contrastive_cosine"
    cfg = rp.demo_ablation_config("t7_dim_8", tmp_path)
    assert cfg.model.emb_dim == 8 and cfg.model.bbox_head is False
    cfg = rp.demo_ablation_config("t7_beta_0.5", tmp_path)
    assert cfg.loss.beta == 0.5
    assert rp.demo_ablation_config("t4_full", tmp_path).model.emb_dim == 128  # coco_w32's D, not tiny's 8
    assert rp.demo_ablation_config("t7_dim_128", tmp_path).model.emb_dim == 128
    full = rp.demo_ablation_config("t4_no_bmask_no_bbox", tmp_path)
    assert full.loss.bbox_mask is False and full.model.bbox_head is False


# ---- weights names ----------------------------------------------------------------------------------

def test_weight_resolution(tmp_path):
    run = rp.RUNS["boir_w32_coco_val"]
    assert rp.resolve_weights(run, tmp_path) is None
    names = [p.name for p in rp.weight_candidates(run, tmp_path)]
    assert names[:3] == ["boir_coco_w32.pth", "boir_coco_w32.pth.tar", "boir_coco_w32.pt"]
    assert "boir_w32_coco.pth" in names
    (tmp_path / "boir_w32_coco.pth").write_bytes(b"x")
    assert rp.resolve_weights(run, tmp_path) == tmp_path / "boir_w32_coco.pth"
    (tmp_path / "boir_coco_w32.pt").write_bytes(b"x")
    assert rp.resolve_weights(run, tmp_path) == tmp_path / "boir_coco_w32.pt"  # the primary name wins
    # OCHuman rows read the COCO weights
    assert rp.resolve_weights("boir_w32_ochuman_test", tmp_path) == tmp_path / "boir_coco_w32.pt"
    # a run folder counts only with weights inside
    (tmp_path / "t4_full").mkdir()
    assert rp.resolve_weights("t4_full", tmp_path) is None
    (tmp_path / "t4_full" / "final.pt").write_bytes(b"x")
    assert rp.resolve_weights("t4_full", tmp_path) == tmp_path / "t4_full"


# ---- demo detection ---------------------------------------------------------------------------------

def test_detect_demo(tmp_path):
    assert rp.detect_demo("auto", tmp_path) is True
    assert rp.detect_demo(True, tmp_path) is True and rp.detect_demo("false", tmp_path) is False
    with pytest.raises(ValueError):
        rp.detect_demo("maybe", tmp_path)
    (tmp_path / "ochuman" / "annotations").mkdir(parents=True)
    (tmp_path / "ochuman" / "annotations" / "ochuman_val.json").write_text("{}")
    assert rp.detect_demo("auto", tmp_path) is True  # annotations without images are not data
    (tmp_path / "ochuman" / "images").mkdir()
    assert rp.data_present(tmp_path, "ochuman", "val")
    assert not rp.data_present(tmp_path, "ochuman", "test")
    assert rp.detect_demo("auto", tmp_path) is False


def test_real_mode_without_weights_skips_with_reasons(tmp_path):
    root = tmp_path / "data"
    (root / "coco" / "annotations").mkdir(parents=True)
    (root / "coco" / "annotations" / "coco_val.json").write_text("{}")
    (root / "coco" / "images" / "val2017").mkdir(parents=True)
    rep = rp.reproduce(6, rp.ReproduceOptions(data_root=root, checkpoint_dir=tmp_path / "ck",
                                              results_dir=tmp_path / "res", demo="auto", gpus=0), log=lambda m: None)
    assert rep.demo is False
    assert set(rep.status) == {"cid_w32_coco_val", "boir_w32_coco_val", "boir_w48_coco_val"}
    assert all(v.startswith("skipped: no weights") for v in rep.status.values())
    md = rp.render_report(rep)["6"]
    assert "DEMO" not in md and "no result yet; run `python -m boir_core evaluate --config configs/coco_w32" in md


def test_table_results_reads_the_right_files(tmp_path):
    from boir_core.engine.evaluation.evaluate import Measurements, MetricsProvenance, write_metrics_json

    m = {"AP": 0.7, "AP50": 0.9, "AP75": 0.77, "AP_M": 0.65, "AP_L": 0.79, "AR": 0.76}
    row = MetricsProvenance(key="boir_w32_coco_val")
    write_metrics_json(rp.metrics_path(tmp_path, "boir_w32_coco_val"), dataset="coco", split="val", metrics=m,
                       provenance=row)
    write_metrics_json(rp.table5_path(tmp_path, "boir_w32_coco_val"), dataset="coco", split="val", metrics=m,
                       provenance=row, measured=Measurements(params={"inference": 31832030},
                                                             timings={"network_ms": 50.0, "decode_ms": 10.0,
                                                                      "device": "X"}))
    r6 = rp.table_results("6", tmp_path)
    r5 = rp.table_results("5", tmp_path)
    assert set(r6) == set(r5) == {"boir_w32_coco_val"}
    assert r6["boir_w32_coco_val"].params_inference is None and r5["boir_w32_coco_val"].time_ms == 60.0
    assert rp.table_results("6", tmp_path, demo=True) == {}


# ---- the CLI's parameter counts (Table 5) -----------------------------------------------------------

@pytest.mark.parametrize("config,count", [("coco_w32", 31_832_030), ("coco_w48", 68_868_734)])
def test_cli_profile_params_only(config, count):
    out = subprocess.run([sys.executable, "-m", "boir_core", "profile", "--config", config, "--json",
                          "--params-only"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["params"]["inference"] == count
    assert "latency" not in res


# ---- the notebooks, executed ------------------------------------------------------------------------

def _outputs(path: Path) -> str:
    import nbformat

    nb = nbformat.read(path, as_version=4)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, f"{errors[0].get('ename')}: {errors[0].get('evalue')}"
    text = []
    for c in nb.cells:
        for o in c.get("outputs", []):
            text.append(o.get("text", ""))
            data = o.get("data", {})
            text.append(data.get("text/markdown", ""))
            text.append(data.get("text/plain", ""))
    return "\n".join(text)


@pytest.mark.slow
@pytest.mark.runs_notebook_defaults("06_reproduce_tables")
def test_notebook_06_all_tables_demo(tmp_path):
    """Notebook 06 with its defaults (all tables, demo mode where the real data are absent, the default weights),
    only its folders redirected into tmp_path: nbval leaves the notebook to this test (tests/conftest.py)."""
    from boir_core.engine.jobs.demo import execute_notebook

    res = tmp_path / "results"
    out = execute_notebook("06_reproduce_tables", tmp_path / "nb", {
        "results_dir": str(res), "data_root": str(tmp_path / "no_data")})
    text = _outputs(out)
    for t in TABLES.values():
        assert t.title in text, f"Table {t.id} not rendered"
    # a sample of each table's paper numbers, printed as paper / ours (diff) [demo] where we ran it
    for sample in ("69.5 / ", "75.8 / ", "70.6 / ", "47.4 / ", "69.8 / ", "72.5 / ", "SBL [37]", "ED-Pose"):
        assert sample in text, sample
    assert "DEMO MODE" in text and "[demo]" in text
    # Table 5: the measured counts of the real architectures, beside the paper's
    assert "31,832,030" in text and "68,868,734" in text
    assert "31.8 / 31.8 (±0.0) [demo]" in text and "68.9 / 68.9 (±0.0) [demo]" in text
    assert "RTX 3090, batch 1 / CPU" in text
    # every metrics file written is a demo result
    files = list(res.rglob("*.json"))
    metrics = [json.loads(p.read_text()) for p in files if p.name == "metrics.json" or p.parent.name == "table5"]
    assert len(metrics) >= 20 and all(m["demo"] is True for m in metrics)
    # rows not run show their command
    assert "python -m boir_core train --config configs/ablations/t7_dim_64.yaml" in text


@pytest.mark.slow
def test_notebook_07_figures_demo(tmp_path):
    import nbformat

    from boir_core.engine.jobs.demo import execute_notebook

    out = execute_notebook("07_representations", tmp_path / "nb", {
        "boir_checkpoint": "", "work_dir": str(tmp_path / "work"), "data_root": "",
        "search_images": 4, "train_iters": 2, "tsne_points": 64})
    text = _outputs(out)
    assert "CID: cid" in text and "BoIR: boir" in text and "box IoU" in text
    nb = nbformat.read(out, as_version=4)
    pngs = sum("image/png" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))
    assert pngs >= 4  # Figure 1, Figure 3, a comparative panel, a failure case


def test_reproduce_cli_calls_the_library_and_writes_the_tables(tmp_path, monkeypatch, capsys):
    """``python -m boir_core reproduce`` runs no notebook: it calls paper.reproduce.reproduce with the arguments
    and config overrides split apart, then renders and writes ``tables_<n>.md`` itself."""
    from boir_core.__main__ import main

    seen = {}

    def fake_reproduce(table, options):
        seen.update(table=table, options=options)
        return rp.ReproduceReport(int(table), False, Path(options.results_dir), "cpu")

    monkeypatch.setattr(rp, "reproduce", fake_reproduce)
    assert main(["reproduce", "--table", "3", "--results-dir", str(tmp_path / "res"), "data_root=/d",
                 "checkpoint_dir=ck", "train=true", "gpus=0", "demo=false", "demo_ablation_rows=all",
                 "test.max_images=5", "model.pretrained=/w.pth"]) == 0
    assert seen == {"table": 3, "options": rp.ReproduceOptions(
        results_dir=str(tmp_path / "res"), data_root="/d", checkpoint_dir="ck", train=True, gpus=0, demo=False,
        demo_ablation_rows="all", overrides=["test.max_images=5", "model.pretrained=/w.pth"])}
    md = (tmp_path / "res" / "tables_3.md").read_text()
    assert md == "\n\n".join(render_table(t, {}) for t in rp.table_ids(3)) + "\n"
    assert "Table 3" in capsys.readouterr().out
    for bad, says in (("data_rot=x", "unknown argument 'data_rot'"), ("train=maybe", "is not true / false"),
                      ("noequals", "is not key=value")):
        assert main(["reproduce", "--table", "3", bad]) == 2  # one error line, exit status 2
        assert says in capsys.readouterr().err
