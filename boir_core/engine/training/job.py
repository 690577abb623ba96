"""The training job: everything one training run steps with, built once, by :func:`build_job`.

A :class:`TrainingJob` owns the data (data set, epoch sampler, loader and its generator), the network (as
stepped, possibly wrapped in DDP / ``torch.compile``, and its plain core), the optimisation (AdamW, GradScaler,
precision, iterations per epoch), the loss generator, and the run's plan (its length, decided once by
:meth:`TrainingJob.decide_plan` through :func:`~boir_core.engine.training.budget.plan_run`). :func:`~.train.train`
and the dry run (:mod:`.dryrun`) both build it; :meth:`TrainingJob.step` is the one optimisation step of the
kit, and :meth:`TrainingJob.time_steps` times steps with a clock passed in (tests pass a fake one).

A step sums ``train.accumulate`` micro-batches of ``train.batch_size`` images (:mod:`.effective_batch`): the
loader yields micro-batches, :meth:`TrainingData.batches` hands the step a list of ``accumulate`` of them (one
dict when ``accumulate`` is 1), and under DDP every micro-step but the last runs inside the job's ``no_sync``
(the DDP wrapper's, passed in as a collaborator; a no-op without DDP), so the gradients are synchronised once.
"""
from __future__ import annotations

import contextlib
import copy
import itertools
import time
from dataclasses import dataclass, field
from typing import Any, Callable, ContextManager, Iterator, NamedTuple, Sequence, Union

import torch
from torch.utils.data import DataLoader, DistributedSampler

from ... import losses as loss_fns  # total_loss through the package (tests stand in for it there)
from ...config import Config
from ...data import KeypointDataset, collate_train
from ...model import build_model
from ..distributed import DistInfo, all_reduce_mean, device_name
from .budget import CALIBRATION_SKIP, CALIBRATION_STEPS, Measurement, StepPlan, length_source, plan_run, step_seconds_of
from .checkpointing import rng_state, set_rng_state
from .effective_batch import EffectiveBatch, effective_batch
from .optimization import Optimization, build_optimization
from .schedule import set_lr
from .seeding import EpochKey, ResumableEpochSampler, epoch_batches, seed_everything, seed_worker

__all__ = ["TrainingJob", "TrainingData", "StepResult", "StepTiming", "build_job", "build_training_data",
           "build_network", "move_batch", "micro_batches", "images_in", "ddp_no_sync"]

Clock = Callable[[], float]
#: A step's batch: one micro-batch (a collated dict) or the list of the step's micro-batches.
StepBatch = Union[dict[str, Any], Sequence[dict[str, Any]]]


def micro_batches(batch: StepBatch) -> list[dict[str, Any]]:
    """The micro-batches of a step's batch (a dict is one)."""
    if isinstance(batch, dict):
        return [batch]
    out = list(batch)
    if not out:
        raise ValueError("a step needs at least one micro-batch")
    return out


def images_in(batch: StepBatch) -> int:
    """How many images a step's batch holds (over its micro-batches, this process only)."""
    return sum(int(b["image"].shape[0]) for b in micro_batches(batch))


def _grouped(batches: Iterator[dict[str, Any]], k: int) -> Iterator[list[dict[str, Any]]]:
    """Consecutive groups of ``k`` micro-batches; an incomplete last group is dropped (a step of fewer images
    would have another effective batch)."""
    while True:
        group = list(itertools.islice(batches, k))
        if len(group) < k:
            return
        yield group


def ddp_no_sync(model: torch.nn.Module) -> Callable[[], ContextManager]:
    """The ``no_sync`` of the DDP wrapper in ``model`` (itself, or under ``torch.compile``), else a no-op."""
    inner = getattr(model, "_orig_mod", model)
    if isinstance(inner, torch.nn.parallel.DistributedDataParallel):
        return inner.no_sync
    return contextlib.nullcontext


