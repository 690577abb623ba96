"""The training job (boir_core.engine.training.job): its plan is decided once, by one rule, and train, the dry run
and the demo agree on it; its step is the step train takes; an injected clock times its steps, deterministically."""
from __future__ import annotations

import json

import pytest
import torch

from boir_core.engine.distributed import DistInfo, device_name
from boir_core.engine.jobs.dryrun import dry_run
from boir_core.engine.training.budget import CALIBRATION_STEPS, Measurement, length_source, plan_run
from boir_core.engine.training.job import TrainingJob, build_job
from boir_core.engine.training.schedule import set_lr, warmup_cosine_schedule
from boir_core.engine.training.train import TrainHooks, train

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


class Readings:
    """A clock that returns the given readings, one per call, then keeps the last."""

    def __init__(self, *values: float):
        self.values, self.calls = list(values), 0

    def __call__(self) -> float:
        self.calls += 1
        return self.values.pop(0) if len(self.values) > 1 else self.values[0]


@pytest.fixture()
def small_cfg(tiny_cfg):
    return tiny_cfg.override("data.input_size=64", "data.output_size=16", "train.max_steps_per_epoch=2",
                             "train.epochs=2", "train.warmup_epochs=1", "train.save_every=100")


def test_time_steps_is_driven_by_the_injected_clock_and_undone_leaves_no_trace(small_cfg):
    job = build_job(small_cfg, DistInfo())
    before = {k: v.clone() for k, v in job.core.state_dict().items()}
    rng = torch.get_rng_state()
    # readings before the first step and after each: steps of 5, 3 (warm-up) then 1, 2, 3, 1 s
    clock = Readings(100.0, 105.0, 108.0, 109.0, 111.0, 114.0, 115.0)
    with job.undone():
        timing = job.time_steps(6, clock, skip=2)
    assert timing.each_step_seconds == [5.0, 3.0, 1.0, 2.0, 3.0, 1.0]
    assert timing.step_seconds == pytest.approx(7.0 / 4)  # the mean after the warm-up
    assert len(timing.results) == 6 and all(r.finite for r in timing.results)
    after = job.core.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # the timed steps were undone
    assert torch.equal(rng, torch.get_rng_state())
    with pytest.raises(ValueError, match="warm-up"):
        job.time_steps(2, clock, skip=2)


def test_the_plan_is_decided_once(small_cfg):
    job = build_job(small_cfg.override("train.time_budget_s=30"), DistInfo())
    # the clock reads 0 s when the run starts and when the timing starts, 1 s more after each timed step, and
    # 1 s more when the plan is made: 8 steps of 1 s, 9 s spent, then (30 - 9) / 1 = 21 steps
    clock = Readings(0.0, *range(CALIBRATION_STEPS + 2))
    plan = job.decide_plan(clock, started=clock())
    assert plan == plan_run(job.cfg.train, job.iters_per_epoch,
                            Measurement(1.0, CALIBRATION_STEPS + 1.0, CALIBRATION_STEPS, device_name(job.dinfo.device)))
    assert plan.total_steps == 30 - CALIBRATION_STEPS - 1 and plan.source == "time_budget"
    clock = Readings(0.0)
    assert job.decide_plan(clock) is plan and clock.calls == 0  # decided: nothing is timed again


@pytest.mark.parametrize("length", [[], ["train.max_steps=3"]])
def test_train_and_the_dry_run_run_the_length_the_job_plans(small_cfg, tmp_path, length):
    cfg = small_cfg.override(*length)
    planned = build_job(cfg, DistInfo()).decide_plan()
    assert planned.total_steps == (4 if not length else 3)  # 2 epochs x 2, or max_steps
    report = dry_run(cfg, steps=1, log=lambda m: None)
    assert (report["total_steps"], report["warmup_steps"], report["steps_from"]) == (
        planned.total_steps, planned.warmup_steps, planned.source)
    s = train(cfg, tmp_path / "run", progress=False)
    assert s.total_steps == s.iterations == planned.total_steps
    assert json.loads((tmp_path / "run" / "schedule.json").read_text()) == planned.to_dict()


