"""``load_inference_model`` builds the network without random weights when a checkpoint overwrites them all.

The network with a checkpoint is built on the ``meta`` device and given empty memory; these tests hold it to
the plain path (a randomly initialised network, then the strict load): every tensor equal, for our
``final.pt`` format and for a released-format state_dict, the BatchNorm counters included, and the same
outputs. A load that would leave a tensor at its initial value rebuilds the network with the initialisation.
"""
from __future__ import annotations

import pytest
import torch

import boir_core.engine.runner as runner
from boir_core.config import load_config
from boir_core.model import build_model, export_released, load_weights, save_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _trained_like(arch: str) -> tuple:
    cfg = load_config("tiny", [f"model.arch={arch}"])
    torch.manual_seed(3)
    model = build_model(cfg, train=False).eval()
    with torch.no_grad():  # weights and BN statistics no fresh network has
        for t in model.state_dict().values():
            if t.is_floating_point():
                t.mul_(0.8 + 0.4 * torch.rand_like(t)).add_(0.01)  # positive factor: variances stay > 0
            else:
                t.fill_(7)
    return cfg, model


def _plain_load(cfg, path):
    """The reference: the randomly initialised network, then the strict load."""
    model = build_model(cfg, train=False)
    load_weights(model, path)
    return model.eval()


@pytest.mark.parametrize("arch", ["boir", "cid"])
@pytest.mark.parametrize("fmt", ["ours", "released"])
def test_empty_build_loads_exactly_what_the_plain_path_loads(tmp_path, arch, fmt):
    cfg, model = _trained_like(arch)
    path = tmp_path / "w.pth"
    if fmt == "ours":
        save_checkpoint(model, path)
    else:
        torch.save(export_released(model), path)
    loaded, report = runner.load_inference_model(cfg, path)
    want = _plain_load(cfg, path).state_dict()
    got = loaded.state_dict()
    assert set(got) == set(want)
    for k in want:
        assert got[k].dtype == want[k].dtype and torch.equal(got[k], want[k]), k
        assert torch.equal(got[k], model.state_dict()[k]), k  # the file's values, not empty memory
    assert not report.left_initialised and not loaded.training
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded.center_logits(loaded.features(x)),
                                   model.center_logits(model.features(x)), rtol=0, atol=0)


def test_a_load_that_leaves_tensors_initialised_rebuilds_with_the_initialisation(tmp_path, monkeypatch):
    cfg, model = _trained_like("boir")
    path = tmp_path / "w.pth"
    save_checkpoint(model, path)
    real = runner.load_weights
    kept = "multihead.center_head.head.0.conv1.weight"
    calls = []

    def leaves_one_tensor(m, source, **kw):  # a load that keeps one tensor at its initial value
        before = m.state_dict()[kept].clone() if kept in m.state_dict() else None
        report = real(m, source, **kw)
        if before is not None:
            with torch.no_grad():
                m.state_dict()[kept].copy_(before)
            report.left_initialised = {kept: "kept for the test"}
        calls.append(m)
        return report

    assert kept in model.state_dict()
    monkeypatch.setattr(runner, "load_weights", leaves_one_tensor)
    torch.manual_seed(11)
    loaded, _ = runner.load_inference_model(cfg, path)
    assert len(calls) == 2  # the empty build, then the initialised one
    torch.manual_seed(11)
    fresh = build_model(cfg, train=False)
    # the kept tensor holds the random initialisation of a normal build (same seed), not empty memory
    assert torch.equal(loaded.state_dict()[kept], fresh.state_dict()[kept])
    assert loaded is calls[1]
