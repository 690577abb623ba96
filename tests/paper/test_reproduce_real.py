"""Real-mode `make reproduce` on a miniature real installation, Tables 1-7, as a researcher runs it.

The module fixture lays out what the README tells a researcher to have:

* ``data/coco``, ``data/crowdpose``, ``data/ochuman`` built by ``data_scripts/prepare_data.py --from DIR``
  from small archives made here out of the real fixtures, under the release's own archive and file names
  (COCO: val2017 + a 4-image train2017 + a 4-image test-dev; CrowdPose: train + val merged to trainval,
  test; OCHuman: val, test). ``--no-check`` because these are not the release's bytes (COCO's md5s would
  fail) and ``--subset`` because they hold a few images, not the release's counts.
* ``checkpoints/`` holding a weights file in the **released format** under every name the rows look up:
  random weights (:func:`boir_core.model.random_weights.seeded_trained_like_`) of the kit's own W32 / W48 /
  CID builds for COCO (K=17) and CrowdPose (K=14), written with :func:`boir_core.model.export_released`
  (plain state_dicts with the official key names; the finetunes as the release's training container
  ``.pth.tar``: ``state_dict`` with DDP's ``module.`` prefix). Their keys and shapes are compared with the
  released checkpoints' list (``shared/spec/official_state_dict.txt``). W48 rows read real W48 files: W32
  weights cannot honestly stand in for them (a W48 config does not load them), so W48 runs on one image.
* an ImageNet HRNet-W32 file (``model.pretrained=<file>``, as an offline researcher passes it) for the
  ablation rows, which train from ImageNet.

Then real mode runs table by table (1, 2, 3, 6 evaluate; 5 measures; 4 and 7 train a row 2 steps at the
paper's settings, W32 at 512 px, batch 1, and evaluate it), each evaluation on one image. ``make test`` runs
Tables 3 and 6 (``TABLES_RUN``), while every ablation row has its real config checked and one row per code path
(heads, loss terms, distance) gets the researcher's one-step ``--dry-run`` (demo mode trains, evaluates and
renders ablation rows in ``tests/paper/test_reproduce.py``); ``BOIR_REAL_ALL_TABLES=1`` runs every table (one
row of each of Tables 4 and 7 trained), ``BOIR_REAL_ALL_ROWS=1`` every row. Each evaluation is on
one image (``test.max_images=1``), and every rendered row and every metrics file is checked. The last test makes the
three mistakes a researcher makes (data laid out differently, weights of the wrong architecture / width /
keypoint count, a CrowdPose file without ``crowdIndex``) and expects named errors before any run starts.

Measured on a quiet 2-core AMD EPYC (AVX2, fp32, two torch threads), 7 December 2026, before ``make test`` was
trimmed to the rows above: the table test 362 s with four trained rows (~50 s each: build, ImageNet load, two
steps at 512 px, the training state and weights written, one evaluation with flip), the dry runs of 14 rows 103 s
(~7 s each). Under load on one core the table test's share was Table 1 5%, 2 12%, 3 18%, 5 8%, 4 and 7 55%.
With Tables 3, 6 and 7 the table test took 165-180 s in ``make test`` and CI took 30.5 minutes in all, over its 25:
Table 7's trained row (about 60% of that test) moved to ``BOIR_REAL_ALL_TABLES=1``.
``BOIR_REAL_ALL_ROWS=1`` trains and dry-runs every row.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import runpy
import sys
import tarfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from boir_skips import skip_or_fail_in_ci

from boir_core.config import load_config
from boir_core.engine.jobs.dryrun import dry_run
from boir_core.paper import TABLES, render_table
from boir_core.paper import reproduce as rp
from boir_core.paper.plan import _flatten
from boir_core.paper.render import table_cells

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SPEC = REPO.parent / "shared" / "spec" / "official_state_dict.txt"
MAX_IMAGES = 1


# ---- the miniature installation ---------------------------------------------------------------------

def _zip(path: Path, members: dict[str, Path | bytes]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as z:
        for name, src in members.items():
            if isinstance(src, bytes):
                z.writestr(name, src)
            else:
                z.write(src, name)


def _subset(d: dict, image_ids, drop_annotations: bool = False) -> dict:
    ids = set(image_ids)
    out = {k: v for k, v in d.items() if k not in ("images", "annotations")}
    out["images"] = [im for im in d["images"] if im["id"] in ids]
    if not drop_annotations:
        out["annotations"] = [a for a in d["annotations"] if a["image_id"] in ids]
    return out


def _downloads(fixtures: Path, out: Path) -> dict[str, Path]:
    """The three releases in miniature, as their archives and loose files are named (prepare.ARCHIVES)."""
    # COCO 2017: annotation zip, image zips, the test-dev image list
    src = fixtures / "coco"
    coco = json.loads((src / "test_coco.json").read_text())
    jpgs = {im["file_name"]: src / im["file_name"] for im in coco["images"]}
    d = out / "coco"
    _zip(d / "annotations_trainval2017.zip", {
        "annotations/person_keypoints_train2017.json": json.dumps(coco).encode(),  # the 4 images, as train
        "annotations/person_keypoints_val2017.json": json.dumps(coco).encode()})
    testdev = _subset(coco, [im["id"] for im in coco["images"]], drop_annotations=True)
    _zip(d / "image_info_test2017.zip", {"annotations/image_info_test-dev2017.json": json.dumps(testdev).encode()})
    for split in ("train2017", "val2017", "test2017"):
        _zip(d / f"{split}.zip", {f"{split}/{n}": p for n, p in jpgs.items()})
    # CrowdPose: loose JSON files (train and val are merged to trainval by prepare) and images.zip
    src = fixtures / "crowdpose"
    crowd = json.loads((src / "test_crowdpose.json").read_text())
    ids = [im["id"] for im in crowd["images"]]
    d = out / "crowdpose"
    d.mkdir(parents=True)
    (d / "crowdpose_train.json").write_text(json.dumps(_subset(crowd, ids[:1])))
    (d / "crowdpose_val.json").write_text(json.dumps(_subset(crowd, ids[1:])))
    (d / "crowdpose_test.json").write_text(json.dumps(crowd))
    _zip(d / "images.zip", {f"images/{im['file_name']}": src / im["file_name"] for im in crowd["images"]})
    # OCHuman: the two COCO-format JSON files and images.tar.gz
    src = fixtures / "ochuman"
    och = json.loads((src / "test_ochuman.json").read_text())
    ids = [im["id"] for im in och["images"]]
    d = out / "ochuman"
    d.mkdir(parents=True)
    (d / "ochuman_coco_format_val_range_0.00_1.00.json").write_text(json.dumps(_subset(och, ids[:2])))
    (d / "ochuman_coco_format_test_range_0.00_1.00.json").write_text(json.dumps(_subset(och, ids[2:])))
    with tarfile.open(d / "images.tar.gz", "w:gz") as t:
        for im in och["images"]:
            t.add(src / im["file_name"], f"images/{im['file_name']}")
    return {"coco": out / "coco", "crowdpose": out / "crowdpose", "ochuman": out / "ochuman"}


def _prepare_data_script(*args: str) -> tuple[int, str]:
    """``python data_scripts/prepare_data.py ARGS`` (the script itself, run in this process)."""
    argv, out = sys.argv, io.StringIO()
    sys.argv = ["prepare_data.py", *args]
    try:
        with contextlib.redirect_stdout(out):
            runpy.run_path(str(REPO / "data_scripts" / "prepare_data.py"), run_name="__main__")
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    finally:
        sys.argv = argv
    return code, out.getvalue()


#: weights file stem -> (config whose network it is, random seed, format)
RELEASED_FILES = {
    "boir_coco_w32": ("coco_w32", 1, "pth"),
    "boir_coco_w48": ("coco_w48", 2, "pth"),
    "cid_coco_w32": ("cid_coco_w32", 3, "pth"),
    "boir_crowdpose_w32": ("crowdpose_w32", 4, "pth"),
    "boir_crowdpose_w48": ("crowdpose_w48", 5, "pth"),
    "cid_crowdpose_w32": ("cid_crowdpose_w32", 6, "pth"),
    "boir_crowdpose_w32_finetune": ("crowdpose_w32", 7, "pth.tar"),
    "boir_crowdpose_w48_finetune": ("crowdpose_w48", 8, "pth.tar"),
    "cid_crowdpose_w32_finetune": ("cid_crowdpose_w32", 9, "pth.tar"),
}


def _released_checkpoints(ck: Path) -> tuple[dict[str, Path], Path, dict[str, dict]]:
    """Every weights file the evaluation rows look up (see the module docstring), the ImageNet W32 file, and
    {stem: {key: shape}} of what was written."""
    from boir_core.model import build_model, export_released
    from boir_core.model.random_weights import seeded_trained_like_

    ck.mkdir(parents=True)
    built: dict[tuple, torch.nn.Module] = {}
    files, shapes = {}, {}
    imagenet = ck.parent / "imagenet" / "hrnetv2_w32_imagenet_pretrained.pth"
    for stem, (config, seed, fmt) in RELEASED_FILES.items():
        cfg = load_config(config)
        sig = (cfg.model.arch, cfg.model.backbone, cfg.num_keypoints)
        if sig not in built:  # the released training build: every head (official_state_dict.txt)
            built[sig] = build_model(cfg, train=True, initialise=False)
        model = seeded_trained_like_(built[sig], seed=seed)
        sd = export_released(model)
        shapes[stem] = {k: tuple(v.shape) for k, v in sd.items()}
        path = ck / f"{stem}.{fmt}"
        if fmt == "pth":
            torch.save(sd, path)
        else:  # the release's checkpoint.pth.tar: DDP names in state_dict, plain ones in best_state_dict
            torch.save({"epoch": 300, "state_dict": {f"module.{k}": v for k, v in sd.items()},
                        "best_state_dict": sd, "perf": 0.0}, path)
        files[stem] = path
        if stem == "boir_coco_w32":  # the official ImageNet file's layout: the trunk without "backbone."
            imagenet.parent.mkdir(parents=True)
            torch.save({k[len("backbone."):]: v for k, v in sd.items()
                        if k.startswith("backbone.") and not k.endswith("num_batches_tracked")}, imagenet)
    return files, imagenet, shapes


def _spec_shapes() -> dict[str, dict[str, tuple]]:
    """official_state_dict.txt: {column (coco_w32, coco_w48, crowdpose_w32): {key: shape}}."""
    cols = ("coco_w32", "coco_w48", "crowdpose_w32")
    out: dict[str, dict[str, tuple]] = {c: {} for c in cols}
    for line in SPEC.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        key, *shapes = line.split("\t")
        for c, s in zip(cols, shapes):
            out[c][key] = tuple(json.loads(s))
    return out


@dataclass
class Installation:
    base: Path
    downloads: dict[str, Path]
    data: Path
    checkpoints: Path
    files: dict[str, Path]
    imagenet: Path
    shapes: dict[str, dict]
    prepare_logs: dict[str, str]
    seconds: float


def build_installation(fixtures: Path, base: Path) -> Installation:
    """The researcher's folders under ``base`` (see the module docstring)."""
    t0 = time.time()
    downloads = _downloads(fixtures, base / "downloads")
    data = base / "data"
    logs = {}
    for ds, folder in downloads.items():
        code, out = _prepare_data_script(ds, "--root", str(data), "--from", str(folder), "--no-check", "--subset",
                                         "--quiet")
        assert code == 0, out
        logs[ds] = out
    files, imagenet, shapes = _released_checkpoints(base / "checkpoints")
    return Installation(base, downloads, data, base / "checkpoints", files, imagenet, shapes, logs, time.time() - t0)


