"""The kit as an installed package: build the wheel, install it into a fresh virtual environment and run ``boir``
from a folder outside any checkout, as a practitioner who ran ``pip install`` would.

No network: the wheel is built with the installed setuptools (``--no-build-isolation``) and installed with
``--no-deps --no-index``; the kit's dependencies (torch, ...) are made visible to the new environment by a
``.pth`` file that lists this environment's site-packages folders. A plain path line does not run the ``.pth``
files of that folder, so this environment's editable install of boir_core does not leak in (checked:
``boir_core.__file__`` lies in the new environment).

Slow: 74 s measured with the machine's 2 cores shared (load average 13; 31 s of CPU), so about 35 s on 2 free
cores (Xeon Sapphire Rapids); each ``boir`` process spends about 2 s importing torch.
"""
from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
COMMANDS = {"train", "evaluate", "predict", "profile", "demo", "reproduce", "export", "convert-checkpoint", "book",
            "doctor", "prepare-data", "ship-demo"}
#: not copied into the build folder (big, generated, or the environment itself); only at the root
ROOT_SKIP = {".git", ".venv", "data", "runs", "build", "dist", "mutants", ".whl", ".gl", ".pytest_cache"}


def _ignore(folder: str, names: list[str]) -> set[str]:
    skip = {n for n in names if n == "__pycache__" or n.endswith(".egg-info")}
    return skip | (ROOT_SKIP & set(names) if Path(folder) == REPO else set())


