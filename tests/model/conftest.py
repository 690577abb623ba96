"""Model tests run single-threaded: on a shared 2-core machine, 2 OpenMP threads make small convolutions
up to 100x slower (threads spin-wait for a busy core). The previous setting is restored afterwards."""
from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every model test runs on one thread (tests/conftest.py's ``one_thread``)."""
