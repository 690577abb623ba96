"""The shipped demo weights: export to fp16 with a manifest, checksum-verified loading, clear errors."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from boir_core.config import load_config
from boir_core.engine.evaluation.runner import load_inference_model
from boir_core.model import build_model, save_checkpoint
from boir_core.model.demo_weights import (
    MANIFEST_NAME,
    MAX_BYTES,
    WEIGHTS_DIR,
    ChecksumError,
    DemoRecord,
    export_demo_weights,
    sha256_of,
    shipped_checkpoint,
    shipped_config,
    shipped_entry,
)


def _run_folder(tmp_path, arch="boir"):
    """A finished run folder as train() leaves it: final.pt (with config and plan) and metrics.jsonl."""
    ov = ["model.arch=cid", "model.bbox_head=false", "loss.bbox_mask=false"] if arch == "cid" else []
    cfg = load_config("tiny", ov)
    torch.manual_seed(0)
    model = build_model(cfg, train=True)
    run = tmp_path / f"run_{arch}"
    plan = {"total_steps": 6, "warmup_steps": 3, "source": "epochs"}
    save_checkpoint(model, run / "final.pt", extra={"config": cfg.to_dict(), "plan": plan})
    log = [{"type": "iter", "epoch": 0, "iter": 3, "total": 2.0},
           {"type": "epoch", "epoch": 0, "iter": 3, "seconds": 1.5, "total": 2.5},
           {"type": "epoch", "epoch": 1, "iter": 6, "seconds": 1.0, "total": 1.75}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log))
    return cfg, model, run


def test_export_writes_fp16_weights_a_manifest_and_the_log_and_they_load(tmp_path):
    cfg, model, run = _run_folder(tmp_path)
    out = tmp_path / "weights"
    entry = export_demo_weights(run, "boir", DemoRecord("python -m boir_core train --config tiny",
                                                           metrics={"val": {"AP": 0.5}}), weights_dir=out)
    path = shipped_checkpoint("boir", weights_dir=out)
    assert path == out / "demo_boir.pt" and entry["sha256"] == sha256_of(path)
    assert entry["bytes"] == path.stat().st_size <= MAX_BYTES
    sd = torch.load(path, weights_only=True)["state_dict"]
    floats = [v for v in sd.values() if v.is_floating_point()]
    assert floats and all(v.dtype == torch.float16 for v in floats)
    assert entry["training"]["steps"] == 6 and entry["training"]["seconds"] == 2.5
    assert entry["training"]["final_loss"] == 1.75
    assert (out / entry["training"]["log"]).read_text() == (run / "metrics.jsonl").read_text()
    assert shipped_entry("boir", weights_dir=out)["command"].startswith("python -m boir_core train")
    # the recorded config rebuilds the model, and the fp16 weights load strictly into it (as fp32, rounded)
    assert shipped_config("boir", weights_dir=out).to_dict() == cfg.to_dict()
    assert shipped_config("boir", ["test.max_proposals=5"], weights_dir=out).test.max_proposals == 5
    loaded, _ = load_inference_model(shipped_config("boir", weights_dir=out), path)
    ref = model.state_dict()
    for k, v in loaded.state_dict().items():
        assert v.dtype == ref[k].dtype
        if v.is_floating_point():
            assert torch.allclose(v, ref[k].half().float(), atol=0, rtol=0), k
    # a second architecture joins the same manifest
    export_demo_weights(_run_folder(tmp_path, "cid")[2], "cid", DemoRecord("c"), weights_dir=out)
    assert set(json.loads((out / MANIFEST_NAME).read_text())["weights"]) == {"boir", "cid"}
    assert shipped_checkpoint("cid", weights_dir=out).name == "demo_cid.pt"


def test_a_corrupted_file_is_a_clear_error_naming_it_and_both_checksums(tmp_path):
    _, _, run = _run_folder(tmp_path)
    out = tmp_path / "weights"
    entry = export_demo_weights(run, "boir", DemoRecord("c"), weights_dir=out)
    bad = tmp_path / "bad"
    shutil.copytree(out, bad)
    data = bytearray((bad / "demo_boir.pt").read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte
    (bad / "demo_boir.pt").write_bytes(bytes(data))
    with pytest.raises(ChecksumError) as e:
        shipped_checkpoint("boir", weights_dir=bad)
    msg = str(e.value)
    assert str(bad / "demo_boir.pt") in msg and entry["sha256"] in msg and sha256_of(bad / "demo_boir.pt") in msg
    assert shipped_checkpoint("boir", weights_dir=out)  # the intact copy still verifies


def test_missing_weights_and_bad_arguments_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=MANIFEST_NAME):
        shipped_checkpoint("boir", weights_dir=tmp_path)
    _, _, run = _run_folder(tmp_path)
    out = tmp_path / "weights"
    export_demo_weights(run, "boir", DemoRecord("c"), weights_dir=out)
    with pytest.raises(FileNotFoundError, match="no 'cid' weights"):
        shipped_checkpoint("cid", weights_dir=out)
    with pytest.raises(ValueError, match="arch must be one of"):
        shipped_checkpoint("hrnet", weights_dir=out)
    (out / "demo_boir.pt").unlink()
    with pytest.raises(FileNotFoundError, match="demo_boir.pt"):
        shipped_checkpoint("boir", weights_dir=out)
    with pytest.raises(Exception, match="holds a 'boir' model"):
        export_demo_weights(run, "cid", DemoRecord("c"), weights_dir=out)
    with pytest.raises(ValueError, match="more than the 1000 allowed"):
        export_demo_weights(run, "boir", DemoRecord("c"), weights_dir=tmp_path / "small", max_bytes=1000)
    assert not (tmp_path / "small" / "demo_boir.pt").exists()


def test_the_weights_the_kit_ships_verify_and_fit_the_size_limit():
    assert (WEIGHTS_DIR / MANIFEST_NAME).is_file(), "the kit ships its demo weights (boir_core/weights/)"
    for arch in json.loads((WEIGHTS_DIR / MANIFEST_NAME).read_text())["weights"]:
        path = shipped_checkpoint(arch)
        assert path.stat().st_size <= MAX_BYTES
        load_inference_model(shipped_config(arch), path)


def test_the_readme_table_of_the_shipped_weights_is_the_manifests():
    """The README's table of the shipped pair quotes the manifest's own AP (3 decimals): retraining the weights
    without rewriting the table fails here."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    start, end = "<!-- shipped-table", "<!-- /shipped-table -->"
    assert start in readme and end in readme, "README.md lost its shipped-table markers"
    rows = {}
    for line in readme.split(start, 1)[1].split(end, 1)[0].splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0] in ("BoIR", "CID"):
            rows[cells[0].lower()] = [float(c) for c in cells[1:]]
    listed = json.loads((WEIGHTS_DIR / MANIFEST_NAME).read_text())["weights"]
    assert set(rows) == set(listed), (sorted(rows), sorted(listed))
    for arch, quoted in rows.items():
        m = listed[arch]["metrics"]
        expected = [m["all"]["AP"], m["all"]["AP50"], m["all"]["AR"], m["crowded"]["AP"], m["sparse"]["AP"]]
        assert quoted == [round(v, 3) for v in expected], (arch, quoted, expected)
