"""Runs sized by steps or by a time budget (boir_core.engine.training.budget), with a fake clock: no timed tests."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from boir_core.config import TrainConfig
from boir_core.engine.training.budget import (
    CALIBRATION_STEPS,
    Measurement,
    StepPlan,
    length_source,
    plan_run,
    step_seconds_of,
    steps_for_budget,
)
from boir_core.engine.training.checkpointing import load_training_state
from boir_core.engine.training.job import TrainingJob
from boir_core.engine.training.schedule import warmup_cosine_schedule
from boir_core.engine.training.train import TrainHooks, TrainingInterrupted, train


class FakeClock:
    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


# ---- the sizing arithmetic --------------------------------------------------------------------------------

def test_steps_for_budget_is_the_whole_steps_left_after_the_setup():
    assert steps_for_budget(100.0, 0.25) == 400
    assert steps_for_budget(100.0, 0.3) == 333  # floor(333.33)
    assert steps_for_budget(100.0, 0.25, spent_s=20.0) == 320
    assert steps_for_budget(1.0, 0.1) == 10  # 1.0 / 0.1 is 9.999… in floats: still 10 whole steps
    assert steps_for_budget(5.0, 2.0, spent_s=10.0) == 1  # over budget already: one step, never zero
    assert steps_for_budget(5.0, 2.0, spent_s=10.0, min_steps=3) == 3
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="step time"):
            steps_for_budget(10.0, bad)
    with pytest.raises(ValueError, match="budget"):
        steps_for_budget(0.0, 0.1)


def test_seconds_per_step_skip_the_first_steps_and_average_the_rest():
    costs = [5.0, 3.0, 1.0, 2.0, 3.0, 1.0, 1.0, 2.0]  # two slow warm-up steps, then 10 s over 6 steps
    assert step_seconds_of(costs, skip=2) == pytest.approx(10.0 / 6)  # the mean: 6 steps take 6 x it
    assert step_seconds_of([4.0, 1.0, 1.0, 7.0], skip=1) == pytest.approx(3.0)  # not the median (1.0)
    with pytest.raises(ValueError):
        step_seconds_of(costs[:2], skip=2)


def _tc(**kw) -> TrainConfig:
    tc = TrainConfig(epochs=50, warmup_epochs=1)
    for k, v in kw.items():
        setattr(tc, k, v)
    return tc


def test_plan_from_epochs_matches_the_old_schedule():
    p = plan_run(_tc(), iters_per_epoch=50)
    assert (p.total_steps, p.warmup_steps, p.epochs, p.source) == (2500, 50, 50, "epochs")
    assert [p.iters_in_epoch(e) for e in (0, 49, 50)] == [50, 50, 0]


def test_plan_from_max_steps_keeps_the_warmup_share_and_cuts_the_last_epoch():
    p = plan_run(_tc(max_steps=1234), iters_per_epoch=50)
    assert (p.total_steps, p.source) == (1234, "max_steps")
    assert p.warmup_steps == round(1234 / 50)  # warmup_epochs / epochs = 1/50 of the run
    assert p.epochs == 25 and p.iters_in_epoch(24) == 34 and sum(p.iters_in_epoch(e) for e in range(25)) == 1234
    assert p.reproduce_overrides() == ["train.max_steps=1234", "train.time_budget_s=0"]
    # a time budget's step count (what fits after the set-up) wins over epochs, and is recorded as such
    q = plan_run(_tc(time_budget_s=60.0), 50, Measurement(step_seconds=0.5, setup_s=21.5, calibration_steps=8))
    assert (q.total_steps, q.source, q.step_seconds, q.time_budget_s) == (77, "time_budget", 0.5, 60.0)
    assert (q.setup_s, q.calibration_steps) == (21.5, 8)
    assert StepPlan.from_dict(json.loads(json.dumps(q.to_dict()))) == q
    # max_steps wins over a budget, and nothing measured enters its plan
    r = plan_run(_tc(time_budget_s=60.0, max_steps=9), 50, Measurement(step_seconds=0.5))
    assert (r.total_steps, r.source, r.step_seconds) == (9, "max_steps", None)
    assert [length_source(_tc(**kw)) for kw in ({}, {"max_steps": 3}, {"time_budget_s": 1.0})] == [
        "epochs", "max_steps", "time_budget"]
    with pytest.raises(ValueError, match="measured"):
        plan_run(_tc(time_budget_s=60.0), 50)  # a budget cannot be planned without its step time
    with pytest.raises(ValueError, match="max_steps"):
        plan_run(_tc(max_steps=-1), 50)
    with pytest.raises(ValueError, match="time_budget_s"):
        plan_run(_tc(time_budget_s=-5.0), 50)


def test_a_plan_written_under_the_old_name_of_seconds_per_step_still_loads():
    q = plan_run(_tc(time_budget_s=60.0), 50, Measurement(step_seconds=0.5, setup_s=21.5))
    old = {("measured_step_s" if k == "step_seconds" else k): v for k, v in q.to_dict().items()}
    assert "step_seconds" not in old
    assert StepPlan.from_dict(old) == q
    assert "measured_step_s" not in StepPlan.from_dict(old).to_dict()  # written back under the new name


# ---- the engine with a fake clock --------------------------------------------------------------------------

def _fake_step_time(monkeypatch, seconds_per_step: float, setup_s: float = 0.0) -> FakeClock:
    """A clock for ``train(hooks=TrainHooks(clock=...))`` that every optimisation step advances by
    ``seconds_per_step``, and building the run (until the first step) by ``setup_s``."""
    clock = FakeClock()
    real_step = TrainingJob.step
    calls = {"n": 0}

    def step(job, batch):
        if calls["n"] == 0:
            clock.t += setup_s
        calls["n"] += 1
        clock.t += seconds_per_step
        return real_step(job, batch)

    monkeypatch.setattr(TrainingJob, "step", step)
    clock.calls = calls
    return clock


def _iters(run_dir) -> list[dict]:
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r for r in lines if r["type"] == "iter"]


@pytest.fixture()
def small_cfg(tiny_cfg):
    return tiny_cfg.override("data.input_size=64", "data.output_size=16")  # 4x less work per step


def test_a_time_budget_fixes_the_step_count_from_the_measured_step_time(small_cfg, tmp_path, monkeypatch):
    # 0.5 s per step, 2 s of set-up: the 8 timed steps and the set-up use 6 s of the 9.9 s budget -> 7 steps
    clock = _fake_step_time(monkeypatch, 0.5, setup_s=2.0)
    cfg = small_cfg.override("train.time_budget_s=9.9", "train.epochs=4", "train.warmup_epochs=1",
                             "train.max_steps_per_epoch=3", "train.log_every=1", "train.save_every=1")
    s = train(cfg, tmp_path / "budget", progress=False, hooks=TrainHooks(clock=clock))
    expected = math.floor((9.9 - 2.0 - CALIBRATION_STEPS * 0.5) / 0.5)
    assert expected == 7
    assert s.total_steps == expected and s.iterations == expected and len(s.losses) == expected
    assert s.step_seconds == pytest.approx(0.5)
    assert clock.calls["n"] == CALIBRATION_STEPS + expected  # the timed steps are the only extra ones
    plan = json.loads((tmp_path / "budget" / "schedule.json").read_text())
    assert plan["total_steps"] == expected and plan["source"] == "time_budget"
    assert plan["step_seconds"] == pytest.approx(0.5) and plan["setup_s"] == pytest.approx(6.0)
    assert plan["calibration_steps"] == CALIBRATION_STEPS and plan["time_budget_s"] == 9.9
    assert plan["reproduce_with"] == f"train.max_steps={expected} train.time_budget_s=0"
    assert plan["epochs"] == 3 and plan["warmup_steps"] == round(expected / 4) == 2  # 7 = 3+3+1
    # the learning rate followed warm-up + cosine over exactly that many steps
    lrs = warmup_cosine_schedule(expected, plan["warmup_steps"], cfg.train.lr, cfg.train.warmup_start_lr,
                                 cfg.train.min_lr)
    logged = _iters(tmp_path / "budget")
    assert [r["iter"] for r in logged] == list(range(1, expected + 1))
    assert np.allclose([r["lr"] for r in logged], lrs)
    # the weights and the checkpoint record the plan too
    assert torch.load(tmp_path / "budget" / "final.pt", weights_only=True)["extra"]["plan"]["total_steps"] == 7
    assert load_training_state(tmp_path / "budget" / "checkpoints" / "last.pt")["extra"]["plan"] == plan


def test_a_budgeted_run_is_reproduced_exactly_by_its_step_count(small_cfg, tmp_path, monkeypatch):
    # the timed steps are undone: rerunning with max_steps=N gives the same losses and the same weights
    clock = _fake_step_time(monkeypatch, 1.0)
    base = small_cfg.override("train.epochs=3", "train.max_steps_per_epoch=3", "train.warmup_epochs=1")
    budgeted = train(base.override("train.time_budget_s=12"), tmp_path / "budget", progress=False,
                     hooks=TrainHooks(clock=clock))
    assert budgeted.total_steps == 12 - CALIBRATION_STEPS
    exact_cfg = base.override(*budgeted.plan["reproduce_with"].split())
    exact = train(exact_cfg, tmp_path / "exact", progress=False)
    assert exact.plan["source"] == "max_steps" and exact.step_seconds is None
    assert exact.total_steps == budgeted.total_steps
    assert exact.losses == pytest.approx(budgeted.losses, rel=1e-6, abs=1e-8)
    a = torch.load(tmp_path / "budget" / "final.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "exact" / "final.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_resumed_budgeted_run_keeps_its_step_count(small_cfg, tmp_path, monkeypatch):
    clock = _fake_step_time(monkeypatch, 1.0)
    cfg = small_cfg.override("train.time_budget_s=13", "train.epochs=3", "train.max_steps_per_epoch=3",
                             "train.save_every=1")
    with pytest.raises(TrainingInterrupted):  # killed after the epoch-1 checkpoint
        train(cfg, tmp_path / "run", progress=False, hooks=TrainHooks(stop_after_iters=4, clock=clock))
    assert load_training_state(tmp_path / "run" / "checkpoints" / "last.pt")["extra"]["plan"]["total_steps"] == 5
    clock.calls["n"] = 0
    monkeypatch.setattr(TrainingJob, "step", _slower(TrainingJob.step, clock, 9.0))  # the machine got busy
    resumed = train(cfg, tmp_path / "run", progress=False, hooks=TrainHooks(clock=clock))
    assert resumed.total_steps == 5 and resumed.iterations == 2  # 5 steps planned, 3 done before the kill
    assert resumed.step_seconds == pytest.approx(1.0)  # the plan measured at the start, not re-timed


def _slower(step, clock, extra):
    def f(*a, **k):
        clock.t += extra
        return step(*a, **k)
    return f


def test_max_steps_wins_over_a_budget_and_nothing_is_timed(small_cfg, tmp_path, monkeypatch):
    clock = _fake_step_time(monkeypatch, 1.0)
    cfg = small_cfg.override("train.time_budget_s=1000", "train.max_steps=4", "train.max_steps_per_epoch=3")
    s = train(cfg, tmp_path / "run", progress=False, hooks=TrainHooks(clock=clock))
    assert s.total_steps == 4 and s.iterations == 4 and clock.calls["n"] == 4
    assert json.loads((tmp_path / "run" / "schedule.json").read_text())["source"] == "max_steps"


def test_a_checkpoint_from_before_the_new_fields_still_resumes(small_cfg, tmp_path):
    # a run folder written before train.max_steps / train.time_budget_s existed holds a config without them
    cfg = small_cfg.override("train.epochs=2", "train.max_steps_per_epoch=2", "train.save_every=1")
    with pytest.raises(TrainingInterrupted):
        train(cfg, tmp_path / "old", progress=False, hooks=TrainHooks(stop_after_iters=3))
    ckpt = tmp_path / "old" / "checkpoints" / "last.pt"
    state = load_training_state(ckpt)
    for k in ("max_steps", "time_budget_s"):
        del state["config"]["train"][k]
    del state["extra"]["plan"]
    torch.save(state, ckpt)
    s = train(cfg, tmp_path / "old", progress=False)
    assert s.resumed_from_epoch == 1 and s.iterations == 2 and s.total_steps == 4
