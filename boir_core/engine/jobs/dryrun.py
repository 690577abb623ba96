"""Pre-flight for a long training run: ``python -m boir_core train --config coco_w32 --dry-run``.

Builds everything :func:`boir_core.engine.training.train.train` builds (data, model with its ImageNet or transfer
weights, optimizer, AMP and the learning-rate schedule), runs a few optimisation steps on one batch and
reports what to check before a 3-day job: the resolved config, where the backbone starts, the total number of
steps, images per step over all processes (the effective batch, with a warning when it is not the paper's:
:mod:`.effective_batch`), parameter counts, step time and peak memory on this device. It
writes nothing (no run folder, no checkpoint). Under ``torchrun`` every process takes part; rank 0 prints.

The job is the one :func:`~boir_core.engine.training.job.build_job` builds for training, its steps are
:meth:`~boir_core.engine.training.job.TrainingJob.time_steps`, and the length reported is the plan the job decides
(:meth:`~boir_core.engine.training.job.TrainingJob.decide_plan`: a time-budgeted run is sized from the steps timed
here). The first step includes one-off costs (kernel selection, allocator warm-up), so seconds per step
(``step_seconds``) is the mean of the steps after it, as a time-budgeted run measures it (``steps`` >= 2;
with one step, that step's time).
"""
from __future__ import annotations

import itertools
import platform
import resource
import sys
import time
from typing import Any, Callable

import torch

from ...config import Config, preset_label
from ...model import count_parameters
from ..distributed import DistInfo, cleanup_distributed, device_name, init_distributed
from ..training.job import TrainingJob, build_job, images_in, micro_batches

__all__ = ["dry_run", "format_dry_run", "peak_rss_bytes"]


def peak_rss_bytes() -> int:
    """Peak resident memory of this process so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def dry_run(cfg: Config, *, steps: int = 2, log: Callable[[str], None] = print,
            clock: Callable[[], float] = time.perf_counter) -> dict[str, Any]:
    """Build the training job of ``cfg``, run ``steps`` steps on its first batch and return the figures
    (``log`` prints progress on rank 0; ``clock`` times everything). See the module docstring."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    t0 = clock()
    dinfo = init_distributed(cfg.train.device)
    say = log if dinfo.is_main else (lambda msg: None)
    try:
        say(f"[dry-run] building the data ({cfg.data.dataset} {cfg.data.train_split} under {cfg.data.root}), "
            "the model and its initial weights")
        job = build_job(cfg, dinfo, clock)
        t_data = clock()
        batch = next(job.batches(0))
        t_data = clock() - t_data
        cuda = dinfo.device.type == "cuda"
        if cuda:
            torch.cuda.synchronize(dinfo.device)
            torch.cuda.reset_peak_memory_stats(dinfo.device)
        k = len(micro_batches(batch))
        say(f"[dry-run] {steps} step(s) on one batch of {images_in(batch)} images"
            + (f" ({k} micro-batches of {cfg.train.batch_size})" if k > 1 else ""))
        warning = job.batch.warning(cfg.train.lr)
        if warning is not None:
            say(f"[dry-run] WARNING: {warning}")
        timing = job.time_steps(steps, clock, skip=min(1, steps - 1), batches=itertools.repeat(batch))
        job.decide_plan(clock, timing=timing)  # the length train() plans (a time budget: at this step time)
        return {**_job_figures(job, dinfo), **_step_figures(job, timing, cuda), "data_seconds_first_batch": t_data,
                "seconds": clock() - t0}
    finally:
        if dinfo.distributed:
            cleanup_distributed()


def _job_figures(job: TrainingJob, dinfo: DistInfo) -> dict[str, Any]:
    """What was built: config, initial weights, data, plan, parameters, device and precision."""
    cfg, plan, precision = job.cfg, job.plan, job.optimization.precision
    counts = count_parameters(job.core)
    init = getattr(job.core, "init_report", None)
    return {
        "config": cfg.to_dict(),
        "config_yaml": cfg.to_yaml(),
        "preset": preset_label(cfg),
        "initialisation": init.source if init is not None else "none",
        "initialisation_report": str(init) if init is not None else "",
        "train_images": len(job.data.dataset),
        "world_size": dinfo.world_size,
        "batch_per_process": cfg.train.batch_size,
        "accumulate": cfg.train.accumulate,
        "images_per_step": job.batch.effective,
        "effective_batch": job.batch.to_dict(),
        "effective_batch_warning": job.batch.warning(cfg.train.lr),
        "lr": job.batch.lr(cfg.train.lr),
        "iters_per_epoch": job.iters_per_epoch,
        "epochs": cfg.train.epochs,
        "total_steps": plan.total_steps,
        "warmup_steps": plan.warmup_steps,
        "steps_from": plan.source,
        "params": {"total": counts["total"], "inference": counts["inference"]},
        "device": device_name(dinfo.device),
        "cpu": _cpu_name(),
        "amp": {"setting": cfg.train.amp,
                "autocast": str(precision.dtype).replace("torch.", "") if precision.autocast else "off",
                "grad_scaler": precision.grad_scaler},
        "channels_last": cfg.train.channels_last,
        "model_build_seconds": job.build_seconds["network"],
    }


