"""The numbered notebooks: conventions, the Makefile's build, and papermill runs with injected parameters.

The committed form of a notebook is its jupytext percent `.py` file. `make test` builds every `.ipynb` (as
`make notebooks` does) and executes each with its CPU defaults through nbval (`--nbval-lax`, kernel started
in `notebooks/` as JupyterLab starts it); `tests/notebooks/test_browser.py` runs them in a real JupyterLab.
Papermill runs here only where parameters are injected, as a researcher's headless run injects them.
"""
from __future__ import annotations

import ast
import re
import shlex
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
import papermill
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.py"))


def _load(path: Path) -> nbformat.NotebookNode:
    return jupytext.read(path)


def parameters_cell(nb) -> str:
    tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"exactly one cell must be tagged 'parameters' (found {len(tagged)})"
    return tagged[0].source


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_conventions(path):
    nb = _load(path)
    params = parameters_cell(nb)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", f"{path.name}: kernel must be python3"
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert not re.search(r"sys\.path\.(insert|append)", code), f"{path.name} patches sys.path"
    assert re.match(r"\d\d_[a-z0-9_]+$", path.stem), f"{path.name}: notebooks are named NN_topic"
    # the committed source is valid Python: magics are commented the jupytext way (# %matplotlib inline)
    ast.parse(path.read_text(), filename=str(path))
    # ... and live in the built notebook, so figures show whatever MPLBACKEND the kernel inherits
    if "matplotlib" in code:
        assert re.search(r"^%matplotlib inline$", code, re.M), f"{path.name}: no '# %matplotlib inline'"
    # no default path that only works from one working folder
    for name, value in ast.literal_eval("{" + ",".join(
            f"{t.targets[0].id!r}: {ast.unparse(t.value)}" for t in ast.parse(params).body
            if isinstance(t, ast.Assign) and isinstance(t.value, ast.Constant)) + "}").items():
        assert not (isinstance(value, str) and value.startswith("..")), f"{path.name}: {name} = {value!r}"


