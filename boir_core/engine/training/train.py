"""The training loop: AdamW, warm-up + cosine per iteration, AMP, gradient clipping, DDP, checkpoints.

One call, :func:`train`, runs a whole training job from a :class:`~boir_core.config.Config` into a run
folder::

    <run_dir>/config.yaml         the resolved config (written first)
    <run_dir>/schedule.json       the run's length: steps, warm-up, and the measured step time of a
                                  time-budgeted run (``train.time_budget_s``; see :mod:`.budget`)
    <run_dir>/metrics.jsonl       one JSON line per logged iteration and per epoch
    <run_dir>/checkpoints/last.pt full training state (atomic), every ``train.save_every`` epochs and at the end
    <run_dir>/final.pt            the trained weights alone (the kit's own checkpoint format)
    <run_dir>/tb/                 TensorBoard events, when tensorboard is installed
    <run_dir>/train.lock          while a training writes into the folder (:mod:`.runlock`)

Calling :func:`train` again on the same run folder resumes from ``checkpoints/last.pt``. The data order
and augmentation of every epoch depend only on (seed, epoch, rank), so a resumed run reproduces the losses
of an uninterrupted one from the checkpoint on.

Faults never cost the run: a second training aimed at the same folder is refused (:class:`RunLockedError`);
Ctrl-C (SIGINT) saves a checkpoint at the next step boundary, says how to resume and raises
``KeyboardInterrupt``; a step with a non-finite loss, gradient norm or BatchNorm statistics is undone and
skipped, and a training state holding inf/NaN is never saved (the last finite ``last.pt`` stays).

Effective batch (:mod:`.effective_batch`): a step sums ``train.accumulate`` micro-batches of ``train.batch_size``
images per process; a run whose processes x batch x accumulate is not the paper's (``train.paper_effective_batch``)
prints one ``[train] WARNING`` line at its start and records both in every epoch line of ``metrics.jsonl`` and in
its weights files; ``train.lr_scaling=linear`` scales ``train.lr`` by effective / paper.

Precision: fp32 on CPU by default; on CUDA ``amp: auto`` means fp16 autocast with a GradScaler; ``bf16``
works on both; ``fast`` adds bf16 on CPUs with native bf16 (AMX / AVX512-BF16), which with
``channels_last`` trains the CPU demo about 1.5x faster than fp32. Every loss is computed in fp32 (the loss
functions cast their inputs).

The loop lives here: what it steps is a :class:`~.job.TrainingJob` (:mod:`.job`: data, network, optimiser,
precision, the one optimisation step, and the run's plan, decided once). Its other parts have their own
modules: :mod:`.precision` (``train.amp``), :mod:`.optimization` (AdamW, GradScaler), :mod:`.schedule`
(warm-up + cosine), :mod:`.seeding` (RNGs and each epoch's data order), :mod:`.resume_check` (which config
changes refuse a resume), :mod:`.metrics_log`, :mod:`.budget` (a run's length), :mod:`.checkpointing`,
:mod:`.distributed`, :mod:`.runlock` (one training per run folder).
"""
from __future__ import annotations

import math
import os
import shlex
import shutil
import signal
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from tqdm.auto import tqdm

from ...config import Config, upgrade_config_dict
from ...io import atomic_write_json
from ...model import save_checkpoint
from ..distributed import DistInfo, broadcast_object, cleanup_distributed, init_distributed
from .budget import StepPlan
from .checkpointing import TrainingParts, load_training_state, rng_state, save_training_state, set_rng_state
from .job import StepResult, TrainingJob, build_job, images_in, move_batch
from .metrics_log import MetricsLog
from .precision import amp_settings, cpu_has_native_bf16  # noqa: F401  (re-exported)
from .resume_check import RESUME_FREE_KEYS, ResumeMismatchError, config_changes, with_defaults  # noqa: F401
from .runlock import RunLock, RunLockedError
from .schedule import set_lr, warmup_cosine_schedule
from .seeding import seed_everything

