"""Notebook 06's seed study never depends on what ran before in its folder: runs of other settings (the demo's
``demo_train_iters=4``, then the browser test's 2) get folders of their own, so nothing is 'started over',
no run folder mixes two runs, and the same settings find their finished run again (same scores)."""
from __future__ import annotations

import json

import pytest

from boir_core.paper.seeds import demo_pair_configs, run_fingerprint, seed_run_dir, seed_study

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from boir_core.data.synthetic import make_synthcrowd

    root = tmp_path_factory.mktemp("synthcrowd")
    make_synthcrowd(root, num_train=6, num_val=2, seed=5, image_size=(112, 144), max_people=2)
    return root


def _iters(run_dir):
    return [json.loads(x)["iter"] for x in (run_dir / "metrics.jsonl").read_text().splitlines()
            if json.loads(x)["type"] == "iter"]


def test_two_seed_studies_with_other_settings_never_share_a_run_folder(synth, tmp_path, capsys):
    work = tmp_path / "results" / "demo" / "seeds"
    longer = {"BoIR": demo_pair_configs(synth, iters=2)["BoIR"]}  # as `make demo` ran notebook 06 (4 iterations)
    shorter = {"BoIR": demo_pair_configs(synth, iters=1)["BoIR"]}  # as the browser test runs it afterwards (2)
    first = seed_study(longer, [0], work, val_images=2)
    capsys.readouterr()
    second = seed_study(shorter, [0], work, val_images=2)
    out = capsys.readouterr().out
    assert "starting over" not in out and "different config" not in out
    dirs = sorted(p.name for p in work.iterdir())
    assert len(dirs) == 2 and all(d.startswith("BoIR_seed0_") for d in dirs)
    d4, d2 = (seed_run_dir(work, "BoIR", c["BoIR"].override("train.seed=0")) for c in (longer, shorter))
    assert "max_iters_per_epoch: 2" in (d4 / "config.yaml").read_text() and _iters(d4) == [2]
    assert "max_iters_per_epoch: 1" in (d2 / "config.yaml").read_text() and _iters(d2) == [1]
    # the first settings again: their finished run is found and reused, with the same score
    again = seed_study(longer, [0], work, val_images=2)
    out = capsys.readouterr().out
    assert again == first and again != second
    assert f"resumed from {d4}" in out and "starting over" not in out
    assert len(list(work.iterdir())) == 2 and _iters(d4) == [2]


def test_the_fingerprint_is_what_a_resume_compares(synth):
    cfg = demo_pair_configs(synth, iters=2)["BoIR"]
    same = [cfg.override(o) for o in ("train.device=cpu", "train.log_every=3", "data.workers=2",
                                      "test.max_images=7", "name=other")]
    assert {run_fingerprint(c) for c in same} == {run_fingerprint(cfg)}  # where and how it runs: same run
    changed = ("train.max_iters_per_epoch=3", "train.seed=1", "train.lr=0.01", "model.emb_dim=4", "loss.beta=5")
    prints = {run_fingerprint(cfg.override(o)) for o in changed}
    assert len(prints) == len(changed) and run_fingerprint(cfg) not in prints
