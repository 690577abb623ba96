"""How many steps a run takes: from its epochs, from ``train.max_steps``, or from ``train.time_budget_s``.

A run's length is fixed once, before its first real step, as a :class:`StepPlan` (total steps, warm-up
steps, where the count came from). The learning-rate schedule (warm-up + cosine) is built for that count.

- ``train.max_steps = N`` (N > 0): exactly N steps. The warm-up keeps the config's share of the run
  (``warmup_epochs / epochs``), so ``max_steps`` changes the length and nothing else about the schedule.
- ``train.time_budget_s = B`` (B > 0): the engine times a few steps on this machine
  (:func:`time_steps`; they are undone afterwards, so they leave no trace in the weights), then fixes
  ``N = (B - seconds already spent) / measured seconds per step`` (:func:`steps_for_budget`) and continues as
  with ``max_steps = N``. The run folder's ``schedule.json`` records N and the measured step time, so
  ``train.max_steps=N train.time_budget_s=0`` reproduces the run on any machine, step for step.
- neither: ``epochs x iterations per epoch``, warm-up ``warmup_epochs x iterations per epoch`` (as before).

Everything here is free of wall-clock reads except :func:`time_steps`, whose clock is an argument, so the
sizing is tested with a fake clock.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

__all__ = ["StepPlan", "plan_from_config", "sized_by_time_budget", "steps_for_budget", "time_steps",
           "CALIBRATION_STEPS", "CALIBRATION_SKIP"]

#: Steps timed to size a time-budgeted run, of which the first ``CALIBRATION_SKIP`` are not counted (the
#: first steps allocate memory and pick kernels, and are slower than the rest).
CALIBRATION_STEPS = 8
CALIBRATION_SKIP = 2


@dataclass
class StepPlan:
    """The length of a run and its warm-up, and where they came from."""

    total_steps: int
    warmup_steps: int
    iters_per_epoch: int
    source: str  # "epochs", "max_steps" or "time_budget"
    time_budget_s: float = 0.0
    measured_step_s: float | None = None  # seconds per step measured by the time-budget calibration
    calibration_steps: int = 0  # steps timed (and undone) to measure it
    setup_s: float | None = None  # seconds spent before the first real step (build, data, calibration)
    device: str | None = None

    @property
    def epochs(self) -> int:
        """Epochs the loop runs; the last one may be shorter than ``iters_per_epoch``."""
        return math.ceil(self.total_steps / self.iters_per_epoch)

    def iters_in_epoch(self, epoch: int) -> int:
        return max(0, min(self.iters_per_epoch, self.total_steps - epoch * self.iters_per_epoch))

    def reproduce_overrides(self) -> list[str]:
        """The overrides that rerun exactly this many steps without timing anything."""
        return [f"train.max_steps={self.total_steps}", "train.time_budget_s=0"]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["epochs"] = self.epochs
        d["reproduce_with"] = " ".join(self.reproduce_overrides())
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "StepPlan":
        names = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in names})


def _warmup_share(train_cfg) -> float:
    return min(1.0, max(0.0, train_cfg.warmup_epochs / train_cfg.epochs)) if train_cfg.epochs > 0 else 0.0


def sized_by_time_budget(train_cfg) -> bool:
    """Is the run's length measured on this machine (``train.time_budget_s`` > 0 and no ``train.max_steps``)?"""
    return train_cfg.time_budget_s > 0 and train_cfg.max_steps <= 0


def plan_from_config(train_cfg, iters_per_epoch: int, total_steps: int | None = None, **measured) -> StepPlan:
    """The :class:`StepPlan` of ``train_cfg`` (a :class:`~boir_core.config.TrainConfig`).

    ``total_steps`` (from a time budget) takes precedence over ``train.max_steps``, which takes precedence
    over the epochs. ``measured`` fills the time-budget fields of the plan.
    """
    if iters_per_epoch <= 0:
        raise ValueError(f"iters_per_epoch must be positive, got {iters_per_epoch}")
    if train_cfg.max_steps < 0:
        raise ValueError(f"train.max_steps must be >= 0 (0: use train.epochs), got {train_cfg.max_steps}")
    if train_cfg.time_budget_s < 0:
        raise ValueError(f"train.time_budget_s must be >= 0 (0: no budget), got {train_cfg.time_budget_s}")
    if total_steps is not None:
        source = "time_budget"
    elif train_cfg.max_steps > 0:
        total_steps, source = train_cfg.max_steps, "max_steps"
    else:
        if train_cfg.epochs <= 0:
            raise ValueError(f"train.epochs must be positive, got {train_cfg.epochs}")
        return StepPlan(total_steps=train_cfg.epochs * iters_per_epoch,
                        warmup_steps=min(train_cfg.warmup_epochs, train_cfg.epochs) * iters_per_epoch,
                        iters_per_epoch=iters_per_epoch, source="epochs", **measured)
    total_steps = int(total_steps)
    if total_steps <= 0:
        raise ValueError(f"a run needs at least one step, got {total_steps}")
    warmup = int(round(total_steps * _warmup_share(train_cfg)))
    return StepPlan(total_steps=total_steps, warmup_steps=warmup, iters_per_epoch=iters_per_epoch, source=source,
                    time_budget_s=float(train_cfg.time_budget_s), **measured)


def steps_for_budget(budget_s: float, step_s: float, spent_s: float = 0.0, min_steps: int = 1) -> int:
    """Whole steps of ``step_s`` seconds that fit in what is left of ``budget_s`` after ``spent_s``.

    Never fewer than ``min_steps`` (a budget smaller than the set-up still trains that many steps, so the
    run produces weights; the plan records the measured figures that show why it overran).
    """
    if budget_s <= 0:
        raise ValueError(f"time budget must be positive, got {budget_s}")
    if not step_s > 0 or not math.isfinite(step_s):
        raise ValueError(f"measured step time must be a positive number of seconds, got {step_s}")
    left = budget_s - max(0.0, spent_s)
    return max(int(min_steps), int(math.floor(left / step_s + 1e-9)))


def time_steps(step: Callable[[int], Any], n: int = CALIBRATION_STEPS, skip: int = CALIBRATION_SKIP,
               clock: Callable[[], float] = time.perf_counter) -> float:
    """Run ``step(i)`` for i = 0 … n-1 and return the mean seconds per step of the steps after the first
    ``skip`` (the throughput a long run sees, data loading included when ``step`` loads its batch)."""
    if n <= skip:
        raise ValueError(f"need more steps ({n}) than skipped warm-up steps ({skip})")
    for i in range(skip):
        step(i)
    t0 = clock()
    for i in range(skip, n):
        step(i)
    return (clock() - t0) / (n - skip)