class Installed:
    def __init__(self, wheel: Path, venv: Path, user: Path):
        self.wheel, self.venv, self.user = wheel, venv, user
        self.purelib = venv  # set once the environment exists
        self.bin = venv / ("Scripts" if os.name == "nt" else "bin")
        self.python = self.bin / "python"
        self.env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "BOIR_KIT_ROOT")}
        self.env.update(HF_HUB_OFFLINE="1", MPLBACKEND="Agg", OMP_NUM_THREADS="1")

    def run(self, *args: str, ok: bool = True, timeout: int = 180) -> subprocess.CompletedProcess:
        """Run a program of the new environment (``boir``, ``python``) in the user's folder."""
        r = subprocess.run([str(self.bin / args[0]), *args[1:]], cwd=self.user, env=self.env, capture_output=True,
                           text=True, timeout=timeout)
        if ok:
            assert r.returncode == 0, f"{' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
        return r

    def package_files(self) -> set[str]:
        pkg = self.purelib / "boir_core"
        return {str(p.relative_to(pkg)) for p in pkg.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


def _check(cmd: list[str], what: str, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert r.returncode == 0, f"{what} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    return r


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Installed:
    base = tmp_path_factory.mktemp("wheel")
    src = base / "src"
    shutil.copytree(REPO, src, symlinks=True, ignore=_ignore)  # a clean copy: the build writes build/, egg-info
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    _check([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
            "-w", str(base / "dist"), str(src)], "building the wheel", env=env, timeout=300)
    (wheel,) = (base / "dist").glob("boir_kit-*.whl")
    venv = base / "venv"
    _check([sys.executable, "-m", "venv", "--without-pip", str(venv)], "creating the virtual environment")
    inst = Installed(wheel, venv, base / "user")
    inst.user.mkdir()
    assert not inst.user.resolve().is_relative_to(REPO), "the user's folder must lie outside the checkout"
    # install first, then make the dependencies visible: pip must not see this environment's boir-kit
    _check([sys.executable, "-m", "pip", "--python", str(inst.python), "install", "--no-deps", "--no-index", "-q",
            str(wheel)], "installing the wheel", env=env, timeout=300)
    purelib = inst.purelib = Path(inst.run("python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])")
                                  .stdout.strip())
    ours = dict.fromkeys([*site.getsitepackages(), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (purelib / "boir_kit_test_dependencies.pth").write_text("".join(f"{p}\n" for p in ours if Path(p).is_dir()))
    return inst


def test_the_wheel_holds_the_package_with_its_configs_and_weights_and_nothing_else(installed):
    names = zipfile.ZipFile(installed.wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"boir_core", installed.wheel.name.split("-py3")[0] + ".dist-info"}, tops  # no tests/, notebooks/
    configs = {f"boir_core/configs/{p.relative_to(REPO / 'boir_core' / 'configs')}"
               for p in (REPO / "boir_core" / "configs").rglob("*.yaml")}
    assert len(configs) >= 30 and "boir_core/configs/ablations/t4_full.yaml" in configs
    assert configs <= set(names), sorted(configs - set(names))
    weights = {f"boir_core/weights/{f}" for f in ("demo_boir.pt", "demo_cid.pt", "demo_weights.json")}
    assert weights <= set(names)
    modules = {f"boir_core/{p.relative_to(REPO / 'boir_core').as_posix()}" for p in (REPO / "boir_core").rglob("*.py")
               if "__pycache__" not in p.parts}
    assert "boir_core/config/schema.py" in modules and modules <= set(names), sorted(modules - set(names))
    assert not [n for n in names if n.endswith((".ipynb", ".pyc")) or "__pycache__" in n or "/tests/" in n]
    entry = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "boir = boir_core.__main__:main" in zipfile.ZipFile(installed.wheel).read(entry).decode()


def test_the_installed_package_finds_its_configs_by_name_from_any_folder(installed):
    from boir_core.config import load_config

    (installed.user / "mine.yaml").write_text("base: coco_w32\nname: mine\nmodel:\n  emb_dim: 16\n")
    script = (
        "import json, boir_core\n"
        "from boir_core.config import configs_dir, load_config\n"
        "from boir_core import paths\n"
        "try:\n"
        "    paths.checkout_root('executing the notebooks'); checkout = None\n"
        "except paths.NeedsCheckout as e:\n"
        "    checkout = str(e)\n"
        "print(json.dumps({'file': boir_core.__file__, 'configs': str(configs_dir()), 'checkout': checkout,\n"
        "    'coco_w32': load_config('coco_w32').to_dict(), 't4': load_config('t4_full').to_dict(),\n"
        "    'mine': load_config('mine.yaml').to_dict()}))\n")
    got = json.loads(installed.run("python", "-c", script).stdout)
    assert Path(got["file"]) == installed.purelib / "boir_core" / "__init__.py"  # the wheel, not the checkout
    assert Path(got["configs"]).is_relative_to(installed.venv)
    assert got["coco_w32"] == load_config("coco_w32").to_dict()  # the same settings as the checkout's
    assert got["t4"] == load_config("ablations/t4_full").to_dict()
    want = load_config("coco_w32", ["name=mine", "model.emb_dim=16"]).to_dict()
    assert got["mine"] == want  # the user's YAML extends the packaged coco_w32
    assert "needs a checkout" in got["checkout"] and str(installed.user) in got["checkout"]


def test_boir_help_lists_every_command(installed):
    from boir_core.__main__ import build_parser

    out = installed.run("boir", "--help").stdout
    assert out.startswith("usage: boir ")
    listed = set(out.split("{", 1)[1].split("}", 1)[0].split(","))
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert listed == COMMANDS == set(sub.choices)
    for c in COMMANDS:
        assert f"\n    {c} " in out  # each with its help line


def test_profile_from_a_folder_outside_the_checkout(installed):
    before = sorted(installed.user.rglob("*"))
    got = json.loads(installed.run("boir", "profile", "--config", "coco_w32", "--json", "--params-only").stdout)
    # the released W32 checkpoint's inference tensors (shared/spec/official_state_dict.txt): Table 5's 31.8 M
    assert got["params"]["inference"] == 31_832_030 and got["params"]["total"] > got["params"]["inference"]
    assert "latency" not in got
    assert sorted(installed.user.rglob("*")) == before  # profile writes nothing


def test_predict_evaluate_export_and_train_with_the_shipped_weights(installed, tmp_path):
    import cv2

    from boir_core.data.sources.synthetic import SynthCrowdSpec, make_synthcrowd
    from boir_core.engine.inference.predict import predict
    from boir_core.model.demo_weights import shipped_checkpoint, shipped_config

    user, before = installed.user, installed.package_files()
    make_synthcrowd(tmp_path / "sc",
                    SynthCrowdSpec(num_train=2, num_val=2, seed=5, image_size=(112, 144), max_people=2))
    shutil.copytree(tmp_path / "sc", user / "data" / "synthcrowd")  # where the shipped config looks, from here
    img = sorted((user / "data" / "synthcrowd" / "images" / "val").glob("*.jpg"))[0]
    shutil.copy(img, user / "people.jpg")

    r = installed.run("boir", "predict", "--checkpoint", "shipped:boir", "--output", "poses.json", "--draw", "drawn",
                      "people.jpg", "train.device=cpu")
    assert "[predict]" in r.stdout and "trained with" in r.stderr
    got = json.loads((user / "poses.json").read_text())
    want = predict(shipped_config("boir", ["train.device=cpu"]), shipped_checkpoint("boir"), [str(user / "people.jpg")],
                   output=tmp_path / "want.json")
    assert len(got) == want["num_poses"] > 0
    ref = json.loads((tmp_path / "want.json").read_text())
    for a, b in zip(got, ref):
        assert a["image_id"] == b["image_id"] == 0 and abs(a["score"] - b["score"]) < 1e-4
        assert max(abs(x - y) for x, y in zip(a["keypoints"], b["keypoints"])) < 1e-3
    assert cv2.imread(str(next((user / "drawn").glob("*.jpg")))) is not None

    # evaluate, export and train: the same main() as the console script, in one process (one torch import)
    commands = [["evaluate", "--checkpoint", "shipped:boir", "--quiet", "train.device=cpu"],
                ["export", "--checkpoint", "shipped:boir", "train.device=cpu"],
                ["train", "--config", "tiny", "--quiet", "train.device=cpu", "train.max_steps=1", "train.batch_size=1"]]
    r = installed.run("python", "-c", "import json, sys; from boir_core.__main__ import main\n"
                      f"print([main(c) for c in {commands!r}])")
    assert r.stdout.strip().splitlines()[-1] == "[0, 0, 0]", r.stdout + r.stderr
    metrics = json.loads((user / "runs" / "demo_shipped_boir" / "eval" / "metrics.json").read_text())
    assert metrics["dataset"] == "synthcrowd" and 0.0 <= metrics["metrics"]["AP"] <= 1.0
    assert metrics["checkpoint"]["sha256"] == json.loads((installed.purelib / "boir_core" / "weights" /
                                                          "demo_weights.json").read_text())["weights"]["boir"]["sha256"]
    assert {p.name for p in (user / "runs" / "demo_shipped_boir" / "onnx").iterdir()} >= {"dense.onnx",
                                                                                           "instance.onnx"}
    assert (user / "runs" / "tiny" / "final.pt").is_file()
    assert installed.package_files() == before  # nothing written into the installed package


def test_what_needs_the_checkout_says_so(installed):
    """Before any work, and fast: the command needs no network to say so."""
    # reproduce runs from the package (no notebook); a mistaken argument is named before torch is imported
    r = installed.run("python", "-c", "import sys; from boir_core.__main__ import main\n"
                      "rc = main(['reproduce', '--table', '5', 'data_rot=data'])\nprint(rc, 'torch' in sys.modules)",
                      ok=False)
    assert "error: reproduce: unknown argument 'data_rot'" in r.stderr, r.stdout + r.stderr
    assert r.stdout.split() == ["2", "False"], r.stdout + r.stderr
    r = installed.run("boir", "demo", ok=False)
    assert r.returncode == 2 and "needs a checkout" in r.stderr and "--no-notebooks" in r.stderr, r.stderr
    assert not (installed.user / "runs" / "demo").exists()  # it stopped before any work
