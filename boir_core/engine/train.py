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

Precision: fp32 on CPU by default; on CUDA ``amp: auto`` means fp16 autocast with a GradScaler; ``bf16``
works on both; ``fast`` adds bf16 on CPUs with native bf16 (AMX / AVX512-BF16), which with
``channels_last`` trains the CPU demo about 1.5x faster than fp32. Every loss is computed in fp32 (the loss
functions cast their inputs).

The loop and its step live here; its parts have their own modules: :mod:`.precision` (``train.amp``),
:mod:`.optimization` (AdamW, GradScaler), :mod:`.schedule` (warm-up + cosine), :mod:`.seeding` (RNGs and
each epoch's data order), :mod:`.resume_check` (which config changes refuse a resume), :mod:`.metrics_log`,
:mod:`.budget` (time-budgeted runs), :mod:`.checkpointing`, :mod:`.distributed`, :mod:`.runlock` (one
training per run folder).
"""
from __future__ import annotations

import contextlib
import copy
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
from torch.utils.data import DataLoader, DistributedSampler
from tqdm.auto import tqdm

from .. import losses as loss_fns  # total_loss through the package (tests stand in for it there)
from ..config import Config, upgrade_config_dict
from ..data import KeypointDataset, collate_train
from ..io import atomic_write_json
from ..model import build_model, save_checkpoint
from .budget import CALIBRATION_STEPS, StepPlan, plan_from_config, sized_by_time_budget, steps_for_budget, time_steps
from .checkpointing import load_training_state, rng_state, save_training_state, set_rng_state
from .distributed import DistInfo, all_reduce_mean, broadcast_object, cleanup_distributed, device_name, init_distributed
from .metrics_log import MetricsLog
from .optimization import build_optimization
from .precision import amp_settings, cpu_has_native_bf16  # noqa: F401  (re-exported)
from .resume_check import RESUME_FREE_KEYS, ResumeMismatchError, config_changes, with_defaults  # noqa: F401
from .runlock import RunLock, RunLockedError
from .schedule import set_lr, warmup_cosine_schedule
from .seeding import ResumableEpochSampler, epoch_batches, seed_everything, seed_worker

__all__ = ["train", "TrainSummary", "TrainingInterrupted", "NonFiniteLossError", "NonFiniteStateError",
           "RunLockedError", "ResumeMismatchError", "config_changes", "seed_everything",
           "amp_settings", "cpu_has_native_bf16", "move_batch"]


class TrainingInterrupted(RuntimeError):
    """Raised by the ``stop_after_iters`` hook (used by tests to simulate a killed run)."""


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


#: The clock that sizes a time-budgeted run (tests replace it with a fake one).
_budget_clock = time.perf_counter


def move_batch(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    non_blocking = device.type == "cuda"
    return {k: (v.to(device, non_blocking=non_blocking) if torch.is_tensor(v) else v) for k, v in batch.items()}


def _build_loader(cfg: Config, dinfo: DistInfo):
    dataset = KeypointDataset.from_config(cfg, split=cfg.data.train_split, train=True)
    if len(dataset) == 0:
        raise RuntimeError(f"training set {cfg.data.root} ({cfg.data.train_split}) has no usable images")
    # (epoch, index) pairs: the workers stay alive across epochs and still follow the epoch's augmentation
    sampler = ResumableEpochSampler(DistributedSampler(dataset, num_replicas=dinfo.world_size, rank=dinfo.rank,
                                                       shuffle=True, seed=cfg.train.seed, drop_last=False))
    # A final batch of one image would break BatchNorm on ASPP's image-pool branch
    # (docs/release_vs_paper.md#release-quirks): drop incomplete batches whenever at least one full batch exists.
    drop_last = len(sampler) >= cfg.train.batch_size
    gen = torch.Generator()
    loader = DataLoader(dataset, batch_size=cfg.train.batch_size, sampler=sampler, num_workers=cfg.data.workers,
                        collate_fn=collate_train, worker_init_fn=seed_worker, generator=gen,
                        pin_memory=dinfo.device.type == "cuda", drop_last=drop_last,
                        persistent_workers=cfg.data.workers > 0)
    return dataset, sampler, loader, gen


def _build_model(cfg: Config, dinfo: DistInfo) -> tuple[torch.nn.Module, torch.nn.Module]:
    model = build_model(cfg, train=True)  # + ImageNet weights (model.pretrained) or train.transfer_from
    if dinfo.is_main and model.init_report is not None:
        print(f"[train] initialisation: {model.init_report}")
    model.to(dinfo.device)
    if cfg.train.channels_last:  # NHWC: faster convolutions on recent GPUs and on CPUs with oneDNN
        model = model.to(memory_format=torch.channels_last)
    if dinfo.distributed and cfg.train.sync_bn:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    core = model
    if dinfo.distributed:
        ids = [dinfo.device.index] if dinfo.device.type == "cuda" else None
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
    if cfg.train.compile and dinfo.device.type == "cuda":
        model = torch.compile(model)
    return model, core


def train(cfg: Config, run_dir: str | os.PathLike, *, resume: bool | str = True, progress: bool = True,
          stop_after_iters: int | None = None,
          on_checkpoint: Callable[[int, Path], None] | None = None) -> TrainSummary:
    """Train ``cfg`` into ``run_dir`` (resuming from ``run_dir/checkpoints/last.pt`` when present).

    ``resume``: True resumes and refuses (:class:`ResumeMismatchError`) a checkpoint trained with another
    config; ``"or-restart"`` starts over in that case (notebooks, the demo, cached demo runs); False
    always starts over.

    ``stop_after_iters`` raises :class:`TrainingInterrupted` after that many iterations of this call, as a
    kill would (tests use it to check auto-resume).

    ``on_checkpoint(step, path)`` is called on the main process after each end-of-epoch checkpoint is written
    (``path`` = ``checkpoints/last.pt``, ``step`` = the steps it holds), e.g. to score the run as it learns
    (the demo does); what it does is not part of the run (it must not touch the model or the RNGs' use).
    """
    t_start = time.time()
    t_budget = _budget_clock()
    run_dir = Path(run_dir)
    if resume not in (True, False, "or-restart"):
        raise ValueError(f"resume must be True, False or 'or-restart', got {resume!r}")
    dinfo = init_distributed(cfg.train.device)
    lock = None
    try:
        lock = _lock_run_dir(run_dir, dinfo)
        try:
            return _train(cfg, run_dir, dinfo, bool(resume), progress, stop_after_iters, t_start, t_budget,
                          on_checkpoint)
        except ResumeMismatchError as e:
            if resume != "or-restart":
                raise
            if dinfo.is_main:
                print(f"[train] {e}\n[train] starting over in {run_dir}")
            return _train(cfg, run_dir, dinfo, False, progress, stop_after_iters, t_start, t_budget, on_checkpoint)
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


def _time_budget_plan(cfg, model, core, optimizer, scaler, loader, sampler, gen, dinfo, use_amp, amp_dtype,
                      iters_per_epoch: int, t_budget: float) -> StepPlan:
    """Time a few real steps, undo them (weights, optimizer, RNGs), and size the run to the budget."""
    tc = cfg.train
    saved = (copy.deepcopy(core.state_dict()), copy.deepcopy(optimizer.state_dict()),
             copy.deepcopy(scaler.state_dict()), rng_state())
    batches = epoch_batches(loader, sampler, gen, tc.seed, 0, dinfo.rank)
    loss_gen = torch.Generator(device="cpu").manual_seed(tc.seed)
    set_lr(optimizer, tc.warmup_start_lr)
    model.train()

    def one(_i):
        nonlocal batches
        try:
            batch = next(batches)
        except StopIteration:  # a training set of fewer batches than the timed steps
            batches = epoch_batches(loader, sampler, gen, tc.seed, 0, dinfo.rank)
            batch = next(batches)
        _step(model, optimizer, scaler, batch, cfg, dinfo, use_amp, amp_dtype, loss_gen)

    step_s = time_steps(one, clock=_budget_clock)
    if dinfo.distributed:  # every rank runs the same number of steps: size them by the slowest
        t = torch.tensor([step_s], dtype=torch.float64, device=dinfo.device)
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
        step_s = float(t.item())
    core.load_state_dict(saved[0])
    optimizer.load_state_dict(saved[1])
    scaler.load_state_dict(saved[2])
    set_rng_state(saved[3])
    spent = _budget_clock() - t_budget
    steps = steps_for_budget(tc.time_budget_s, step_s, spent)
    return plan_from_config(tc, iters_per_epoch, total_steps=steps, measured_step_s=step_s,
                            calibration_steps=CALIBRATION_STEPS, setup_s=spent, device=device_name(dinfo.device))


def _train(cfg, run_dir, dinfo, resume, progress, stop_after_iters, t_start, t_budget,
           on_checkpoint=None) -> TrainSummary:
    tc = cfg.train
    seed_everything(tc.seed + dinfo.rank)
    _, sampler, loader, gen = _build_loader(cfg, dinfo)
    model, core = _build_model(cfg, dinfo)
    optimizer, scaler, use_amp, amp_dtype, use_scaler, iters_per_epoch = build_optimization(cfg, model, dinfo, loader)

    summary = TrainSummary(run_dir=run_dir)
    start_epoch, global_iter, nonfinite_total = 0, 0, 0
    partial: dict[str, Any] | None = None  # a checkpoint written inside an epoch (Ctrl-C): where in it
    saved_at: tuple[int, int] | None = None  # (global step, epoch) that last.pt holds
    state = None
    plan: StepPlan | None = None
    ckpt_path = run_dir / "checkpoints" / "last.pt"
    if resume and ckpt_path.exists():
        state = load_training_state(ckpt_path)
        changed = config_changes(with_defaults(upgrade_config_dict(state["config"]), Config().to_dict()),
                                 cfg.to_dict())
        if changed:
            raise ResumeMismatchError(
                f"{ckpt_path} was written with a different config; resuming would mix two runs. Changed: "
                + "; ".join(changed) + ". Use another run folder, or --no-resume to start over.")
        core.load_state_dict(state["model_state"])
        optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])
        start_epoch, global_iter = state["epoch"], state["global_iter"]
        saved_at = (global_iter, start_epoch)
        nonfinite_total = state["extra"].get("skipped_nonfinite", 0)
        partial = state["extra"].get("in_epoch") or None
        if state["extra"].get("plan"):  # a time-budgeted run keeps the length it measured at its start
            plan = StepPlan.from_dict(state["extra"]["plan"])
        summary.resumed_from_epoch = start_epoch
        if dinfo.is_main:
            where = f", step {partial['iters_done']} of the epoch" if partial else ""
            print(f"[train] resumed from {ckpt_path} at epoch {start_epoch}{where}, iteration {global_iter}")

    if plan is None:
        if sized_by_time_budget(tc):
            plan = _time_budget_plan(cfg, model, core, optimizer, scaler, loader, sampler, gen, dinfo, use_amp,
                                     amp_dtype, iters_per_epoch, t_budget)
        else:
            plan = plan_from_config(tc, iters_per_epoch)
    lrs = warmup_cosine_schedule(plan.total_steps, plan.warmup_steps, tc.lr, tc.warmup_start_lr, tc.min_lr)
    summary.total_steps, summary.step_seconds, summary.plan = plan.total_steps, plan.measured_step_s, plan.to_dict()

    if dinfo.is_main:  # only now: a refused resume must leave the run folder's config as it was
        run_dir.mkdir(parents=True, exist_ok=True)
        cfg.dump(run_dir / "config.yaml")
        atomic_write_json(run_dir / "schedule.json", plan.to_dict())
        if plan.source == "time_budget" and start_epoch == 0 and progress:
            print(f"[train] time budget {tc.time_budget_s:.0f} s: {plan.measured_step_s:.3f} s per step measured "
                  f"on {plan.device} -> {plan.total_steps} steps (rerun exactly with "
                  f"{' '.join(plan.reproduce_overrides())})")
        if start_epoch == 0 and not partial and (run_dir / "metrics.jsonl").exists():
            (run_dir / "metrics.jsonl").unlink()  # a fresh start: the old log belongs to another run

    def holds() -> str:
        if saved_at is None:
            return f"no checkpoint was written ({ckpt_path} does not exist)"
        return f"{ckpt_path} holds step {saved_at[0]} (epoch {saved_at[1]}), the last finite state"

    def save(next_epoch: int, in_epoch: dict[str, Any] | None = None) -> None:
        """last.pt, only from a finite training state (rank 0)."""
        nonlocal saved_at
        bad, n = _nonfinite_state(core, optimizer)
        if bad:
            raise NonFiniteStateError(
                f"the training state became non-finite by step {global_iter} (epoch {next_epoch}): {len(bad)} "
                f"of {n} tensors hold inf/NaN ({', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''}). It was "
                f"not saved: {holds()}. Lower train.lr (now {tc.lr:g}) or check the data, then start over "
                "(--no-resume) or train into another run folder.")
        extra = {"skipped_nonfinite": nonfinite_total, "plan": plan.to_dict()}
        if in_epoch is not None:
            extra["in_epoch"] = in_epoch
        save_training_state(ckpt_path, model=core, optimizer=optimizer, scaler=scaler, epoch=next_epoch,
                            global_iter=global_iter, config=cfg.to_dict(), extra=extra)
        saved_at = (global_iter, next_epoch)

    def stop_requested(after_step: bool) -> bool:
        """Has Ctrl-C been pressed? Under DDP every rank must agree, once per step (after it)."""
        if not dinfo.distributed:
            return stop.requested
        if not after_step:
            return False
        flag = torch.tensor([1.0 if stop.requested else 0.0], device=dinfo.device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        return bool(flag.item() > 0)

    def interrupted(next_epoch: int, in_epoch: dict[str, Any] | None) -> KeyboardInterrupt:
        """Ctrl-C at a step boundary: save there, say how to resume; the caller raises what this returns."""
        if dinfo.is_main:
            try:
                if in_epoch is not None or saved_at != (global_iter, next_epoch):  # not saved already
                    save(next_epoch, in_epoch)
                what = f"checkpoint saved: {ckpt_path}"
            except NonFiniteStateError as e:
                what = f"nothing saved: {e}"
            print(f"[train] interrupted (Ctrl-C) after step {global_iter} of {plan.total_steps}, {what}. To resume, "
                  f"{_resume_command(run_dir)}", flush=True)
        return KeyboardInterrupt(f"training interrupted after step {global_iter}")

    log = MetricsLog(run_dir, dinfo.is_main)
    if state is not None:
        log.keep_until(global_iter)
    loss_gen = torch.Generator(device="cpu")
    nonfinite_in_a_row = 0
    iters_this_call = 0
    stop = _StopRequest()
    stop.install()
    try:
        for epoch in range(start_epoch, plan.epochs):
            model.train()
            first = int(partial["iters_done"]) if partial and epoch == start_epoch else 0
            batches = epoch_batches(loader, sampler, gen, tc.seed, epoch, dinfo.rank, skip_batches=first)
            loss_gen.manual_seed(tc.seed * 7919 + epoch)
            sums: dict[str, float] = {}
            n_ok, t_epoch, n_images = 0, time.time(), 0
            if first:  # continue inside the epoch exactly where the checkpoint was written
                loss_gen.set_state(partial["loss_generator"])
                set_rng_state(state["rng"])
                sums, n_ok, n_images = dict(partial["sums"]), int(partial["n_ok"]), int(partial["n_images"])
            bar = None
            n_iters = plan.iters_in_epoch(epoch)
            if progress and dinfo.is_main:
                bar = tqdm(total=n_iters, initial=first, desc=f"epoch {epoch + 1}/{plan.epochs}", leave=False,
                           disable=None)  # no bar when the output is not a terminal (logs, CI)

            def in_epoch(done: int) -> dict[str, Any]:
                return {"iters_done": done, "loss_generator": loss_gen.get_state(), "sums": dict(sums),
                        "n_ok": n_ok, "n_images": n_images}

            for it in range(first, n_iters):
                if stop_requested(False):
                    raise interrupted(epoch, in_epoch(it) if it else None)
                batch = next(batches)
                if stop_requested(False):  # pressed while the batch was loading: the state is still step it's
                    raise interrupted(epoch, in_epoch(it) if it else None)
                lr = float(lrs[global_iter])
                set_lr(optimizer, lr)
                terms, grad_norm, finite = _step(model, optimizer, scaler, batch, cfg, dinfo, use_amp, amp_dtype,
                                                 loss_gen)
                global_iter += 1
                iters_this_call += 1
                n_images += batch["image"].shape[0] * dinfo.world_size
                if not finite:
                    nonfinite_in_a_row += 1
                    nonfinite_total += 1
                    summary.skipped_nonfinite += 1
                    what = ("loss" if not math.isfinite(terms["total"]) else "gradient norm"
                            if not math.isfinite(grad_norm) else "BatchNorm statistics")
                    warnings.warn(f"non-finite {what} at epoch {epoch}, iteration {global_iter}: step skipped "
                                  f"({nonfinite_in_a_row} in a row, {nonfinite_total} in total)")
                    if nonfinite_in_a_row >= tc.max_nonfinite_in_a_row:
                        raise NonFiniteLossError(
                            f"{nonfinite_in_a_row} non-finite steps in a row, the last at step {global_iter} "
                            f"(epoch {epoch + 1}; train.max_nonfinite_in_a_row={tc.max_nonfinite_in_a_row}); last "
                            f"terms: {terms}, gradient norm {grad_norm}. Nothing non-finite was saved: {holds()}. "
                            f"Lower train.lr (now {tc.lr:g}) or check the data, then start over (--no-resume) or "
                            "train into another run folder.")
                else:
                    nonfinite_in_a_row = 0
                    n_ok += 1
                    for k, v in terms.items():
                        sums[k] = sums.get(k, 0.0) + v
                    summary.losses.append(terms["total"])
                if dinfo.is_main and (global_iter % max(tc.log_every, 1) == 0 or it == n_iters - 1):
                    log.write({"type": "iter", "epoch": epoch, "iter": global_iter, "lr": lr,
                               "grad_norm": grad_norm, "scale": float(scaler.get_scale()) if use_scaler else 1.0,
                               **terms})
                if bar is not None:
                    bar.set_postfix(loss=f"{terms['total']:.4f}", lr=f"{lr:.2e}")
                    bar.update(1)
                if stop_after_iters is not None and iters_this_call >= stop_after_iters:
                    raise TrainingInterrupted(f"stopped after {iters_this_call} iterations (epoch {epoch})")
                if it + 1 < n_iters and stop_requested(True):
                    raise interrupted(epoch, in_epoch(it + 1))
            if bar is not None:
                bar.close()
            dt = time.time() - t_epoch
            summary.epochs_run += 1
            if dinfo.is_main:
                rec = {"type": "epoch", "epoch": epoch, "iter": global_iter, "seconds": dt,
                       "images_per_s": n_images / max(dt, 1e-9), "skipped_nonfinite": nonfinite_total}
                rec.update({k: v / max(n_ok, 1) for k, v in sums.items()})
                log.write(rec)
                if progress:
                    print(f"[train] epoch {epoch + 1}/{plan.epochs} loss {rec.get('total', float('nan')):.4f} "
                          f"({rec['images_per_s']:.1f} img/s)")
            last = epoch + 1 == plan.epochs
            if dinfo.is_main and ((epoch + 1) % max(tc.save_every, 1) == 0 or last):
                save(epoch + 1)
                if on_checkpoint is not None:
                    before = rng_state()
                    on_checkpoint(global_iter, ckpt_path)
                    set_rng_state(before)  # the hook cannot change what the run draws next
            if dinfo.distributed:
                torch.distributed.barrier()
            if not last and stop_requested(True):
                raise interrupted(epoch + 1, None)
        summary.iterations = iters_this_call
        if dinfo.is_main:
            bad, _ = _nonfinite_state(core, optimizer)
            if bad:  # only reachable when the last epoch saved nothing (resumed at the very end of a run)
                raise NonFiniteStateError(f"the trained weights hold inf/NaN ({', '.join(bad[:3])}): "
                                          f"{run_dir / 'final.pt'} was not written; {holds()}")
            summary.final_weights = save_checkpoint(core, run_dir / "final.pt",
                                                    extra={"config": cfg.to_dict(), "plan": plan.to_dict()})
        if stop.requested and dinfo.is_main:
            print(f"[train] Ctrl-C after the last step: the run is complete ({summary.final_weights})", flush=True)
    finally:
        stop.restore()
        log.close()
    summary.seconds = time.time() - t_start
    return summary


def _step(model, optimizer, scaler, batch, cfg: Config, dinfo: DistInfo, use_amp, amp_dtype, loss_gen):
    """One optimisation step. Returns (loss terms as floats, grad norm, finite?).

    A step is skipped, and undone (the forward pass's BatchNorm statistics are put back), when its loss or
    the statistics are not finite, or, without a gradient scaler (which skips such steps itself), when its
    gradient norm is not finite.
    """
    batch = move_batch(batch, dinfo.device)
    images = batch["image"]
    if cfg.train.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    before = _BufferSnapshot(model.buffers())
    ctx = torch.autocast(dinfo.device.type, dtype=amp_dtype) if use_amp else contextlib.nullcontext()
    with ctx:
        outputs = model(images, batch["instance_coord"], batch["instance_imgid"])
    losses = loss_fns.total_loss(outputs, batch, cfg.loss, generator=loss_gen)  # fp32, outside autocast
    total = losses["total"]
    finite = torch.isfinite(total.detach()).all() & before.now_finite()
    if dinfo.distributed:  # every rank must agree to skip
        flag = finite.float().to(dinfo.device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MIN)
        finite = flag > 0
    optimizer.zero_grad(set_to_none=True)
    terms = {k: float(all_reduce_mean(v.detach().float())) for k, v in losses.items() if torch.is_tensor(v)}
    if not bool(finite):
        before.restore()
        return terms, float("nan"), False
    scaler.scale(total).backward()
    scaler.unscale_(optimizer)
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.clip_grad)
    if not scaler.is_enabled() and not bool(torch.isfinite(grad_norm)):
        before.restore()
        optimizer.zero_grad(set_to_none=True)
        return terms, float(grad_norm), False
    scaler.step(optimizer)
    scaler.update()
    return terms, float(grad_norm), True


class _BufferSnapshot:
    """The model's buffers (BatchNorm running statistics) before a forward pass, one flat copy per dtype and
    device (a few kernels per step, not one per buffer), to check them after it and to undo a skipped step."""

    def __init__(self, buffers):
        groups: dict[tuple, list[torch.Tensor]] = {}
        for b in buffers:
            groups.setdefault((b.dtype, b.device), []).append(b)
        self.groups = [(bs, self._flat(bs)) for bs in groups.values()]

    @staticmethod
    def _flat(bs: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat([b.detach().reshape(-1) for b in bs])

    def now_finite(self) -> torch.Tensor:
        """Are the floating-point buffers all finite now (a 0-d bool tensor, on the buffers' device)?"""
        ok = torch.ones((), dtype=torch.bool)
        for bs, _ in self.groups:
            if bs[0].is_floating_point():
                ok = ok.to(bs[0].device) & torch.isfinite(self._flat(bs)).all()
        return ok

    def restore(self) -> None:
        with torch.no_grad():
            for bs, flat in self.groups:
                for b, v in zip(bs, flat.split([b.numel() for b in bs])):
                    b.copy_(v.view_as(b))