def test_a_time_budget_is_sized_by_the_same_rule_in_train_and_the_dry_run(small_cfg, tmp_path, monkeypatch):
    cfg = small_cfg.override("train.time_budget_s=11")
    clock = Readings(0.0)
    real_step = TrainingJob.step

    def step(job, batch):  # every step takes 0.5 s on the fake clock
        clock.values = [clock.values[0] + 0.5]
        return real_step(job, batch)

    monkeypatch.setattr(TrainingJob, "step", step)
    s = train(cfg, tmp_path / "run", progress=False, hooks=TrainHooks(clock=clock))
    # 8 timed steps (4 s) spent, then (11 - 4) / 0.5 = 14 steps
    assert s.total_steps == 14 and s.step_seconds == pytest.approx(0.5)
    cpu = device_name(torch.device("cpu"))
    assert s.plan == plan_run(cfg.train, 2, Measurement(0.5, 4.0, CALIBRATION_STEPS, cpu)).to_dict()
    report = dry_run(cfg, steps=3, log=lambda m: None, clock=clock)
    assert report["step_seconds"] == pytest.approx(0.5)
    assert report["total_steps"] == plan_run(cfg.train, 2, Measurement(0.5)).total_steps == 22  # 11 / 0.5
    assert length_source(cfg.train) == report["steps_from"] == s.plan["source"] == "time_budget"


def test_the_job_step_is_the_step_train_takes(small_cfg, tmp_path):
    """Stepping a freshly built job through one epoch by hand (its batches, its loss generator seeded as train
    seeds it, the plan's learning rates) gives train's losses and weights, bit for bit."""
    cfg = small_cfg.override("train.epochs=1")
    s = train(cfg, tmp_path / "run", progress=False)
    job = build_job(cfg, DistInfo())
    plan, tc = job.decide_plan(), cfg.train
    lrs = warmup_cosine_schedule(plan.total_steps, plan.warmup_steps, tc.lr, tc.warmup_start_lr, tc.min_lr)
    job.model.train()
    batches = job.batches(0)
    job.loss_generator.manual_seed(tc.seed * 7919)
    losses = []
    for i in range(plan.total_steps):
        set_lr(job.optimizer, float(lrs[i]))
        losses.append(job.step(next(batches)).terms["total"])
    assert losses == s.losses
    final = torch.load(s.final_weights, weights_only=True)["state_dict"]
    mine = job.core.state_dict()
    assert all(torch.equal(final[k], mine[k]) for k in final)


def _state(job):
    return {k: v.detach().clone() for k, v in job.core.state_dict().items()}


def _same(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


def test_a_finite_loss_with_non_finite_gradients_is_skipped_and_undone(small_cfg):
    """Without a gradient scaler, a step whose loss is finite but whose gradient norm is not is skipped: the
    weights and the BatchNorm statistics its forward pass moved are put back, no gradient is kept, and the
    result says so with the loss terms and the non-finite norm."""
    job = build_job(small_cfg, DistInfo())
    assert not job.scaler.is_enabled()
    job.model.train()
    params = list(job.core.parameters())

    def sqrt_at_zero(outputs, batch, loss_cfg, generator=None):  # d/dp sqrt(0 * p) = inf * 0 = nan
        total = torch.sqrt(0.0 * sum(p.sum() for p in params))
        return {"total": total, "pull_in": torch.tensor(0.25)}

    job.loss_fn = sqrt_at_zero
    before = _state(job)
    r = job.step(next(job.batches(0)))
    assert r.finite is False and r.terms == {"total": 0.0, "pull_in": 0.25} and r.grad_norm != r.grad_norm
    assert _same(before, _state(job))  # the forward pass's BatchNorm statistics are undone too
    assert all(p.grad is None for p in params)


def test_a_non_finite_micro_batch_skips_the_accumulated_step_with_the_terms_so_far(small_cfg):
    """With two micro-batches, a non-finite loss in the second skips the step before its backward pass; the
    reported terms are the mean over the micro-batches seen (both), the norm NaN, nothing applied."""
    job = build_job(small_cfg, DistInfo())
    job.model.train()
    params = list(job.core.parameters())
    seen = []

    def fails_second(outputs, batch, loss_cfg, generator=None):
        seen.append(1)
        bad = len(seen) == 2
        total = 0.0 * sum(p.sum() for p in params) + (float("nan") if bad else 1.0)
        return {"total": total, "pull_in": torch.tensor(3.0 if bad else 1.0)}

    job.loss_fn = fails_second
    before = _state(job)
    batch = next(job.batches(0))
    r = job.step([batch, batch])
    assert r.finite is False and r.terms["pull_in"] == 2.0 and r.grad_norm != r.grad_norm
    assert _same(before, _state(job)) and all(p.grad is None for p in params)