@pytest.fixture(scope="module")
def installation(tmp_path_factory, real_fixtures):
    inst = build_installation(real_fixtures, tmp_path_factory.mktemp("researcher"))
    yield inst
    # the weights are ~2 GB: pytest keeps its last tmp folders, so drop them
    for p in [*inst.base.rglob("*.pt"), *inst.base.rglob("*.pth"), *inst.base.rglob("*.pth.tar")]:
        p.unlink()


def _overrides(inst: Installation) -> list[str]:
    """What a researcher's trial run passes: the ImageNet file offline, one image per evaluation, training
    runs of 2 steps of 1 image (the dry run's size); everything else is the row's config (W32 / W48, 512 px)."""
    return [f"model.pretrained={inst.imagenet}", f"test.max_images={MAX_IMAGES}", "train.max_steps=2",
            "train.batch_size=1", "data.workers=0", "train.log_every=1"]


# ---- the installation itself ------------------------------------------------------------------------

def test_the_prepared_layout_is_the_one_the_profiles_read(installation):
    from boir_core.data import get_profile

    inst = installation
    expected = {"coco": {"train": 4, "val": 4, "test": 4}, "crowdpose": {"trainval": 2, "test": 2},
                "ochuman": {"val": 2, "test": 1}}
    for ds, splits in expected.items():
        assert "COMPLETE" in inst.prepare_logs[ds] and "INCOMPLETE" not in inst.prepare_logs[ds]
        prof = get_profile(ds)
        for split, n in splits.items():
            ann = json.loads(prof.ann_file(inst.data / ds, split).read_text())
            assert len(ann["images"]) == n, (ds, split)
            assert all((prof.image_dir(inst.data / ds, split) / im["file_name"]).is_file() for im in ann["images"])
    testdev = json.loads((inst.data / "coco" / "annotations" / "coco_test.json").read_text())
    assert testdev["annotations"] == []  # prepare adds the key the loader expects
    assert not rp.detect_demo("auto", inst.data)


