"""Shared test set-up: offline hub, few threads, the real-fixture folder and a small SynthCrowd set."""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # timm's hub is unreachable: fail in 0.5 s, not 48 s
os.environ.setdefault("MPLBACKEND", "Agg")
#: pytest-xdist workers sharing the machine (make test: two; 1 without xdist)
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", 1) or 1)
if _WORKERS > 1:
    # two workers on two cores: every process they start (notebook kernels, the CLI in a subprocess) gets one
    # thread too; two OpenMP pools of two threads on two busy cores spin-wait (a notebook cell took 404 s, not 30)
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import torch  # noqa: E402
from boir_skips import skip_or_fail_in_ci  # noqa: E402  (tests/ is on sys.path: this conftest lives there)
from boir_workers import work_unit  # noqa: E402

# BOIR_TEST_THREADS=1 for tools that fork the test process (make mutation): an OpenMP pool that has run
# before a fork hangs the child
# Under pytest-xdist (make test: two workers) the cores are shared out between the workers.
torch.set_num_threads(int(os.environ.get("BOIR_TEST_THREADS", 0))
                      or max(1, min(2, (os.cpu_count() or 1) // _WORKERS)))

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module: on a shared 2-core machine two OpenMP threads spin-wait for a busy core.
    Use it with ``pytestmark = pytest.mark.usefixtures("one_thread")`` (tests/model uses it for every test)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def real_fixtures_dir() -> Path | None:
    """The real COCO / CrowdPose / OCHuman fixtures (``BOIR_REAL_FIXTURES``, default ../shared/fixtures/real)."""
    d = Path(os.environ.get("BOIR_REAL_FIXTURES", REPO.parent / "shared" / "fixtures" / "real"))
    return d if (d / "coco").is_dir() else None


@pytest.fixture(scope="session")
def real_fixtures() -> Path:
    d = real_fixtures_dir()
    if d is None:
        skip_or_fail_in_ci("real-data fixtures not found: set BOIR_REAL_FIXTURES to shared/fixtures/real")
    return d


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


def _browser_can_run() -> bool:
    """The browser test runs (rather than skips): Debian's chromium is there, or root can apt-get it."""
    import shutil

    return Path("/usr/bin/chromium").is_file() or (os.geteuid() == 0 and shutil.which("apt-get") is not None)


def pytest_collection_modifyitems(config, items):
    """nbval executes every notebook with its defaults. A test marked ``runs_notebook_defaults(stem)`` executes
    that notebook with its defaults too (only its output folders redirected) and fails on any error: when such a
    test is selected (and can run: the browser test needs Chromium), nbval leaves the notebook to it instead of
    executing it once more (minutes of ``make test`` on 2 cores). Either alone still runs everything."""
    covered = set()
    for item in items:
        for mark in item.iter_markers("runs_notebook_defaults"):
            if "test_browser" in item.nodeid and not _browser_can_run():
                continue
            covered.update(mark.args)
    if not covered:
        return
    keep, left = [], []
    for item in items:
        path = Path(str(item.fspath))
        (left if path.suffix == ".ipynb" and path.stem in covered and "::Cell" in item.nodeid else keep).append(item)
    if left:
        config.hook.pytest_deselected(items=left)
        items[:] = keep


if importlib.util.find_spec("xdist") is not None:  # make test's two workers (pytest-xdist, a dev dependency)
    def pytest_xdist_make_scheduler(config, log):
        """Whole work units (:func:`work_unit`) to each worker, in collection order as workers free up. (pytest-xdist's
        own ``--dist loadgroup`` renames node ids in a way pytest 9 no longer reads, so it groups nothing.)"""
        from xdist.scheduler import LoadScopeScheduling

        class WorkUnits(LoadScopeScheduling):
            def _split_scope(self, nodeid: str) -> str:
                return work_unit(nodeid)

        return WorkUnits(config, log)
