"""How many steps a run takes: from its epochs, from ``train.max_steps``, or from ``train.time_budget_s``.

A run's length is fixed once, before its first real step, as a :class:`StepPlan` (total steps, warm-up
steps, where the count came from). The learning-rate schedule (warm-up + cosine) is built for that count.

- ``train.max_steps = N`` (N > 0): exactly N steps. The warm-up keeps the config's share of the run
  (``warmup_epochs / epochs``), so ``max_steps`` changes the length and nothing else about the schedule.
- ``train.time_budget_s = B`` (B > 0): the engine times a few steps on this machine
  (:meth:`boir_core.engine.training.job.TrainingJob.time_steps`; they are undone afterwards, so they leave no trace in
  the weights), then fixes ``N = (B - seconds already spent) / seconds per step`` (:func:`steps_for_budget`)
  and continues as with ``max_steps = N``. The run folder's ``schedule.json`` records N and the measured step time, so
  ``train.max_steps=N train.time_budget_s=0`` reproduces the run on any machine, step for step.
- neither: ``epochs x iterations per epoch``, warm-up ``warmup_epochs x iterations per epoch`` (as before).

The rule is one function, :func:`plan_run` (with :func:`length_source`, the part of it that needs no
measurement): train, the dry run and the demo all ask it. Seconds per step are called ``step_seconds``
everywhere, and are the *mean* of the timed steps (:func:`step_seconds_of`). Nothing here reads a clock.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Sequence

__all__ = ["StepPlan", "Measurement", "plan_run", "length_source", "steps_for_budget", "step_seconds_of",
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
    step_seconds: float | None = None  # seconds per step measured by the time-budget calibration
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
        """The plan of a ``schedule.json`` or a checkpoint, also one written before seconds per step were
        called ``step_seconds`` (then ``measured_step_s``)."""
        d = dict(d)
        if "step_seconds" not in d and "measured_step_s" in d:
            d["step_seconds"] = d["measured_step_s"]
        names = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass(frozen=True)
class Measurement:
    """What a time-budgeted run measured before its first real step: seconds per step, the seconds already
    spent since the run started (building, data, the timed steps), the steps timed, and the device."""

    step_seconds: float
    setup_s: float = 0.0
    calibration_steps: int = 0
    device: str | None = None


def _warmup_share(train_cfg) -> float:
    return min(1.0, max(0.0, train_cfg.warmup_epochs / train_cfg.epochs)) if train_cfg.epochs > 0 else 0.0


def length_source(train_cfg) -> str:
    """Where the length of ``train_cfg``'s run comes from: ``"max_steps"`` (``train.max_steps`` > 0, which wins),
    ``"time_budget"`` (``train.time_budget_s`` > 0: it must be measured, see :func:`plan_run`) or
    ``"epochs"``. Raises ``ValueError`` on a negative ``max_steps`` or budget."""
    if train_cfg.max_steps < 0:
        raise ValueError(f"train.max_steps must be >= 0 (0: use train.epochs), got {train_cfg.max_steps}")
    if train_cfg.time_budget_s < 0:
        raise ValueError(f"train.time_budget_s must be >= 0 (0: no budget), got {train_cfg.time_budget_s}")
    if train_cfg.max_steps > 0:
        return "max_steps"
    return "time_budget" if train_cfg.time_budget_s > 0 else "epochs"


def plan_run(train_cfg, iters_per_epoch: int, measured: Measurement | None = None) -> StepPlan:
    """The :class:`StepPlan` of ``train_cfg`` (a :class:`~boir_core.config.TrainConfig`): the one rule that
    decides a run's length (module docstring). A time-budgeted run needs ``measured`` (its step time);
    ``measured`` is ignored when the length comes from ``train.max_steps`` or the epochs."""
    if iters_per_epoch <= 0:
        raise ValueError(f"iters_per_epoch must be positive, got {iters_per_epoch}")
    source = length_source(train_cfg)
    if source == "epochs":
        if train_cfg.epochs <= 0:
            raise ValueError(f"train.epochs must be positive, got {train_cfg.epochs}")
        return StepPlan(total_steps=train_cfg.epochs * iters_per_epoch,
                        warmup_steps=min(train_cfg.warmup_epochs, train_cfg.epochs) * iters_per_epoch,
                        iters_per_epoch=iters_per_epoch, source="epochs")
    extra: dict[str, Any] = {}
    if source == "max_steps":
        total_steps = train_cfg.max_steps
    elif measured is None:
        raise ValueError(f"train.time_budget_s={train_cfg.time_budget_s:g}: the run's length needs its measured "
                         "seconds per step (TrainingJob.time_steps)")
    else:
        total_steps = steps_for_budget(train_cfg.time_budget_s, measured.step_seconds, measured.setup_s)
        extra = asdict(measured)
    warmup = int(round(total_steps * _warmup_share(train_cfg)))
    return StepPlan(total_steps=int(total_steps), warmup_steps=warmup, iters_per_epoch=iters_per_epoch,
                    source=source, time_budget_s=float(train_cfg.time_budget_s), **extra)


def steps_for_budget(budget_s: float, step_seconds: float, spent_s: float = 0.0, min_steps: int = 1) -> int:
    """Whole steps of ``step_seconds`` seconds that fit in what is left of ``budget_s`` after ``spent_s``.

    Never fewer than ``min_steps`` (a budget smaller than the set-up still trains that many steps, so the
    run produces weights; the plan records the measured figures that show why it overran).
    """
    if budget_s <= 0:
        raise ValueError(f"time budget must be positive, got {budget_s}")
    if not step_seconds > 0 or not math.isfinite(step_seconds):
        raise ValueError(f"measured step time must be a positive number of seconds, got {step_seconds}")
    left = budget_s - max(0.0, spent_s)
    return max(int(min_steps), int(math.floor(left / step_seconds + 1e-9)))


def step_seconds_of(durations: Sequence[float], skip: int = CALIBRATION_SKIP) -> float:
    """Seconds per step from the durations of consecutive steps: the *mean* of those after the first ``skip``.

    The mean, not the median: a budget is spent by the sum of the steps, and ``N`` steps take ``N`` x the mean
    (occasional slow steps, a data-loading stall or a garbage collection, belong to what a long run pays)."""
    timed = list(durations)[skip:]
    if not timed:
        raise ValueError(f"need more steps ({len(durations)}) than skipped warm-up steps ({skip})")
    return sum(timed) / len(timed)
