"""Model tests run single-threaded: on a shared 2-core machine, 2 OpenMP threads make small convolutions
up to 100x slower (threads spin-wait for a busy core). The previous setting is restored afterwards."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
