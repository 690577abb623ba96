"""The effective batch of a training run: the images of one optimisation step over all processes,
``world_size × train.batch_size × train.accumulate`` (docs/training.md#effective-batch).

``train.batch_size`` is the micro-batch of one process: what one forward pass sees, so BatchNorm's statistics are
taken over it, as over the release's per-GPU batch of 20. ``train.accumulate`` micro-batches are summed into one
step (:meth:`~.job.TrainingJob.step`; under DDP the gradients are synchronised once, on the last of them). The
paper's effective batch is stated once, by ``train.paper_effective_batch`` of the paper's configs (80: 4 GPUs ×
20 images; 0 for a setting that has no paper value, such as the demo). A run whose effective batch differs says
so when it starts (one line), in its metrics and in the dry run; its learning rate is scaled by effective/paper
only with ``train.lr_scaling=linear`` (default ``none``: the configured ``train.lr`` as it is).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Optional

from ...config import ConfigError, TrainConfig

__all__ = ["EffectiveBatch", "effective_batch", "LR_SCALINGS"]

LR_SCALINGS = ("none", "linear")


@dataclass(frozen=True)
class EffectiveBatch:
    """How many images one optimisation step sees, and how that compares with the paper's setting."""

    world_size: int
    batch_size: int  # per process and micro-step: BatchNorm's statistics are over these
    accumulate: int
    paper: int  # the paper's effective batch (0: the config states none)
    lr_scaling: str = "none"

    @property
    def effective(self) -> int:
        return self.world_size * self.batch_size * self.accumulate

    @property
    def matches_paper(self) -> Optional[bool]:
        """True / False, or None when the config states no paper value."""
        return None if self.paper <= 0 else self.effective == self.paper

    @property
    def lr_factor(self) -> float:
        """What ``train.lr`` is multiplied by: effective/paper with ``lr_scaling=linear``, else 1."""
        if self.lr_scaling == "linear" and self.paper > 0:
            return self.effective / self.paper
        return 1.0

    def lr(self, base_lr: float) -> float:
        """The peak learning rate the run uses."""
        return base_lr * self.lr_factor

    def describe(self) -> str:
        procs = "process" if self.world_size == 1 else "processes"
        return (f"{self.effective} = {self.world_size} {procs} x {self.batch_size} images x accumulate "
                f"{self.accumulate}")

    def suggestion(self) -> str:
        """The setting that gives the paper's effective batch on this many processes, when there is one."""
        per_micro_step = self.world_size * self.batch_size
        if self.paper > 0 and self.paper % per_micro_step == 0:
            return f"train.accumulate={self.paper // per_micro_step} gives the paper's {self.paper} here"
        for bs in range(self.batch_size, 0, -1):  # the largest micro-batch that divides it, never a larger one
            if self.paper % (self.world_size * bs) == 0:
                return (f"train.batch_size={bs} train.accumulate={self.paper // (self.world_size * bs)} gives the "
                        f"paper's {self.paper} here")
        return f"no whole accumulation gives {self.paper} on {self.world_size} processes"

    def warning(self, base_lr: float) -> Optional[str]:
        """One line when the effective batch is not the paper's (None when it is, or when there is no paper
        value)."""
        if self.matches_paper is not False:
            return None
        if self.lr_scaling == "linear":
            lr = f"learning rate scaled linearly to {self.lr(base_lr):g} (train.lr {base_lr:g} x {self.lr_factor:g})"
        else:
            lr = (f"learning rate {base_lr:g} as tuned for {self.paper} (train.lr_scaling=linear would scale it to "
                  f"{base_lr * self.effective / self.paper:g})")
        return (f"effective batch {self.describe()} is not the paper's {self.paper}; {lr}; "
                f"{self.suggestion()}")

    def to_dict(self) -> dict[str, Any]:
        """What a run records (metrics, weights files, the dry run)."""
        return {**asdict(self), "effective": self.effective, "matches_paper": self.matches_paper,
                "lr_factor": self.lr_factor}


def effective_batch(tc: TrainConfig, world_size: int = 1) -> EffectiveBatch:
    """The effective batch of a run of ``tc`` on ``world_size`` processes; a bad ``train.accumulate``,
    ``train.paper_effective_batch`` or ``train.lr_scaling`` is a :class:`~boir_core.config.ConfigError` naming
    the key."""
    if not isinstance(tc.accumulate, int) or tc.accumulate < 1:
        raise ConfigError(f"train.accumulate must be a whole number >= 1 (micro-batches per step), got "
                          f"{tc.accumulate!r}")
    if tc.batch_size < 1:
        raise ConfigError(f"train.batch_size must be >= 1, got {tc.batch_size!r}")
    if tc.paper_effective_batch < 0:
        raise ConfigError(f"train.paper_effective_batch must be >= 0 (0: no paper value), got "
                          f"{tc.paper_effective_batch!r}")
    if tc.lr_scaling not in LR_SCALINGS:
        raise ConfigError(f"train.lr_scaling must be one of {list(LR_SCALINGS)}, got {tc.lr_scaling!r}")
    if tc.lr_scaling == "linear" and tc.paper_effective_batch <= 0:
        raise ConfigError("train.lr_scaling=linear scales by effective/paper batch, but this config states no "
                          "train.paper_effective_batch (0); set it, or train.lr_scaling=none")
    return EffectiveBatch(world_size, tc.batch_size, tc.accumulate, tc.paper_effective_batch, tc.lr_scaling)