def test_the_weights_files_are_in_the_released_format(installation):
    if not SPEC.is_file():
        skip_or_fail_in_ci(f"released key list not found: {SPEC}")
    spec = _spec_shapes()
    shapes = installation.shapes
    assert shapes["boir_coco_w32"] == spec["coco_w32"]
    assert shapes["boir_coco_w48"] == spec["coco_w48"]
    assert shapes["boir_crowdpose_w32"] == spec["crowdpose_w32"]
    assert shapes["boir_crowdpose_w32_finetune"] == spec["crowdpose_w32"]
    # every evaluation row finds a file under its own name
    for run in rp.RUNS.values():
        if run.kind == "evaluate":
            found = rp.resolve_weights(run, installation.checkpoints)
            assert found is not None and found.name.startswith(run.weights + "."), run.key


# ---- real mode, table by table ----------------------------------------------------------------------

def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


@pytest.fixture
def results_dir(tmp_path):
    """The reproduce results folder; its training runs' weights (~0.5 GB a row) are deleted afterwards."""
    yield tmp_path / "results"
    for p in (tmp_path / "results").rglob("*.pt"):
        p.unlink()


#: ``BOIR_REAL_ALL_TABLES=1`` trains one ablation row of each of Tables 4 and 7 (2 of the 18 rows, ~50 s each on a
#: 2-core AVX2 CPU): Table 4's full BoIR (bbox head, Bbox Mask Loss, associative embedding, L2) and Table 7's
#: narrowest embedding (D = 1, no bbox head). The others have their configs checked and, where their code path
#: differs (``dry_run_in_make_test``), a one-step dry run; ``BOIR_REAL_ALL_ROWS=1`` trains all 18 (minutes more).
#: ``make test`` trains none (Tables 4 and 7 do not run) and dry-runs one row per code path.
ALL_ROWS = os.environ.get("BOIR_REAL_ALL_ROWS", "") == "1"
#: ``make test`` runs Tables 3 and 6 (evaluating released-format weights at the paper's sizes, W32 and W48, COCO
#: and CrowdPose; 6 reuses 3's files) in real mode; Tables 1, 2 (test-dev: the upload file), 5 (latency), 4 and
#: 7 (ablation rows trained from ImageNet and evaluated) cost ~6 more minutes on a 2-core AVX2 CPU:
#: ``BOIR_REAL_ALL_TABLES=1`` (or ``BOIR_REAL_ALL_ROWS=1``) runs every table.
TABLES_RUN = (1, 2, 3, 4, 5, 6, 7) if ALL_ROWS or os.environ.get("BOIR_REAL_ALL_TABLES", "") == "1" else (3, 6)
TRAINED_IN_MAKE_TEST = ("t4_full", "t7_dim_1")


