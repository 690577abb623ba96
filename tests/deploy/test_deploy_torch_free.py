"""boir_core.deploy runs without torch (docs/inference.md#deployment-folder): with torch blocked in the kit's own
environment, and in a virtual environment that holds only numpy, onnxruntime, OpenCV and PyYAML.

The virtual environment is built once (about 20 s from the package index or mirror pip is configured with) into
``build/deploy-venv`` (``BOIR_DEPLOY_VENV`` names another folder) and reused while its package list is the same;
``make clean`` removes it. PyYAML is there because ``import boir_core`` reads the config package.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from boir_deploy_helpers import assert_same_poses

from boir_core.deploy import BoirDeployment

REPO = Path(__file__).resolve().parents[2]
VENV_PACKAGES = ("numpy", "onnxruntime", "opencv-python-headless", "pyyaml")
pytestmark = pytest.mark.usefixtures("one_thread")


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, **kw)


def torch_free_python() -> Path:
    """The interpreter of the torch-free virtual environment (built here when missing or out of date)."""
    venv = Path(os.environ.get("BOIR_DEPLOY_VENV") or REPO / "build" / "deploy-venv")
    python = venv / "bin" / "python"
    want = f"python {sys.version_info[:2]}; packages {' '.join(VENV_PACKAGES)}\n"
    stamp = venv / "boir-deploy-venv.txt"
    if python.is_file() and stamp.is_file() and stamp.read_text() == want:
        return python
    building = venv.with_name(venv.name + f".building-{os.getpid()}")
    shutil.rmtree(building, ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    for cmd in ([sys.executable, "-m", "venv", str(building)],  # no --system-site-packages: torch stays out
                [str(building / "bin" / "python"), "-m", "pip", "install", "-q", *VENV_PACKAGES]):
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        assert r.returncode == 0, f"building the torch-free venv failed: {' '.join(cmd)}\n{r.stdout}\n{r.stderr}"
    (building / stamp.name).write_text(want)
    shutil.rmtree(venv, ignore_errors=True)
    building.rename(venv)  # a half-built venv is never taken for a finished one
    return python


def _scene_files(synth_images, tmp_path) -> list[Path]:
    files = []
    for i, img in enumerate(synth_images[:2]):
        files.append(tmp_path / f"scene{i}.png")
        cv2.imwrite(str(files[-1]), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    return files


def _expected(deploy_folder, synth_images, files) -> list[dict]:
    dep = BoirDeployment(deploy_folder, threads=1)
    return [dict(p, file=str(f)) for i, f in enumerate(files) for p in dep.predict(synth_images[i], image_id=i)]


def test_the_deploy_package_imports_nothing_that_imports_torch(deploy_folder, synth_images, tmp_path):
    """torch blocked (an import of it fails): the package, its CLI and a prediction still work, and no module
    of the kit outside config, io and deploy is loaded."""
    files = _scene_files(synth_images, tmp_path)
    code = ("import json, sys\n"
            "sys.modules['torch'] = None  # any import of torch now raises ImportError\n"
            "from boir_core.deploy.__main__ import main\n"
            "rc = main(sys.argv[1:])\n"
            "kit = sorted({m.split('.')[1] for m in sys.modules if m.startswith('boir_core.')})\n"
            "print(json.dumps({'rc': rc, 'kit': kit}), file=sys.stderr)\n")
    r = _run([sys.executable, "-c", code, str(deploy_folder), *map(str, files), "--threads", "1"])
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stderr.strip().splitlines()[-1])
    assert report["rc"] == 0 and set(report["kit"]) <= {"config", "io", "deploy"}
    assert_same_poses(json.loads(r.stdout), _expected(deploy_folder, synth_images, files), 0.0, rtol_score=0)


@pytest.mark.slow
def test_runs_in_a_virtual_environment_without_torch(deploy_folder, synth_images, tmp_path):
    python = torch_free_python()
    r = _run([str(python), "-c", "import torch"])
    assert r.returncode != 0 and "No module named 'torch'" in r.stderr
    files = _scene_files(synth_images, tmp_path)
    r = _run([str(python), "-m", "boir_core.deploy", str(deploy_folder), *map(str, files), "--threads", "1"],
             cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    # the venv's onnxruntime / numpy may be other builds than the kit's: the same poses to 1e-4 px
    assert_same_poses(out, _expected(deploy_folder, synth_images, files), 1e-4, rtol_score=1e-5)
    assert [p["file"] for p in out] == sorted(p["file"] for p in out) and {p["image_id"] for p in out} == {0, 1}
    np.testing.assert_array_equal([len(p["keypoints"]) for p in out], 3 * 17)
