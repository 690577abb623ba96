"""Pre-flight for a long training run: ``python -m boir_core train --config coco_w32 --dry-run``.

Builds everything :func:`boir_core.engine.train.train` builds (data, model with its ImageNet or transfer
weights, optimizer, AMP and the learning-rate schedule), runs a few optimisation steps on one batch and
reports what to check before a 3-day job: the resolved config, where the backbone starts, the total number of
steps, images per step over all processes, parameter counts, step time and peak memory on this device. It
writes nothing (no run folder, no checkpoint). Under ``torchrun`` every process takes part; rank 0 prints.

The first step includes one-off costs (kernel selection, allocator warm-up), so the step time reported is the
median of the steps after it (``steps`` >= 2; with one step, that step's time).
"""
from __future__ import annotations

import platform
import resource
import sys
import time
from typing import Any, Callable

import numpy as np
import torch

from ..config import Config, preset_label
from ..model import count_parameters
from .budget import plan_from_config, sized_by_time_budget, steps_for_budget
from .distributed import cleanup_distributed, device_name, init_distributed
from .optimization import build_optimization
from .schedule import set_lr, warmup_cosine_schedule
from .seeding import epoch_batches, seed_everything
from .train import _build_loader, _build_model, _step

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


def dry_run(cfg: Config, *, steps: int = 2, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Build the training job of ``cfg``, run ``steps`` steps on its first batch and return the figures
    (``log`` prints progress on rank 0). See the module docstring."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    t0 = time.perf_counter()
    dinfo = init_distributed(cfg.train.device)
    say = log if dinfo.is_main else (lambda msg: None)
    try:
        tc = cfg.train
        seed_everything(tc.seed + dinfo.rank)
        say(f"[dry-run] building the data ({cfg.data.dataset} {cfg.data.train_split} under {cfg.data.root})")
        dataset, sampler, loader, gen = _build_loader(cfg, dinfo)
        say("[dry-run] building the model and loading its initial weights")
        t_model = time.perf_counter()
        model, core = _build_model(cfg, dinfo)
        t_model = time.perf_counter() - t_model
        optimizer, scaler, use_amp, amp_dtype, use_scaler, iters_per_epoch = build_optimization(cfg, model, dinfo,
                                                                                                 loader)
        # the run's length as train() plans it: train.max_steps, else the epochs; a time-budgeted run is sized
        # from the step time measured below (train() measures its own), its first steps follow the epochs' plan
        budgeted = sized_by_time_budget(tc)
        plan = plan_from_config(tc, iters_per_epoch)
        lrs = warmup_cosine_schedule(plan.total_steps, plan.warmup_steps, tc.lr, tc.warmup_start_lr, tc.min_lr)

        t_data = time.perf_counter()
        batch = next(epoch_batches(loader, sampler, gen, tc.seed, 0, dinfo.rank))
        t_data = time.perf_counter() - t_data
        cuda = dinfo.device.type == "cuda"
        if cuda:
            torch.cuda.synchronize(dinfo.device)
            torch.cuda.reset_peak_memory_stats(dinfo.device)
        loss_gen = torch.Generator(device="cpu").manual_seed(tc.seed)
        model.train()
        times, losses, finite_all = [], [], True
        for i in range(steps):
            say(f"[dry-run] step {i + 1}/{steps} on one batch of {batch['image'].shape[0]} images")
            set_lr(optimizer, float(lrs[min(i, len(lrs) - 1)]))
            t = time.perf_counter()
            terms, grad_norm, finite = _step(model, optimizer, scaler, batch, cfg, dinfo, use_amp, amp_dtype,
                                             loss_gen)
            if cuda:
                torch.cuda.synchronize(dinfo.device)
            times.append(time.perf_counter() - t)
            losses.append(terms)
            finite_all = finite_all and bool(finite)
        measured = times[1:] if len(times) > 1 else times
        step_s = float(np.median(measured))
        if budgeted:
            plan = plan_from_config(tc, iters_per_epoch, total_steps=steps_for_budget(tc.time_budget_s, step_s))
        total_steps = plan.total_steps
        if cuda:
            peak = {"kind": "cuda max_memory_allocated", "bytes": int(torch.cuda.max_memory_allocated(dinfo.device))}
        else:
            peak = {"kind": "peak RSS of this process", "bytes": peak_rss_bytes()}
        counts = count_parameters(core)
        images_per_step = tc.batch_size * dinfo.world_size
        init = getattr(core, "init_report", None)
        out = {
            "config": cfg.to_dict(),
            "config_yaml": cfg.to_yaml(),
            "preset": preset_label(cfg),
            "initialisation": init.source if init is not None else "none",
            "initialisation_report": str(init) if init is not None else "",
            "train_images": len(dataset),
            "world_size": dinfo.world_size,
            "batch_per_process": tc.batch_size,
            "images_per_step": images_per_step,
            "iters_per_epoch": iters_per_epoch,
            "epochs": tc.epochs,
            "total_steps": total_steps,
            "warmup_steps": plan.warmup_steps,
            "steps_from": plan.source,
            "params": {"total": counts["total"], "inference": counts["inference"]},
            "device": device_name(dinfo.device),
            "cpu": _cpu_name(),
            "amp": {"setting": tc.amp, "autocast": str(amp_dtype).replace("torch.", "") if use_amp else "off",
                    "grad_scaler": use_scaler},
            "channels_last": tc.channels_last,
            "steps_run": steps,
            "step_seconds": [round(s, 4) for s in times],
            "step_time_s": step_s,
            "images_per_s": images_per_step / step_s,
            "data_seconds_first_batch": t_data,
            "model_build_seconds": t_model,
            "peak_memory": peak,
            "losses": losses,
            "finite": finite_all,
            "estimated_hours": total_steps * step_s / 3600.0,
            "seconds": time.perf_counter() - t0,
        }
        return out
    finally:
        if dinfo.distributed:
            cleanup_distributed()


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
        f"process(es))",
        f"steps:              {r['total_steps']:,} in all = " + _steps_source(r) + f" (warm-up {r['warmup_steps']:,})",
        f"parameters:         {p['total']:,} training ({p['total'] / 1e6:.1f} M), {p['inference']:,} inference "
        f"({p['inference'] / 1e6:.1f} M)",
        f"device:             {r['device']}" + (f" ({r['cpu']})" if r["device"].lower().startswith("cpu") else ""),
        f"precision:          train.amp={amp['setting']} -> autocast {amp['autocast']}"
        f"{', GradScaler' if amp['grad_scaler'] else ''}; channels_last={r['channels_last']}",
        f"step time:          {r['step_time_s']:.3f} s ({r['images_per_s']:.2f} images/s over all processes; "
        f"steps: {', '.join(f'{s:.3f}' for s in r['step_seconds'])} s, the first includes warm-up)",
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