__all__ = ["train", "TrainHooks", "TrainSummary", "TrainingInterrupted", "NonFiniteLossError",
           "NonFiniteStateError", "RunLockedError", "ResumeMismatchError", "config_changes", "seed_everything",
           "amp_settings", "cpu_has_native_bf16", "move_batch"]


class TrainingInterrupted(RuntimeError):
    """Raised by the ``stop_after_iters`` hook (:class:`TrainHooks`; used by tests to simulate a killed run)."""


class NonFiniteLossError(RuntimeError):
    """Too many non-finite steps in a row."""


class NonFiniteStateError(NonFiniteLossError):
    """The training state (weights, BatchNorm statistics, optimizer moments) holds inf/NaN: it is not saved."""


@dataclass
class TrainSummary:
    run_dir: Path
    epochs_run: int = 0
    iterations: int = 0
    losses: list[float] = field(default_factory=list)  # total loss of every iteration run by this call
    skipped_nonfinite: int = 0
    resumed_from_epoch: int | None = None
    seconds: float = 0.0
    final_weights: Path | None = None
    total_steps: int = 0  # steps of the whole run (its plan), not only of this call
    step_seconds: float | None = None  # measured by a time-budgeted run before its first step
    plan: dict[str, Any] | None = None  # as in <run_dir>/schedule.json
    batch: dict[str, Any] | None = None  # the effective batch and the paper's (EffectiveBatch.to_dict)
    lr: float | None = None  # the peak learning rate used (train.lr, scaled only with train.lr_scaling=linear)


@dataclass(frozen=True)
class TrainHooks:
    """Ways a caller reaches into a :func:`train` call; none changes what the run draws or learns.

    ``on_checkpoint(step, path)`` is called on the main process after each end-of-epoch checkpoint is written
    (``path`` = ``checkpoints/last.pt``, ``step`` = the steps it holds), e.g. to score the run as it learns
    (the demo does); what it does is not part of the run (it must not touch the model or the RNGs' use).

    ``stop_after_iters`` raises :class:`TrainingInterrupted` after that many iterations of the call, as a
    kill would (tests use it to check auto-resume).

    ``clock`` (seconds, monotonic) sizes a time-budgeted run (``train.time_budget_s``): the steps it times and
    the set-up spent before them (tests pass a fake one).
    """

    on_checkpoint: Callable[[int, Path], None] | None = None
    stop_after_iters: int | None = None
    clock: Callable[[], float] = time.perf_counter


@dataclass
class _Call:
    """How :func:`train` was called: its options and hooks, and when it started (wall time, and the reading of
    the hooks' ``clock`` that sizes a time-budgeted run)."""

    resume: bool
    progress: bool
    hooks: TrainHooks
    started: float
    wall_start: float


def train(cfg: Config, run_dir: str | os.PathLike, *, resume: bool | str = True, progress: bool = True,
          hooks: TrainHooks = TrainHooks()) -> TrainSummary:
    """Train ``cfg`` into ``run_dir`` (resuming from ``run_dir/checkpoints/last.pt`` when present).

    ``resume``: True resumes and refuses (:class:`ResumeMismatchError`) a checkpoint trained with another
    config; ``"or-restart"`` starts over in that case (notebooks, the demo, cached demo runs); False
    always starts over.

    ``progress``: a progress bar per epoch and a line per epoch (and the time budget's plan) on the terminal.

    ``hooks`` (:class:`TrainHooks`): a callback after each checkpoint (``on_checkpoint``), a simulated kill
    (``stop_after_iters``) and the clock that sizes a time-budgeted run; none by default (the real clock).
    """
    started, wall_start = hooks.clock(), time.time()
    run_dir = Path(run_dir)
    if resume not in (True, False, "or-restart"):
        raise ValueError(f"resume must be True, False or 'or-restart', got {resume!r}")
    call = _Call(bool(resume), progress, hooks, started, wall_start)
    dinfo = init_distributed(cfg.train.device)
    lock = None
    try:
        lock = _lock_run_dir(run_dir, dinfo)
        try:
            return _train(cfg, run_dir, dinfo, call)
        except ResumeMismatchError as e:
            if resume != "or-restart":
                raise
            if dinfo.is_main:
                print(f"[train] {e}\n[train] starting over in {run_dir}")
            call.resume = False
            return _train(cfg, run_dir, dinfo, call)
    finally:
        if lock is not None:
            lock.release()
        if dinfo.distributed:
            cleanup_distributed()