def trained_in_make_test() -> set[str]:
    """The ablation keys ``make test`` trains: one row of each of Tables 4 and 7 that runs (``TABLES_RUN``)."""
    keys = {k for k in TRAINED_IN_MAKE_TEST if int(k[1]) in TABLES_RUN}
    assert keys <= set(rp.RUNS) and {rp.RUNS[k].kind for k in keys} <= {"ablation"}, keys
    return keys


def ablation_rows() -> set[str] | None:
    """The ablation keys this run trains (None: all of them)."""
    return None if ALL_ROWS else trained_in_make_test()


def test_real_mode_tables_1_to_7(installation, results_dir, monkeypatch):
    """Every table in real mode on the miniature installation; every rendered row and metrics file checked.

    The slowest test of the kit (the module docstring has the measured times per table).
    """
    rows = ablation_rows()
    if rows is not None:
        plan = rp.plan

        def some_ablation_rows(*args, **kwargs):
            return [r for r in plan(*args, **kwargs) if r.kind != "ablation" or r.key in rows]

        monkeypatch.setattr(rp, "plan", some_ablation_rows)
    reports, seconds = run_all_tables(installation, results_dir)
    print(f"\ninstallation {installation.seconds:.0f} s; tables: "
          + ", ".join(f"{t}: {s:.0f} s" for t, s in seconds.items()))
    check_all_tables(installation, results_dir, reports)


