"""Shared test set-up: offline hub, few threads, the real-fixture folder and a small SynthCrowd set."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # timm's hub is unreachable: fail in 0.5 s, not 48 s
os.environ.setdefault("MPLBACKEND", "Agg")

import torch  # noqa: E402
from boir_skips import skip_or_fail_in_ci  # noqa: E402  (tests/ is on sys.path: this conftest lives there)

# BOIR_TEST_THREADS=1 for tools that fork the test process (make mutation): an OpenMP pool that has run
# before a fork hangs the child
torch.set_num_threads(int(os.environ.get("BOIR_TEST_THREADS", 0)) or max(1, min(2, os.cpu_count() or 1)))

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