def test_make_notebooks_builds_every_notebook(tmp_path):
    """`make notebooks` has one jupytext command per source (it had none: `$(sorted ...)`), the commands differ
    only in their source and output, and that command builds a valid notebook with the python3 kernel and its
    parameters cell (run for one source: jupytext starts in ~5 s; every source is read by jupytext in-process)."""
    import jupytext

    venv = Path(sys.executable).parent.parent
    out = subprocess.run(["make", "-s", "-n", "-B", f"VENV={venv}", "-o", f"{venv}/.installed", "notebooks"],
                         cwd=REPO, capture_output=True, text=True, check=True).stdout
    cmds = [shlex.split(line) for line in out.splitlines() if "jupytext" in line]
    targets = sorted(c[c.index("--output") + 1] for c in cmds)
    assert targets == [f"notebooks/{p.stem}.ipynb" for p in NOTEBOOKS], out

    def pattern(c):
        stem = Path(c[c.index("--output") + 1]).stem
        return [a.replace(stem, "NN") for a in c]

    assert all(pattern(c) == pattern(cmds[0]) for c in cmds), out
    c = list(cmds[0])
    built = tmp_path / Path(c[c.index("--output") + 1]).name
    c[c.index("--output") + 1] = str(built)
    subprocess.run(c, cwd=REPO, check=True)
    nb = nbformat.read(built, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    parameters_cell(nb)
    for src in NOTEBOOKS:
        nb = jupytext.read(src)
        nbformat.validate(nb)
        parameters_cell(nb)


def _coco_format_set(root: Path, n_train: int, n_val: int) -> Path:
    """A small COCO-layout set (the coco profile's file names) from SynthCrowd images."""
    import shutil

    from boir_core.data import get_profile
    from boir_core.data.sources.synthetic import SynthCrowdSpec, make_synthcrowd

    src = root / "synth"
    make_synthcrowd(src, SynthCrowdSpec(num_train=n_train, num_val=n_val, seed=3, image_size=(96, 128), max_people=3))
    coco, synth = get_profile("coco"), get_profile("synthcrowd")
    dst = root / "coco"
    for split in ("train", "val"):
        coco.ann_file(dst, split).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(synth.ann_file(src, split), coco.ann_file(dst, split))
        shutil.copytree(synth.image_dir(src, split), coco.image_dir(dst, split))
    return dst


@pytest.mark.slow
def test_notebook_04_papermill_trains_the_configs_schedule(tmp_path):
    """The README's papermill line: parameters left unset keep the config's schedule, the ones set override it
    (a 2-step run of notebook 04 with config=coco_w32; small input and network to keep the steps cheap)."""
    from boir_core.config import load_config

    data = _coco_format_set(tmp_path, n_train=40, n_val=2)
    run_dir = tmp_path / "run"
    src = tmp_path / "04.ipynb"
    nbformat.write(_load(REPO / "notebooks" / "04_training.py"), src)
    out = tmp_path / "04.out.ipynb"
    small = ["data.input_size=64", "data.output_size=16", "data.workers=0", "model.backbone=hrnet_w18_small",
             "model.neck_channels=16", "model.neck_middle_channels=8", "model.atrous_rates=[1,2,3]",
             "model.head_channels=8", "model.emb_dim=4", "model.inst_channels=8", "train.log_every=1",
             "model.pretrained=none"]  # offline: no ImageNet file for coco_w32 here
    papermill.execute_notebook(str(src), str(out), kernel_name="python3", cwd=str(REPO), progress_bar=False,
                               parameters={"config": "coco_w32", "data_root": str(data), "run_dir": str(run_dir),
                                           "epochs": 1, "max_steps_per_epoch": 2, "device": "cpu",
                                           "overrides": small})
    dumped = yaml.safe_load((run_dir / "config.yaml").read_text())
    paper = load_config("coco_w32").to_dict()
    # set: override
    assert dumped["train"]["epochs"] == 1 and dumped["train"]["max_steps_per_epoch"] == 2
    assert dumped["data"]["root"] == str(data) and dumped["train"]["device"] == "cpu"
    # unset: the config's values, untouched
    for key in ("batch_size", "lr", "warmup_epochs", "weight_decay", "min_lr", "clip_grad", "amp"):
        assert dumped["train"][key] == paper["train"][key], key
    for key in ("dataset", "flip", "max_rotation", "min_scale", "max_scale", "max_translate"):
        assert dumped["data"][key] == paper["data"][key], key
    assert dumped["name"] == paper["name"]
    metrics = [yaml.safe_load(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert sum(m["type"] == "iter" for m in metrics) == 2
    # the figures (schedule, loss curves) are in the executed notebook although the tests run under Agg
    executed = nbformat.read(out, as_version=4)
    images = [o for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if "image/png" in o.get("data", {})]
    assert len(images) >= 2, f"{len(images)} figures in the executed notebook 04"


@pytest.mark.slow
@pytest.mark.parametrize("name, parameter", [("05_inference_and_evaluation", "checkpoint"),
                                             ("07_representations", "boir_checkpoint")])
def test_a_named_path_that_does_not_exist_is_an_error_naming_it(name, parameter, tmp_path):
    """No silent fallback: a mistyped checkpoint stops the notebook with an error that names it (it used to
    train a toy model instead)."""
    src = tmp_path / f"{name}.ipynb"
    nbformat.write(_load(REPO / "notebooks" / f"{name}.py"), src)
    with pytest.raises(papermill.PapermillExecutionError) as err:
        papermill.execute_notebook(str(src), str(tmp_path / "out.ipynb"), kernel_name="python3",
                                   cwd=str(REPO / "notebooks"), progress_bar=False,
                                   parameters={parameter: "runs/no_such_run/final.pt"})
    assert err.value.ename == "PathNotFound"
    assert f"{parameter} not found: runs/no_such_run/final.pt" in err.value.evalue
    assert str(REPO / "runs" / "no_such_run" / "final.pt") in err.value.evalue  # read from the kit's root
    assert not (REPO / "runs" / "no_such_run").exists()


@pytest.mark.slow
def test_notebook_05_papermill_runs_the_network_through_the_chosen_backend(tmp_path):
    """`-p backend onnxruntime`: the notebook decodes and evaluates through ONNX Runtime (it says so, and the
    dumped config records it), and its poses are the plain PyTorch model's on the same images within 1e-3 px.
    Demo weights at 128 px, 4 images: the notebook's cells took 47 s on the shared 2-core machine at load 10
    (the whole test 170-210 s wall there at load 6-13, kernel start and imports included)."""
    pytest.importorskip("onnxruntime")
    import json

    import numpy as np

    from boir_core.config import Config
    from boir_core.data import KeypointDataset, get_profile
    from boir_core.engine.evaluation.runner import load_inference_model
    from boir_core.engine.inference.decode import decode, decode_settings_from_config

    src = tmp_path / "05.ipynb"
    nbformat.write(_load(REPO / "notebooks" / "05_inference_and_evaluation.py"), src)
    out = tmp_path / "05.out.ipynb"
    papermill.execute_notebook(str(src), str(out), kernel_name="python3", cwd=str(REPO / "notebooks"),
                               progress_bar=False, parameters={"backend": "onnxruntime", "max_images": 4,
                                                               "fallback_run_dir": str(tmp_path / "05")})
    executed = nbformat.read(out, as_version=4)
    text = "".join(o.get("text", "") for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", []))
    import onnxruntime

    assert f"network: test.backend=onnxruntime (onnxruntime {onnxruntime.__version__})" in text
    record = json.loads((tmp_path / "05" / "eval" / "metrics.json").read_text())
    assert record["config"]["test"]["backend"] == "onnxruntime" and record["config"]["test"]["max_images"] == 4
    results = json.loads(next((tmp_path / "05" / "eval").glob("keypoints_*_results.json")).read_text())
    # the oracle: the plain PyTorch model (no backend runner) on the same weights and images
    cfg = Config.from_dict(record["config"])
    cfg = cfg.override(f"data.root={REPO / cfg.data.root}") if not Path(cfg.data.root).is_absolute() else cfg
    model, _ = load_inference_model(cfg, record["checkpoint"]["path"], "cpu")
    dataset = KeypointDataset.from_config(cfg, train=False)
    prof = get_profile(cfg.data.dataset)
    settings = decode_settings_from_config(cfg.test, prof.flip_index, prof.sigmas)
    ref = [p for i in range(4) for p in decode(model, dataset[i]["image"], dataset[i]["meta"], settings,
                                                 image_id=dataset[i]["image_id"]).poses]
    assert len(results) == len(ref) > 0
    assert [r["image_id"] for r in results] == [r["image_id"] for r in ref]
    got = np.array([r["keypoints"] for r in results]).reshape(len(results), -1, 3)
    want = np.array([r["keypoints"] for r in ref]).reshape(len(ref), -1, 3)
    assert np.abs(got[..., :2] - want[..., :2]).max() <= 1e-3
    np.testing.assert_allclose([r["score"] for r in results], [r["score"] for r in ref], rtol=1e-4, atol=1e-6)