def switch_signature(key: str) -> tuple:
    """What decides an ablation row's code path: which heads and loss terms it builds, and how the embedding
    loss measures distance. Rows that differ only in a number (Table 7's beta and embedding width) share one."""
    c = _flatten(load_config(rp.RUNS[key].config_path).to_dict())
    return (c["model.bbox_head"], c["loss.bbox_mask"], c["loss.bbox_mask_variant"], c["loss.emb_loss"],
            c["loss.distance"], c["loss.weighting"])


def dry_run_in_make_test(untrained: list[str]) -> list[str]:
    """The untrained rows ``make test`` dry-runs: one per code path no trained row covers (rows that differ only
    in a number share the code path of the row trained). ``BOIR_REAL_ALL_ROWS=1``: all of them."""
    if ALL_ROWS:
        return untrained
    covered = {switch_signature(k) for k in trained_in_make_test()}
    picked: list[str] = []
    for key in untrained:
        if switch_signature(key) not in covered:
            covered.add(switch_signature(key))
            picked.append(key)
    return picked


def test_every_ablation_row_not_trained_passes_its_dry_run(installation):
    """The ablation rows ``make test`` does not train (``trained_in_make_test``) all have the row's switches in
    their real-mode config (W32, 512 px, COCO), and those that take a code path no trained row takes
    (:func:`dry_run_in_make_test`) get the researcher's pre-flight: ``train --dry-run`` of the row's real-mode
    config (ImageNet from the researcher's file, the row's switches), one step on one image, ~7 s a row on a
    2-core AVX2 CPU. ``BOIR_REAL_ALL_ROWS=1`` dry-runs all of them."""
    trained = trained_in_make_test()  # (with BOIR_REAL_ALL_ROWS=1 the others are trained as well)
    untrained = [key for key, run in rp.RUNS.items() if run.kind == "ablation" and key not in trained]
    assert len(untrained) == 18 - len(trained)
    dry = dry_run_in_make_test(untrained)
    # every code path of Tables 4 and 7 runs: trained or dry-run
    assert {switch_signature(k) for k in rp.RUNS if rp.RUNS[k].kind == "ablation"} == \
        {switch_signature(k) for k in [*trained, *dry]}
    for key in untrained:
        run = rp.RUNS[key]
        cfg = rp.real_config(run, installation.data, "cpu", _overrides(installation))
        want = load_config(run.config_path)
        flat_want, flat_got = _flatten(want.to_dict()), _flatten(cfg.to_dict())
        for s in rp.ABLATION_SWITCHES:
            assert flat_got[s] == flat_want[s], (run.key, s)
        assert (cfg.data.input_size, cfg.model.backbone, cfg.data.dataset) == (512, "hrnet_w32", "coco")
        if key not in dry:
            continue
        report = dry_run(cfg, steps=1, log=lambda m: None)
        assert report["finite"], run.key
        assert report["total_steps"] == 2 and report["train_images"] == 4, run.key
        assert str(installation.imagenet) in report["initialisation"], (run.key, report["initialisation"])
        terms = set(report["losses"][0])
        expected = {"multi_heatmap", "instance_heatmap", "total"}
        expected |= {"bbox"} if cfg.model.bbox_head else set()
        expected |= {"bbox_mask", "pull_in", "push_out", "push_inst"} if cfg.loss.bbox_mask else set()
        assert terms == expected, (run.key, sorted(terms))