def _lock_run_dir(run_dir: Path, dinfo: DistInfo) -> RunLock | None:
    """Rank 0 locks the run folder; under DDP every rank learns whether it could (and stops if not)."""
    lock, error = None, None
    if dinfo.is_main:
        try:
            lock = RunLock(run_dir).acquire()
        except RunLockedError as e:
            error = str(e)
    if dinfo.distributed:
        error = broadcast_object(error)
    if error is not None:
        raise RunLockedError(error)
    return lock


class _StopRequest:
    """Ctrl-C (SIGINT) during training: remembered, and acted on at the next step boundary.

    Installed only in the main thread (Python delivers signals there). A second Ctrl-C gets the previous
    handler back, i.e. stops at once, without a checkpoint.
    """

    def __init__(self):
        self.requested = False
        self._previous = None
        self._installed = False

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        previous = signal.getsignal(signal.SIGINT)
        if previous == signal.SIG_IGN:  # whoever started us chose to ignore Ctrl-C: keep it so
            return
        self._previous = previous
        signal.signal(signal.SIGINT, self._handler)
        self._installed = True

    def _handler(self, signum, frame) -> None:  # no printing here: the main thread may be inside a print
        self.requested = True
        previous = self._previous if self._previous is not None else signal.default_int_handler
        signal.signal(signal.SIGINT, previous)

    def restore(self) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous if self._previous is not None else signal.default_int_handler)
            self._installed = False


def _resume_command(run_dir: Path) -> str:
    """How to resume: the command that was run (without ``--no-resume``), or the call to repeat."""
    argv = list(sys.argv)
    prog = Path(argv[0]).name if argv else ""
    rest = [a for a in argv[1:] if a != "--no-resume"]
    if prog == "__main__.py" and Path(argv[0]).parent.name == "boir_core":
        python = Path(sys.executable).name
        if shutil.which(python) is None or Path(shutil.which(python)).resolve() != Path(sys.executable).resolve():
            python = sys.executable  # not the `python` on PATH: name this interpreter
        cmd = shlex.join([python, "-m", "boir_core", *rest])
    elif prog in ("boir", "boir_core"):
        cmd = shlex.join([prog, *rest])
    else:
        return f"call train() again with the same config and run folder {run_dir} (it resumes from the checkpoint)"
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return f"run the same torchrun command again (each process runs: {cmd})"
    return f"run the same command again: {cmd}"


def _nonfinite_state(core: torch.nn.Module, optimizer) -> tuple[list[str], int]:
    """Names of the float tensors of the training state (weights, buffers, optimizer state) holding inf/NaN,
    and how many tensors were checked."""
    bad, n = [], 0
    for k, v in core.state_dict().items():
        if torch.is_tensor(v) and v.is_floating_point():
            n += 1
            if not bool(torch.isfinite(v).all()):
                bad.append(k)
    names = {id(p): k for k, p in core.named_parameters()}
    for p, st in optimizer.state.items():
        for k, v in st.items():
            if torch.is_tensor(v) and v.is_floating_point():
                n += 1
                if not bool(torch.isfinite(v).all()):
                    bad.append(f"optimizer {k} of {names.get(id(p), '?')}")
    return bad, n


def _train(cfg: Config, run_dir: Path, dinfo: DistInfo, call: _Call) -> TrainSummary:
    """Build the job, take up its checkpoint (or start), decide its plan, and run its epochs."""
    run = _Run(build_job(cfg, dinfo), run_dir, call)
    if call.resume and run.ckpt_path.exists():
        run.take_up(load_training_state(run.ckpt_path))
    run.plan()
    run.write_start_files()
    return run.run()


