"""make demo's job: shipped weights evaluated (all / crowded / sparse), a fresh run sized by the demo's
budget, its AP beside the shipped one, and a summary that names every output."""
from __future__ import annotations

import json

import pytest

import boir_core.engine.jobs.demo as demo_mod
from boir_core.config import load_config
from boir_core.engine.evaluation.keypoint_loss import held_out_keypoint_loss
from boir_core.model import build_model, save_checkpoint
from boir_core.model.demo_weights import DemoRecord, export_demo_weights

SMALL = ["data.input_size=64", "data.output_size=16"]  # 4x less work per step


def _ship_tiny(tmp_path, tiny_synth):
    """A weights folder with a tiny BoIR and CID, as export_demo_weights writes the real ones."""
    out = tmp_path / "weights"
    for arch in ("boir", "cid"):
        ov = [f"data.root={tiny_synth}", "train.device=cpu", "data.input_size=64", "data.output_size=16"]
        ov += ["model.arch=cid", "model.bbox_head=false", "loss.bbox_mask=false"] if arch == "cid" else []
        cfg = load_config("tiny", ov)
        run = tmp_path / f"run_{arch}"
        save_checkpoint(build_model(cfg, train=True), run / "final.pt", extra={"config": cfg.to_dict()})
        export_demo_weights(run, arch, DemoRecord(f"train {arch}"), weights_dir=out)
    return out


def test_demo_evaluates_shipped_weights_trains_fresh_and_reports_everything(tiny_synth, tmp_path, capsys):
    weights = _ship_tiny(tmp_path, tiny_synth)
    out = tmp_path / "demo"
    s = demo_mod.run_demo(out, config="tiny", overrides=[f"data.root={tiny_synth}", "train.device=cpu", *SMALL,
                                                           "train.max_steps=2"],
                          options=demo_mod.DemoOptions(notebooks=False, weights_dir=weights, draw_images=2,
                                                                generate_data=False))
    assert set(s["results"]) == {"shipped_boir", "shipped_cid", "fresh"}
    n_val = len(json.loads((tiny_synth / "annotations" / "person_keypoints_val.json").read_text())["images"])
    for r in s["results"].values():
        assert r["images"] == n_val and r["crowded"]["images"] + r["sparse"]["images"] == n_val
        assert 0.0 <= r["AP"] <= 1.0
    assert s["results"]["shipped_cid"]["weights"].endswith("demo_cid.pt")
    assert s["fresh_training"]["steps"] == 2 and s["fresh_training"]["steps_this_run"] == 2
    assert (out / "shipped" / "cid" / "config.yaml").is_file() and (out / "train" / "schedule.json").is_file()
    assert s["drawn"]["images"] == 2 and len(list((out / "predictions").iterdir())) == 2
    assert json.loads((out / "demo_summary.json").read_text()) == s
    for path in s["outputs"].values():
        assert type(out)(path).exists(), path
    printed = capsys.readouterr().out
    assert "shipped BoIR" in printed and "shipped CID" in printed and "fresh (this run)" in printed
    assert "crowded AP" in printed and "time per stage" in printed and str(out / "predictions") in printed
    # the AP curve: one point per checkpoint, the last one on the final weights (all val images fit in the subset)
    curve = s["fresh_training"]["ap_curve"]
    assert curve and [p["step"] for p in curve] == sorted(p["step"] for p in curve) and curve[-1]["step"] == 2
    assert n_val <= demo_mod.CURVE_IMAGES and curve[-1]["images"] == n_val
    assert curve[-1]["AP"] == pytest.approx(s["results"]["fresh"]["AP"])
    assert "fresh AP as it trained" in printed and "after step 2" in printed
    # beside AP, the held-out keypoint loss (continuous where a short run's AP is 0), and the shipped BoIR's
    run_cfg = load_config(out / "train" / "config.yaml")
    assert curve[-1]["keypoint_loss"] == pytest.approx(
        held_out_keypoint_loss(run_cfg, out / "train" / "final.pt", max_images=demo_mod.LOSS_IMAGES), rel=1e-6)
    ship_cfg = load_config(out / "shipped" / "boir" / "config.yaml")
    assert s["fresh_training"]["shipped_boir_keypoint_loss"] == pytest.approx(
        held_out_keypoint_loss(ship_cfg, weights / "demo_boir.pt", max_images=demo_mod.LOSS_IMAGES), rel=1e-6)
    assert "fresh held-out keypoint loss" in printed and "the shipped BoIR's" in printed
    # a second demo resumes the finished run instead of training again
    again = demo_mod.run_demo(out, config="tiny", overrides=[f"data.root={tiny_synth}", "train.device=cpu", *SMALL,
                                                               "train.max_steps=2"],
                              options=demo_mod.DemoOptions(notebooks=False, weights_dir=weights, draw_images=1,
                                                                    generate_data=False))
    assert again["fresh_training"]["steps_this_run"] == 0
    assert again["fresh_training"]["ap_curve"] == curve  # the resumed run keeps the curve its training measured
    assert again["results"]["fresh"]["AP"] == pytest.approx(s["results"]["fresh"]["AP"])