def run_all_tables(inst: Installation, res: Path) -> tuple[dict, dict]:
    """Real mode, table by table in a researcher's order; returns the reports and the seconds of each."""
    ov = _overrides(inst)
    seconds: dict[int, float] = {}
    reports = {}
    for table, train in ((1, False), (2, False), (3, False), (6, False), (5, False), (4, True), (7, True)):
        if table not in TABLES_RUN:
            continue
        t0 = time.time()
        options = rp.ReproduceOptions(data_root=inst.data, checkpoint_dir=inst.checkpoints, train=train, gpus=0,
                                      results_dir=res, demo="auto", overrides=ov, latency_repeats=1)
        reports[table] = rp.reproduce(table, options, log=lambda m: None)
        seconds[table] = time.time() - t0
        assert reports[table].demo is False
    return reports, seconds


def check_all_tables(inst: Installation, res: Path, reports: dict) -> None:
    # every run of every table ran (Table 6 keeps Table 3's COCO val evaluations, Table 5 its AP column)
    for table, rep in reports.items():
        for key, status in rep.status.items():
            assert not status.startswith("skipped"), (table, key, status)
        for run in rep.runs:
            if table in (5, 6):
                assert rep.status[run.key].startswith("kept "), (table, run.key)
            elif run.kind == "ablation":
                assert rep.status[run.key].startswith("evaluated ") and "/train/" in rep.status[run.key]
            else:
                assert rep.status[run.key].startswith("evaluated "), (table, run.key)
    if 5 in reports:
        assert {k for k in reports[5].status if k.startswith("table5:")} == {f"table5:{k}" for k in rp.TABLE5_CONFIGS}

    # every run of the tables run (TABLES_RUN) but the ablation rows left out on purpose (ablation_rows) ran
    ran = {run.key for rep in reports.values() for run in rep.runs}
    rows = ablation_rows()
    left_out = {k for k, run in rp.RUNS.items() if run.kind == "ablation" and rows is not None and k not in rows}
    wanted = {k for number in TABLES_RUN for tid in rp.table_ids(number) for row in TABLES[tid].rows
              if row.reproducible for k in row.run_keys()} - left_out
    assert wanted and wanted <= ran, sorted(wanted - ran)
    if TABLES_RUN == (1, 2, 3, 4, 5, 6, 7):
        assert ran == set(rp.RUNS) - left_out, sorted(set(rp.RUNS) - left_out - ran)
    if rows is not None:
        assert {k for k in rows if k.startswith("t7")} <= ran

    # the metrics files: config, checksum, split, image count, timings
    for key, run in rp.RUNS.items():
        if key in left_out or key not in ran:
            assert not rp.metrics_path(res, key).exists(), key
            continue
        m = json.loads(rp.metrics_path(res, key).read_text())
        assert m["key"] == key and m["demo"] is False
        assert (m["dataset"], m["split"]) == (run.dataset, run.split)
        assert m["images"] == MAX_IMAGES
        cfg = m["config"]
        assert cfg["data"]["root"] == str(inst.data / run.dataset)
        want = load_config(run.config_path, list(run.overrides))
        assert cfg["test"]["max_images"] == MAX_IMAGES
        assert cfg["data"]["input_size"] == want.data.input_size == (640 if "w48" in key else 512)  # the paper's
        assert (cfg["model"]["arch"], cfg["model"]["backbone"]) == (want.model.arch, want.model.backbone)
        assert m["model"] == {"arch": want.model.arch, "backbone": want.model.backbone}
        ck = Path(m["checkpoint"]["path"])
        assert m["checkpoint"]["sha256"] == _sha256(ck)
        t = m["timings"]
        assert t["network_ms"] > 0 and t["decode_ms"] >= 0 and t["device"]
        if run.kind == "ablation":
            assert ck == res / "train" / key / "final.pt"
            assert m["preset"] == "paper" and cfg["name"] == key
            flat_want = _flatten(load_config(run.config_path).to_dict())
            flat_got = _flatten(cfg)
            for s in rp.ABLATION_SWITCHES:  # the row's own switches were trained
                assert flat_got[s] == flat_want[s], (key, s)
            schedule = json.loads((res / "train" / key / "schedule.json").read_text())
            assert schedule["total_steps"] == 2, schedule
            train_cfg = json.loads(json.dumps(load_config(res / "train" / key / "config.yaml").to_dict()))
            assert train_cfg["model"]["pretrained"] == str(inst.imagenet)
            assert train_cfg["data"]["input_size"] == 512 and train_cfg["model"]["backbone"] == "hrnet_w32"
        else:
            assert ck == inst.files[run.weights] and m["preset"] == "release (released weights)"
        if run.split == "test-dev":  # no labels: the upload file instead of scores
            assert m["metrics"] == {}
            upload = rp.metrics_path(res, key).parent / f"person_keypoints_test-dev2017_{run.arch}_results.json"
            preds = json.loads(upload.read_text())
            testdev_ids = {im["id"] for im in json.loads(
                (inst.data / "coco" / "annotations" / "coco_test.json").read_text())["images"]}
            decoded = {p["image_id"] for p in preds}
            assert len(decoded) == MAX_IMAGES and decoded <= testdev_ids  # poses of the one image decoded
            assert all(len(p["keypoints"]) == 51 for p in preds)
        else:
            assert set(m["metrics"]) >= {"AP", "AP50", "AR"}
            assert 0.0 <= m["metrics"]["AP"] <= 1.0

    # Table 5: the real architectures' counts and latency on this CPU, beside each row's AP
    counts = {"boir_w32_coco_val": 31_832_030, "boir_w48_coco_val": 68_868_734}
    for key, config in (rp.TABLE5_CONFIGS.items() if 5 in reports else ()):
        t5 = json.loads(rp.table5_path(res, key).read_text())
        assert t5["demo"] is False and t5["config_name"] == config
        if key in counts:
            assert t5["params"]["inference"] == counts[key]
        assert t5["timings"]["network_ms"] > 0
        ev = json.loads(rp.metrics_path(res, key).read_text())
        assert t5["metrics"] == ev["metrics"] and t5["preset"] == ev["preset"]
    if 5 in reports:
        assert 0 < (json.loads(rp.table5_path(res, "boir_w32_coco_val").read_text())["params"]["inference"]
                    - json.loads(rp.table5_path(res, "cid_w32_coco_val").read_text())["params"]["inference"])

    # every table rendered: an "ours" value in every reproducible row, its preset, no DEMO banner
    for number in TABLES_RUN:
        for tid in rp.table_ids(number):
            results = rp.table_results(tid, res)
            md = render_table(tid, results)
            assert "DEMO" not in md and "[demo]" not in md, tid
            lines = md.splitlines()
            skipped_rows = [row for row in TABLES[tid].rows if set(row.run_keys()) & left_out]
            assert md.count("no result yet") == len(skipped_rows), (tid, [r.key for r in skipped_rows])
            for row in TABLES[tid].rows:
                if not row.reproducible or row in skipped_rows:
                    continue
                line = next(ln for ln in lines if all(f"ours: `{k}`" in ln for k in row.run_keys()))
                preset = "preset paper" if row.config else "preset release (released weights)"
                assert line.count(preset) == len(row.run_keys()), (tid, row.key, line)
            for cell in table_cells(tid, results):
                if cell.key is None or cell.key in left_out:
                    continue
                r = cell.result
                assert r is not None, (tid, cell.key)
                if cell.column.name == "params_M":
                    assert cell.ours == pytest.approx(r.params_inference / 1e6)
                elif cell.column.name == "time_ms":
                    assert cell.ours == pytest.approx(r.network_ms + r.decode_ms)
                elif tid == "1":
                    assert cell.ours is None  # test-dev: scored by the evaluation server
                else:
                    raw = r.raw["metrics"][cell.column.metric]
                    assert cell.ours == (None if raw == -1 else pytest.approx(100 * raw)), (tid, cell.key)
                    if cell.column.metric == "AP":
                        assert cell.ours is not None and f"{cell.paper:.1f} / {cell.ours:.1f}" in md


