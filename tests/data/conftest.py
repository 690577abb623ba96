"""Fixtures of the data tests (builders live in boir_data_builders.py)."""
from __future__ import annotations

from pathlib import Path

import pytest
from boir_data_builders import simple_set


@pytest.fixture
def tiny_coco(tmp_path) -> Path:
    """A two-image SynthCrowd-layout COCO set (17 keypoints) in tmp_path."""
    simple_set(tmp_path)
    return tmp_path