def test_demo_without_shipped_weights_says_so_and_uses_the_fresh_model(tiny_synth, tmp_path, capsys):
    s = demo_mod.run_demo(tmp_path / "demo", config="tiny",
                          overrides=[f"data.root={tiny_synth}", "train.device=cpu", *SMALL, "train.max_steps=1"],
                          options=demo_mod.DemoOptions(notebooks=False, weights_dir=tmp_path / "none", draw_images=1,
                                                            generate_data=False))
    assert set(s["results"]) == {"fresh"}
    assert "ships no demo weights" in capsys.readouterr().out


class _Stop(Exception):
    pass


def test_the_demo_trains_within_its_time_budget_unless_a_length_is_given(tiny_synth, tmp_path, monkeypatch):
    seen = []

    def fake_train(cfg, run_dir, **kw):
        seen.append((cfg.train.time_budget_s, cfg.train.max_steps))
        raise _Stop

    monkeypatch.setattr("boir_core.engine.training.train.train", fake_train)
    for ov in ([], ["train.max_steps=7"], ["train.time_budget_s=30"]):
        with pytest.raises(_Stop):
            demo_mod.run_demo(tmp_path / "d", config="tiny", overrides=[f"data.root={tiny_synth}", *ov],
                              options=demo_mod.DemoOptions(notebooks=False, weights_dir=tmp_path / "none",
                                                            generate_data=False))
    assert seen == [(demo_mod.DEMO_TIME_BUDGET_S, 0), (0.0, 7), (30.0, 0)]


def test_a_checkpoint_hook_sees_every_checkpoint_and_changes_nothing_in_the_run(tiny_synth, tmp_path):
    """train(hooks=TrainHooks(on_checkpoint=...)): the hook is called after each end-of-epoch checkpoint with the
    steps it holds; a hook that draws random numbers and runs the model leaves the run bit-identical to one without
    a hook."""
    import random

    import numpy as np
    import torch

    from boir_core.config import load_config
    from boir_core.engine.training.train import TrainHooks, train

    cfg = load_config("tiny", [f"data.root={tiny_synth}", "train.device=cpu", *SMALL, "train.epochs=3",
                               "train.max_steps_per_epoch=2", "train.save_every=1", "train.warmup_epochs=0"])
    seen = []

    def noisy_hook(step, path):
        seen.append((step, path.name, path.is_file()))
        random.random(), np.random.rand(3), torch.rand(5)  # noqa: B018 - draws from every generator

    with_hook = train(cfg, tmp_path / "a", progress=False, hooks=TrainHooks(on_checkpoint=noisy_hook))
    without = train(cfg, tmp_path / "b", progress=False)
    assert seen == [(2, "last.pt", True), (4, "last.pt", True), (6, "last.pt", True)]
    assert with_hook.losses == without.losses
    a = torch.load(with_hook.final_weights, weights_only=True)
    b = torch.load(without.final_weights, weights_only=True)
    a, b = (x.get("state_dict", x) for x in (a, b))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_demos_default_length_yields_to_any_length_the_user_sets():
    from boir_core.engine.jobs.demo import DEMO_TIME_BUDGET_S, demo_config
    from boir_core.engine.training.budget import length_source

    plain = demo_config("demo")
    assert length_source(plain.train) == "time_budget" and plain.train.time_budget_s == DEMO_TIME_BUDGET_S
    assert length_source(demo_config("demo", ["train.time_budget_s=0"]).train) == "epochs"
    assert length_source(demo_config("demo", ["train.max_steps=7"]).train) == "max_steps"
    assert demo_config("demo", ["train.time_budget_s=60"]).train.time_budget_s == 60
    own = demo_config("demo_shipped_boir", ["train.max_steps=0"])  # a config with epochs of its own gets the budget
    assert length_source(own.train) == "time_budget"