# ---- the researcher's mistakes: named errors before any run -----------------------------------------

def _link_tree(src: Path, dst: Path) -> None:
    """``dst`` a copy of ``src``'s folders whose files are symlinks (cheap; the originals stay untouched)."""
    for p in src.rglob("*"):
        q = dst / p.relative_to(src)
        if p.is_dir() and not p.is_symlink():
            q.mkdir(parents=True, exist_ok=True)
        else:
            q.parent.mkdir(parents=True, exist_ok=True)
            q.symlink_to(p.resolve())


def test_mistakes_are_named_before_any_run(installation, tmp_path):
    from boir_core.data.sources.layout import DataLayoutError, check_layout

    inst = installation
    res = tmp_path / "results"
    ov = _overrides(inst)

    def run(table, data, ck):
        with pytest.raises(rp.PreflightError) as e:
            rp.reproduce(table, rp.ReproduceOptions(data_root=data, checkpoint_dir=ck, gpus=0, results_dir=res,
                                                    demo=False, overrides=ov), log=lambda m: None)
        assert not res.exists() or not any(res.rglob("metrics.json")), "a run started before the error"
        return str(e.value)

    # 1. COCO as it comes out of the zips (annotations/person_keypoints_val2017.json, val2017/ beside it)
    data = tmp_path / "data_raw"
    _link_tree(inst.data / "crowdpose", data / "crowdpose")
    with zipfile.ZipFile(inst.downloads["coco"] / "annotations_trainval2017.zip") as z:
        z.extractall(data / "coco")
    with zipfile.ZipFile(inst.downloads["coco"] / "val2017.zip") as z:
        z.extractall(data / "coco")
    msg = run(3, data, inst.checkpoints)
    assert f"expected the annotation file {data / 'coco' / 'annotations' / 'coco_val.json'}" in msg
    assert str(data / "coco" / "annotations" / "person_keypoints_val2017.json") in msg
    assert "prepare_data.py coco" in msg
    # images moved away from where the annotation file says they are
    data2 = tmp_path / "data_moved"
    _link_tree(inst.data / "coco", data2 / "coco")
    (data2 / "coco" / "images" / "val2017").rename(data2 / "coco" / "val2017")
    msg = run(6, data2, inst.checkpoints)
    assert f"its image folder {data2 / 'coco' / 'images' / 'val2017'} is not" in msg
    # a data set the researcher does not have at all is not a mistake: its rows are skipped
    assert check_layout(tmp_path / "nothing", "ochuman", ["val"]) == {"val": False}

    # 2. weights of another width, keypoint count, architecture under a row's name
    ck = tmp_path / "ck"
    ck.mkdir()
    for stem, path in inst.files.items():
        (ck / path.name).symlink_to(path)
    (ck / "boir_coco_w48.pth").unlink()
    (ck / "boir_coco_w48.pth").symlink_to(inst.files["boir_coco_w32"])       # W32 under the W48 name
    (ck / "boir_coco_w32.pth").unlink()
    (ck / "boir_coco_w32.pth").symlink_to(inst.files["boir_crowdpose_w32"])  # CrowdPose's K=14 under COCO's
    (ck / "cid_coco_w32.pth").unlink()
    (ck / "cid_coco_w32.pth").symlink_to(inst.files["boir_coco_w32"])        # a BoIR file under the CID name
    msg = run(6, inst.data, ck)
    assert msg.count("\n- ") == 3, msg
    w48 = msg[msg.index("boir_w48_coco_val"):]
    assert str(ck / "boir_coco_w48.pth") in w48
    assert "backbone.transition1.0.0.weight: file (32, 256, 3, 3) vs model (48, 256, 3, 3)" in w48
    k14 = msg[msg.index("boir_w32_coco_val"):]
    assert str(ck / "boir_coco_w32.pth") in k14 and "K=14 keypoints, the model K=17" in k14
    assert "kpt_head.heatmap_conv.weight: file (14," in k14
    cid = msg[msg.index("cid_w32_coco_val"):]
    assert str(ck / "cid_coco_w32.pth") in cid and "holds a BOIR checkpoint but the model is CID" in cid

    # 3. a CrowdPose test file without crowdIndex
    data3 = tmp_path / "data_nocrowdindex"
    _link_tree(inst.data / "crowdpose", data3 / "crowdpose")
    ann = data3 / "crowdpose" / "annotations" / "crowdpose_test.json"
    d = json.loads(ann.read_text())
    for im in d["images"]:
        im.pop("crowdIndex")
    ann.unlink()
    ann.write_text(json.dumps(d))
    msg = run(2, data3, inst.checkpoints)
    assert f"{ann}: 2 of 2 images lack 'crowdIndex'" in msg
    with pytest.raises(DataLayoutError, match="lack 'crowdIndex'"):
        check_layout(data3, "crowdpose", ["test"])
