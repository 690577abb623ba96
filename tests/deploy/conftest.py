"""The shipped demo weights (``shipped:boir``), a few SynthCrowd scenes and one deployment folder exported from them,
shared by the deployment tests (the export is the slow part: done once per session)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from boir_core.data import get_profile
from boir_core.data.sources.synthetic import render_scene
from boir_core.engine.evaluation.runner import load_inference_model
from boir_core.engine.inference.decode import decode_settings_from_config
from boir_core.model.demo_weights import shipped_config


@pytest.fixture(scope="session")
def shipped():
    """(config, eager model, decode settings as a dict: ``DecodeSettings(**it)``) of the shipped BoIR demo weights."""
    cfg = shipped_config("boir")  # what `export --checkpoint shipped:boir` uses
    model, _ = load_inference_model(cfg, "shipped:boir", "cpu")
    prof = get_profile(cfg.data.dataset)
    return cfg, model, dataclasses.asdict(decode_settings_from_config(cfg.test, prof.flip_index, prof.sigmas))


@pytest.fixture(scope="session")
def synth_images():
    """Four SynthCrowd scenes (RGB uint8): landscape, portrait, square, one with the most people."""
    sizes = [(208, 144, 0), (144, 200, 1), (160, 160, 2), (240, 176, 5)]
    return [np.ascontiguousarray(render_scene([7, seed], w, h, max_people=6).image[:, :, ::-1])  # BGR -> RGB
            for w, h, seed in sizes]


@pytest.fixture(scope="session")
def deploy_folder(tmp_path_factory, shipped):
    """A deployment folder written by ``python -m boir_core export`` from the shipped weights."""
    from boir_core.__main__ import main

    out = tmp_path_factory.mktemp("deploy") / "boir_demo"
    assert main(["export", "--checkpoint", "shipped:boir", "--output", str(out)]) == 0
    return out
