"""A tiny SynthCrowd set and a tiny config shared by the engine tests."""
from __future__ import annotations

import pytest

from boir_core.config import load_config


@pytest.fixture(scope="session")
def tiny_synth(tmp_path_factory):
    from boir_core.data.sources.synthetic import SynthCrowdSpec, make_synthcrowd

    root = tmp_path_factory.mktemp("synthcrowd")
    make_synthcrowd(root, SynthCrowdSpec(num_train=8, num_val=3, seed=3, image_size=(112, 144), max_people=3))
    return root


@pytest.fixture()
def tiny_cfg(tiny_synth):
    return load_config("tiny", [f"data.root={tiny_synth}", "train.device=cpu", "data.workers=0"])