def move_batch(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """The batch's tensors on ``device`` (non-blocking copies on CUDA, where the loader pins memory)."""
    non_blocking = device.type == "cuda"
    return {k: (v.to(device, non_blocking=non_blocking) if torch.is_tensor(v) else v) for k, v in batch.items()}


@dataclass
class TrainingData:
    """The training set of one process: the data set, its epoch sampler, the loader (of micro-batches) and the
    loader's generator. The batches of an epoch depend only on (seed, epoch, rank) (:func:`~.seeding.epoch_batches`);
    each step takes ``accumulate`` consecutive micro-batches."""

    dataset: KeypointDataset
    sampler: ResumableEpochSampler
    loader: DataLoader
    generator: torch.Generator
    accumulate: int = 1

    def batches(self, seed: int, epoch: int, rank: int, skip: int = 0) -> Iterator[StepBatch]:
        """The steps' batches of the epoch after its first ``skip`` steps: one micro-batch each when
        ``accumulate`` is 1, else lists of ``accumulate`` micro-batches."""
        k = self.accumulate
        micro = epoch_batches(self.loader, self.sampler, self.generator, EpochKey(seed, epoch, rank),
                              skip_batches=skip * k)
        return micro if k == 1 else _grouped(micro, k)


def build_training_data(cfg: Config, dinfo: DistInfo) -> TrainingData:
    """This process's share of the training split, in batches of ``train.batch_size``."""
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
    return TrainingData(dataset, sampler, loader, gen, accumulate=cfg.train.accumulate)


def build_network(cfg: Config, dinfo: DistInfo) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(the network as stepped, its plain core): the training network with its initial weights (ImageNet,
    ``model.pretrained``, or ``train.transfer_from``) on the device, wrapped for DDP / compiled as configured;
    the core is what checkpoints hold."""
    model = build_model(cfg, train=True)
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


class StepResult(NamedTuple):
    """One optimisation step: its loss terms (floats, averaged over the processes), the gradient norm before
    clipping, and whether the step was taken (False: skipped and undone)."""

    terms: dict[str, float]
    grad_norm: float
    finite: bool


@dataclass
class StepTiming:
    """Consecutive steps timed by :meth:`TrainingJob.time_steps`: the seconds of each, how many of the first
    are warm-up (not counted), and the result of each step."""

    each_step_seconds: list[float]
    skip: int
    results: list[StepResult]

    @property
    def step_seconds(self) -> float:
        """Seconds per step: the mean over the steps after the warm-up (:func:`~.budget.step_seconds_of`)."""
        return step_seconds_of(self.each_step_seconds, self.skip)


@dataclass
class TrainingJob:
    """What a training run steps with (module docstring). Build it with :func:`build_job`."""

    cfg: Config
    dinfo: DistInfo
    data: TrainingData
    model: torch.nn.Module  # as stepped (DDP / compiled)
    core: torch.nn.Module  # the plain network: what checkpoints hold
    optimization: Optimization
    loss_generator: torch.Generator = field(default_factory=lambda: torch.Generator(device="cpu"))
    plan: StepPlan | None = None  # the run's length, once decided
    build_seconds: dict[str, float] = field(default_factory=dict)  # "data", "network": as build_job's clock read
    # no gradient sync on the accumulating micro-steps: the DDP wrapper's no_sync (None: ddp_no_sync(model), a
    # no-op without DDP); tests pass a spy
    no_sync: Callable[[], ContextManager] | None = None
    # the loss of a micro-batch, (outputs, batch, loss_cfg, generator) -> terms with "total"; None: the kit's
    # total_loss, looked up through the losses package at each step
    loss_fn: Callable[..., dict[str, torch.Tensor]] | None = None

    @property
    def batch(self) -> EffectiveBatch:
        """The run's effective batch (processes x micro-batch x accumulate) and the paper's."""
        return effective_batch(self.cfg.train, self.dinfo.world_size)

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        return self.optimization.optimizer

    @property
    def scaler(self) -> torch.amp.GradScaler:
        return self.optimization.scaler

    @property
    def iters_per_epoch(self) -> int:
        return self.optimization.iters_per_epoch

    def batches(self, epoch: int, skip: int = 0) -> Iterator[StepBatch]:
        """The steps' batches of ``epoch`` for this process, after its first ``skip`` steps."""
        return self.data.batches(self.cfg.train.seed, epoch, self.dinfo.rank, skip)

    def step(self, batch: StepBatch) -> StepResult:
        """One optimisation step on ``batch``: one micro-batch, or the list of the step's micro-batches (the
        learning rate is the optimiser's, set by the caller).

        Each micro-batch's loss is divided by their number before its backward pass, so the gradients are the
        mean over the micro-batches (BatchNorm's statistics are each micro-batch's own). Under DDP every
        micro-step but the last runs inside :attr:`no_sync`: the gradients are averaged over the processes once.

        A step is skipped, and undone (the forward passes' BatchNorm statistics are put back), when a loss or the
        statistics are not finite, or, without a gradient scaler (which skips such steps itself), when its
        gradient norm is not finite. Under DDP every rank agrees on skipping.
        """
        cfg, dinfo, model, optimizer, scaler = self.cfg, self.dinfo, self.model, self.optimizer, self.scaler
        micro = micro_batches(batch)
        k = len(micro)
        before = _BufferSnapshot(model.buffers())
        optimizer.zero_grad(set_to_none=True)
        sums: dict[str, torch.Tensor] = {}
        for i, mb in enumerate(micro):
            with self._no_sync()() if i < k - 1 else contextlib.nullcontext():
                losses = self._micro_losses(mb)
                total = losses["total"]
                finite = torch.isfinite(total.detach()).all() & before.now_finite()
                if dinfo.distributed:  # every rank must agree to skip
                    flag = finite.float().to(dinfo.device)
                    torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MIN)
                    finite = flag > 0
                for key, v in losses.items():
                    if torch.is_tensor(v):
                        sums[key] = sums.get(key, 0) + v.detach().float()
                if not bool(finite):
                    terms = {key: float(all_reduce_mean(v / (i + 1))) for key, v in sums.items()}
                    before.restore()
                    optimizer.zero_grad(set_to_none=True)
                    return StepResult(terms, float("nan"), False)
                scaler.scale(total / k).backward()  # k = 1: x / 1 is exact
        terms = {key: float(all_reduce_mean(v / k)) for key, v in sums.items()}
        scaler.unscale_(optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.clip_grad)
        if not scaler.is_enabled() and not bool(torch.isfinite(grad_norm)):
            before.restore()
            optimizer.zero_grad(set_to_none=True)
            return StepResult(terms, float(grad_norm), False)
        scaler.step(optimizer)
        scaler.update()
        return StepResult(terms, float(grad_norm), True)

    def _no_sync(self) -> Callable[[], ContextManager]:
        return self.no_sync if self.no_sync is not None else ddp_no_sync(self.model)

    def _micro_losses(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """The forward pass and the loss terms of one micro-batch (fp32 losses)."""
        cfg, dinfo = self.cfg, self.dinfo
        batch = move_batch(batch, dinfo.device)
        images = batch["image"]
        if cfg.train.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with self.optimization.precision.context():
            outputs = self.model(images, batch["instance_coord"], batch["instance_imgid"])
        loss_fn = self.loss_fn if self.loss_fn is not None else loss_fns.total_loss
        return loss_fn(outputs, batch, cfg.loss, generator=self.loss_generator)

    def time_steps(self, n: int, clock: Clock, skip: int = CALIBRATION_SKIP,
                   batches: Iterator[StepBatch] | None = None) -> StepTiming:
        """Run ``n`` real steps at the warm-up's first learning rate and time each with ``clock`` (its loading of
        the batch included: the throughput a long run sees); the first ``skip`` are warm-up. The batches are
        epoch 0's, from its start again when they run out, unless ``batches`` are given. The steps change the
        weights: wrap the call in :meth:`undone` to leave no trace."""
        if n <= skip:
            raise ValueError(f"need more steps ({n}) than skipped warm-up steps ({skip})")
        tc = self.cfg.train
        batches = batches if batches is not None else self._epoch0_forever()
        self.loss_generator.manual_seed(tc.seed)
        set_lr(self.optimizer, tc.warmup_start_lr)
        self.model.train()
        cuda = self.dinfo.device.type == "cuda"
        each, results = [], []
        t = clock()
        for _ in range(n):
            results.append(self.step(next(batches)))
            if cuda:  # the step's kernels are queued: wait for them before reading the clock
                torch.cuda.synchronize(self.dinfo.device)
            now = clock()
            each.append(now - t)
            t = now
        return StepTiming(each, skip, results)

    def _epoch0_forever(self) -> Iterator[StepBatch]:
        while True:  # a training set of fewer batches than the timed steps starts epoch 0 again
            yield from self.batches(0)

    @contextlib.contextmanager
    def undone(self):
        """Whatever runs inside leaves no trace: the weights, the optimiser, the scaler and every RNG are put
        back as they were on entry."""
        saved = (copy.deepcopy(self.core.state_dict()), copy.deepcopy(self.optimizer.state_dict()),
                 copy.deepcopy(self.scaler.state_dict()), rng_state())
        try:
            yield self
        finally:
            self.core.load_state_dict(saved[0])
            self.optimizer.load_state_dict(saved[1])
            self.scaler.load_state_dict(saved[2])
            set_rng_state(saved[3])

    def decide_plan(self, clock: Clock = time.perf_counter, started: float | None = None,
                    timing: StepTiming | None = None) -> StepPlan:
        """The run's length, decided once (:func:`~.budget.plan_run`) and kept in :attr:`plan`.

        A time-budgeted run needs its seconds per step: from ``timing`` when given (the dry run's steps), else
        measured here on :data:`~.budget.CALIBRATION_STEPS` steps that are undone afterwards. ``started`` is the
        ``clock`` reading when the run began: what was spent since counts against the budget. Under DDP the
        slowest process sizes the run, so that every process runs the same steps.
        """
        if self.plan is not None:
            return self.plan
        measured = None
        if length_source(self.cfg.train) == "time_budget":
            if timing is None:
                with self.undone():
                    timing = self.time_steps(CALIBRATION_STEPS, clock)
            step_seconds = timing.step_seconds
            if self.dinfo.distributed:
                t = torch.tensor([step_seconds], dtype=torch.float64, device=self.dinfo.device)
                torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
                step_seconds = float(t.item())
            spent = clock() - started if started is not None else 0.0
            measured = Measurement(step_seconds, spent, len(timing.each_step_seconds), device_name(self.dinfo.device))
        self.plan = plan_run(self.cfg.train, self.iters_per_epoch, measured)
        return self.plan


def build_job(cfg: Config, dinfo: DistInfo, clock: Clock = time.perf_counter) -> TrainingJob:
    """Seed this process's RNGs, then build the data, the network and its optimisation, in that order (the order
    fixes the initial weights and the data order of a seed); ``clock`` times the data and the network
    (:attr:`TrainingJob.build_seconds`). The plan is decided later, by :meth:`TrainingJob.decide_plan` (a
    resumed run takes its checkpoint's plan instead)."""
    effective_batch(cfg.train, dinfo.world_size)  # a bad train.accumulate / lr_scaling is named before any work
    seed_everything(cfg.train.seed + dinfo.rank)
    t0 = clock()
    data = build_training_data(cfg, dinfo)
    t1 = clock()
    model, core = build_network(cfg, dinfo)
    t2 = clock()
    return TrainingJob(cfg, dinfo, data, model, core, build_optimization(cfg, model, dinfo, data.loader),
                       build_seconds={"data": t1 - t0, "network": t2 - t1}, no_sync=ddp_no_sync(model))


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