def _step_figures(job: TrainingJob, timing, cuda: bool) -> dict[str, Any]:
    """What the steps measured: seconds per step, throughput, memory, losses, and the run's estimated hours."""
    step_seconds = timing.step_seconds
    images_per_step = job.batch.effective
    if cuda:
        peak = {"kind": "cuda max_memory_allocated", "bytes": int(torch.cuda.max_memory_allocated(job.dinfo.device))}
    else:
        peak = {"kind": "peak RSS of this process", "bytes": peak_rss_bytes()}
    return {
        "steps_run": len(timing.each_step_seconds),
        "each_step_seconds": [round(s, 4) for s in timing.each_step_seconds],
        "step_seconds": step_seconds,
        "images_per_s": images_per_step / step_seconds,
        "peak_memory": peak,
        "losses": [r.terms for r in timing.results],
        "finite": all(r.finite for r in timing.results),
        "estimated_hours": job.plan.total_steps * step_seconds / 3600.0,
    }


def _gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB"


def _steps_source(r: dict[str, Any]) -> str:
    source = r.get("steps_from", "epochs")
    if source == "max_steps":
        return "train.max_steps"
    if source == "time_budget":
        return (f"what fits in train.time_budget_s={r['config']['train']['time_budget_s']:g} s at this step time "
                f"(the run measures its own)")
    return f"{r['epochs']} epochs x {r['iters_per_epoch']:,}"


def _effective_line(r: dict[str, Any]) -> str:
    eb = r.get("effective_batch") or {}
    paper = eb.get("paper") or 0
    line = f"{r['images_per_step']}" + (f" (paper: {paper})" if paper else " (no paper value in this config)")
    if r.get("effective_batch_warning"):
        line += f"\nWARNING:            {r['effective_batch_warning']}"
    elif eb.get("lr_factor", 1.0) != 1.0:
        line += f"; learning rate {r['lr']:g} (train.lr_scaling=linear)"
    return line


def format_dry_run(r: dict[str, Any], *, config: bool = True) -> str:
    """The pre-flight report as text (the resolved config first unless ``config=False``)."""
    lines = []
    if config:
        lines += ["# resolved config", r["config_yaml"].rstrip(), ""]
    p = r["params"]
    amp = r["amp"]
    lines += [
        "# pre-flight (dry run: nothing written)",
        f"preset:             {r['preset']}",
        f"initialisation:     {r['initialisation']}",
        f"training images:    {r['train_images']:,}",
        f"images per step:    {r['images_per_step']} ({r['batch_per_process']} per process x {r['world_size']} "
        f"process(es) x accumulate {r.get('accumulate', 1)}; BatchNorm statistics over {r['batch_per_process']})",
        "effective batch:    " + _effective_line(r),
        f"steps:              {r['total_steps']:,} in all = " + _steps_source(r) + f" (warm-up {r['warmup_steps']:,})",
        f"parameters:         {p['total']:,} training ({p['total'] / 1e6:.1f} M), {p['inference']:,} inference "
        f"({p['inference'] / 1e6:.1f} M)",
        f"device:             {r['device']}" + (f" ({r['cpu']})" if r["device"].lower().startswith("cpu") else ""),
        f"precision:          train.amp={amp['setting']} -> autocast {amp['autocast']}"
        f"{', GradScaler' if amp['grad_scaler'] else ''}; channels_last={r['channels_last']}",
        f"step time:          {r['step_seconds']:.3f} s ({r['images_per_s']:.2f} images/s over all processes; "
        f"steps: {', '.join(f'{s:.3f}' for s in r['each_step_seconds'])} s, the first includes warm-up)",
        f"peak memory:        {_gib(r['peak_memory']['bytes'])} ({r['peak_memory']['kind']})",
        f"first batch:        {r['data_seconds_first_batch']:.2f} s to load",
        "losses:             " + ", ".join(f"{t['total']:.4f}" for t in r["losses"])
        + ("" if r["finite"] else "  NON-FINITE: check the data and train.lr"),
        f"estimated training: {r['estimated_hours']:.1f} h at this step time (data loading and evaluation not "
        f"included)",
    ]
    if r.get("initialisation_report"):
        lines += ["", "# initialisation report", r["initialisation_report"]]
    return "\n".join(lines)