@dataclass
class _EpochTally:
    """An epoch's running figures: sums of the loss terms over its finite steps, their count, and the images it
    saw (over all processes). A checkpoint written inside the epoch carries them."""

    sums: dict[str, float] = field(default_factory=dict)
    n_ok: int = 0
    n_images: int = 0

    def in_epoch(self, done: int, loss_generator: torch.Generator) -> dict[str, Any]:
        """Where in the epoch a checkpoint is written after ``done`` steps of it."""
        return {"iters_done": done, "loss_generator": loss_generator.get_state(), "sums": dict(self.sums),
                "n_ok": self.n_ok, "n_images": self.n_images}


class _Run:
    """One call of :func:`train` on a job: where it starts (a checkpoint, or step 0), what it has done, and how
    it logs, saves and stops."""

    def __init__(self, job: TrainingJob, run_dir: Path, call: _Call):
        self.job, self.run_dir, self.call = job, run_dir, call
        self.cfg, self.tc, self.dinfo = job.cfg, job.cfg.train, job.dinfo
        self.summary = TrainSummary(run_dir=run_dir)
        self.ckpt_path = run_dir / "checkpoints" / "last.pt"
        self.start_epoch, self.global_iter, self.nonfinite_total = 0, 0, 0
        self.nonfinite_in_a_row, self.iters_this_call = 0, 0
        self.partial: dict[str, Any] | None = None  # a checkpoint written inside an epoch (Ctrl-C): where in it
        self.saved_at: tuple[int, int] | None = None  # (global step, epoch) that last.pt holds
        self.state: dict[str, Any] | None = None
        self.lrs = None
        self.log: MetricsLog | None = None
        self.stop = _StopRequest()

    # ---- start: the checkpoint, the plan, the files ------------------------------------------------------------

    def take_up(self, state: dict[str, Any]) -> None:
        """Continue from the training state of ``last.pt`` (refused when it was trained with another config)."""
        changed = config_changes(with_defaults(upgrade_config_dict(state["config"]), Config().to_dict()),
                                 self.cfg.to_dict())
        if changed:
            raise ResumeMismatchError(
                f"{self.ckpt_path} was written with a different config; resuming would mix two runs. Changed: "
                + "; ".join(changed) + ". Use another run folder, or --no-resume to start over.")
        job = self.job
        job.core.load_state_dict(state["model_state"])
        job.optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler"):
            job.scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])
        self.state = state
        self.start_epoch, self.global_iter = state["epoch"], state["global_iter"]
        self.saved_at = (self.global_iter, self.start_epoch)
        self.nonfinite_total = state["extra"].get("skipped_nonfinite", 0)
        self.partial = state["extra"].get("in_epoch") or None
        if state["extra"].get("plan"):  # a time-budgeted run keeps the length it measured at its start
            job.plan = StepPlan.from_dict(state["extra"]["plan"])
        self.summary.resumed_from_epoch = self.start_epoch
        if self.dinfo.is_main:
            where = f", step {self.partial['iters_done']} of the epoch" if self.partial else ""
            print(f"[train] resumed from {self.ckpt_path} at epoch {self.start_epoch}{where}, iteration "
                  f"{self.global_iter}")

    def plan(self) -> None:
        """The run's length (the checkpoint's, else decided now) and its learning rates (the peak ``train.lr``,
        scaled by effective / paper batch only with ``train.lr_scaling=linear``)."""
        plan = self.job.decide_plan(self.call.hooks.clock, self.call.started)
        tc, batch = self.tc, self.job.batch
        self.summary.batch, self.summary.lr = batch.to_dict(), batch.lr(tc.lr)
        self.lrs = warmup_cosine_schedule(plan.total_steps, plan.warmup_steps, batch.lr(tc.lr), tc.warmup_start_lr,
                                          tc.min_lr)
        self.summary.total_steps, self.summary.step_seconds = plan.total_steps, plan.step_seconds
        self.summary.plan = plan.to_dict()

    def write_start_files(self) -> None:
        """config.yaml and schedule.json (only now: a refused resume must leave the run folder's config as it
        was); a fresh start drops the old log, which belongs to another run."""
        if not self.dinfo.is_main:
            return
        plan, run_dir = self.job.plan, self.run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        warning = self.job.batch.warning(self.tc.lr)
        if warning is not None:  # printed whether or not progress is shown: it changes what the run means
            print(f"[train] WARNING: {warning}", flush=True)
        self.cfg.dump(run_dir / "config.yaml")
        atomic_write_json(run_dir / "schedule.json", plan.to_dict())
        if plan.source == "time_budget" and self.start_epoch == 0 and self.call.progress:
            print(f"[train] time budget {self.tc.time_budget_s:.0f} s: {plan.step_seconds:.3f} s per step measured "
                  f"on {plan.device} -> {plan.total_steps} steps (rerun exactly with "
                  f"{' '.join(plan.reproduce_overrides())})")
        if self.start_epoch == 0 and not self.partial and (run_dir / "metrics.jsonl").exists():
            (run_dir / "metrics.jsonl").unlink()

    # ---- saving and stopping ------------------------------------------------------------------------------------

    def holds(self) -> str:
        if self.saved_at is None:
            return f"no checkpoint was written ({self.ckpt_path} does not exist)"
        return f"{self.ckpt_path} holds step {self.saved_at[0]} (epoch {self.saved_at[1]}), the last finite state"

    def save(self, next_epoch: int, in_epoch: dict[str, Any] | None = None) -> None:
        """last.pt, only from a finite training state (rank 0)."""
        job = self.job
        bad, n = _nonfinite_state(job.core, job.optimizer)
        if bad:
            raise NonFiniteStateError(
                f"the training state became non-finite by step {self.global_iter} (epoch {next_epoch}): {len(bad)} "
                f"of {n} tensors hold inf/NaN ({', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''}). It was "
                f"not saved: {self.holds()}. Lower train.lr (now {self.tc.lr:g}) or check the data, then start over "
                "(--no-resume) or train into another run folder.")
        extra = {"skipped_nonfinite": self.nonfinite_total, "plan": job.plan.to_dict(), "batch": job.batch.to_dict()}
        if in_epoch is not None:
            extra["in_epoch"] = in_epoch
        save_training_state(self.ckpt_path, TrainingParts(job.core, job.optimizer, job.scaler), epoch=next_epoch,
                            global_iter=self.global_iter, config=self.cfg.to_dict(), extra=extra)
        self.saved_at = (self.global_iter, next_epoch)

    def stop_requested(self, after_step: bool) -> bool:
        """Has Ctrl-C been pressed? Under DDP every rank must agree, once per step (after it)."""
        if not self.dinfo.distributed:
            return self.stop.requested
        if not after_step:
            return False
        flag = torch.tensor([1.0 if self.stop.requested else 0.0], device=self.dinfo.device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        return bool(flag.item() > 0)

    def interrupted(self, next_epoch: int, in_epoch: dict[str, Any] | None) -> KeyboardInterrupt:
        """Ctrl-C at a step boundary: save there, say how to resume; the caller raises what this returns."""
        if self.dinfo.is_main:
            try:
                if in_epoch is not None or self.saved_at != (self.global_iter, next_epoch):  # not saved already
                    self.save(next_epoch, in_epoch)
                what = f"checkpoint saved: {self.ckpt_path}"
            except NonFiniteStateError as e:
                what = f"nothing saved: {e}"
            print(f"[train] interrupted (Ctrl-C) after step {self.global_iter} of {self.job.plan.total_steps}, "
                  f"{what}. To resume, {_resume_command(self.run_dir)}", flush=True)
        return KeyboardInterrupt(f"training interrupted after step {self.global_iter}")

    # ---- the loop -----------------------------------------------------------------------------------------------

    def run(self) -> TrainSummary:
        """Every epoch left of the plan, then the final weights."""
        self.log = MetricsLog(self.run_dir, self.dinfo.is_main)
        if self.state is not None:
            self.log.keep_until(self.global_iter)
        self.stop.install()
        try:
            for epoch in range(self.start_epoch, self.job.plan.epochs):
                self.run_epoch(epoch)
            self.summary.iterations = self.iters_this_call
            self.finish()
        finally:
            self.stop.restore()
            self.log.close()
        self.summary.seconds = time.time() - self.call.wall_start
        return self.summary

    def run_epoch(self, epoch: int) -> None:
        """One epoch (the rest of it when the checkpoint was written inside it), its log line and checkpoint."""
        job, plan = self.job, self.job.plan
        job.model.train()
        first = int(self.partial["iters_done"]) if self.partial and epoch == self.start_epoch else 0
        batches = job.batches(epoch, skip=first)
        job.loss_generator.manual_seed(self.tc.seed * 7919 + epoch)
        tally, t_epoch = _EpochTally(), time.time()
        if first:  # continue inside the epoch exactly where the checkpoint was written
            job.loss_generator.set_state(self.partial["loss_generator"])
            set_rng_state(self.state["rng"])
            tally = _EpochTally(dict(self.partial["sums"]), int(self.partial["n_ok"]), int(self.partial["n_images"]))
        n_iters = plan.iters_in_epoch(epoch)
        bar = None
        if self.call.progress and self.dinfo.is_main:
            bar = tqdm(total=n_iters, initial=first, desc=f"epoch {epoch + 1}/{plan.epochs}", leave=False,
                       disable=None)  # no bar when the output is not a terminal (logs, CI)
        for it in range(first, n_iters):
            if self.stop_requested(False):
                raise self.interrupted(epoch, tally.in_epoch(it, job.loss_generator) if it else None)
            batch = next(batches)
            if self.stop_requested(False):  # pressed while the batch was loading: the state is still step it's
                raise self.interrupted(epoch, tally.in_epoch(it, job.loss_generator) if it else None)
            self.one_step(epoch, batch, tally, bar, last_of_epoch=it == n_iters - 1)
            if it + 1 < n_iters and self.stop_requested(True):
                raise self.interrupted(epoch, tally.in_epoch(it + 1, job.loss_generator))
        if bar is not None:
            bar.close()
        self.end_epoch(epoch, tally, time.time() - t_epoch)

    def one_step(self, epoch: int, batch: dict[str, Any], tally: _EpochTally, bar, last_of_epoch: bool) -> None:
        """One step of the plan at its learning rate, counted, logged, and checked for non-finite values."""
        lr = float(self.lrs[self.global_iter])
        set_lr(self.job.optimizer, lr)
        result = self.job.step(batch)
        self.global_iter += 1
        self.iters_this_call += 1
        tally.n_images += images_in(batch) * self.dinfo.world_size
        if not result.finite:
            self.skipped(epoch, result)
        else:
            self.nonfinite_in_a_row = 0
            tally.n_ok += 1
            for k, v in result.terms.items():
                tally.sums[k] = tally.sums.get(k, 0.0) + v
            self.summary.losses.append(result.terms["total"])
        if self.dinfo.is_main and (self.global_iter % max(self.tc.log_every, 1) == 0 or last_of_epoch):
            scale = float(self.job.scaler.get_scale()) if self.job.optimization.precision.grad_scaler else 1.0
            self.log.write({"type": "iter", "epoch": epoch, "iter": self.global_iter, "lr": lr,
                            "grad_norm": result.grad_norm, "scale": scale, **result.terms})
        if bar is not None:
            bar.set_postfix(loss=f"{result.terms['total']:.4f}", lr=f"{lr:.2e}")
            bar.update(1)
        stop_after = self.call.hooks.stop_after_iters
        if stop_after is not None and self.iters_this_call >= stop_after:
            raise TrainingInterrupted(f"stopped after {self.iters_this_call} iterations (epoch {epoch})")

    def skipped(self, epoch: int, result: StepResult) -> None:
        """A skipped (non-finite) step: warned about; too many in a row stop the run."""
        self.nonfinite_in_a_row += 1
        self.nonfinite_total += 1
        self.summary.skipped_nonfinite += 1
        terms, grad_norm, tc = result.terms, result.grad_norm, self.tc
        what = ("loss" if not math.isfinite(terms["total"]) else "gradient norm"
                if not math.isfinite(grad_norm) else "BatchNorm statistics")
        warnings.warn(f"non-finite {what} at epoch {epoch}, iteration {self.global_iter}: step skipped "
                      f"({self.nonfinite_in_a_row} in a row, {self.nonfinite_total} in total)")
        if self.nonfinite_in_a_row >= tc.max_nonfinite_in_a_row:
            raise NonFiniteLossError(
                f"{self.nonfinite_in_a_row} non-finite steps in a row, the last at step {self.global_iter} "
                f"(epoch {epoch + 1}; train.max_nonfinite_in_a_row={tc.max_nonfinite_in_a_row}); last "
                f"terms: {terms}, gradient norm {grad_norm}. Nothing non-finite was saved: {self.holds()}. "
                f"Lower train.lr (now {tc.lr:g}) or check the data, then start over (--no-resume) or "
                "train into another run folder.")

    def end_epoch(self, epoch: int, tally: _EpochTally, seconds: float) -> None:
        """The epoch's log line, its checkpoint (with the ``on_checkpoint`` hook, which cannot change what the
        run draws next) and, under DDP, the ranks meeting; a Ctrl-C during the epoch stops here."""
        plan = self.job.plan
        self.summary.epochs_run += 1
        if self.dinfo.is_main:
            batch = self.job.batch
            rec = {"type": "epoch", "epoch": epoch, "iter": self.global_iter, "seconds": seconds,
                   "images_per_s": tally.n_images / max(seconds, 1e-9), "skipped_nonfinite": self.nonfinite_total,
                   "effective_batch": batch.effective, "paper_effective_batch": batch.paper or None}
            rec.update({k: v / max(tally.n_ok, 1) for k, v in tally.sums.items()})
            self.log.write(rec)
            if self.call.progress:
                print(f"[train] epoch {epoch + 1}/{plan.epochs} loss {rec.get('total', float('nan')):.4f} "
                      f"({rec['images_per_s']:.1f} img/s)")
        last = epoch + 1 == plan.epochs
        if self.dinfo.is_main and ((epoch + 1) % max(self.tc.save_every, 1) == 0 or last):
            self.save(epoch + 1)
            if self.call.hooks.on_checkpoint is not None:
                before = rng_state()
                self.call.hooks.on_checkpoint(self.global_iter, self.ckpt_path)
                set_rng_state(before)
        if self.dinfo.distributed:
            torch.distributed.barrier()
        if not last and self.stop_requested(True):
            raise self.interrupted(epoch + 1, None)

    def finish(self) -> None:
        """final.pt (rank 0), never from non-finite weights."""
        if self.dinfo.is_main:
            bad, _ = _nonfinite_state(self.job.core, self.job.optimizer)
            if bad:  # only reachable when the last epoch saved nothing (resumed at the very end of a run)
                raise NonFiniteStateError(f"the trained weights hold inf/NaN ({', '.join(bad[:3])}): "
                                          f"{self.run_dir / 'final.pt'} was not written; {self.holds()}")
            self.summary.final_weights = save_checkpoint(
                self.job.core, self.run_dir / "final.pt",
                extra={"config": self.cfg.to_dict(), "plan": self.job.plan.to_dict(),
                       "batch": self.job.batch.to_dict()})
        if self.stop.requested and self.dinfo.is_main:
            print(f"[train] Ctrl-C after the last step: the run is complete ({self.summary.final_weights})",
                  flush=True)
