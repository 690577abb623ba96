"""Training-step speed of a config on this machine: images/s, achieved GFLOP/s against the CPU's fp32 peak,
the split network / losses / optimiser / data, and the measured levers, as ratios to today's setting.

Usage::

    python benchmarks/bench_train_step.py                          # the demo config on the CPU (all levers)
    python benchmarks/bench_train_step.py --levers layout,optimizer --rounds 5
    python benchmarks/bench_train_step.py --config coco_w32 --device cuda --batch 8 data.root=data/coco

One step = the training loop's own step (``boir_core.engine.training.job.TrainingJob.step``: forward, every loss
term, backward, clipping, AdamW) on real batches of the config's training set (SynthCrowd by default; generated when
missing). The levers run interleaved, round by round, each on its own copy of the same seeded network, so a
machine whose load changes during the run shifts them all alike: compare the ratios, and read the absolute
figures together with the CPU line printed first (``lscpu``). Data loading is timed on its own (the images
per second one process prepares), since the training loop prepares the next batch while it waits for nothing
else (``data.workers=0`` on 2 cores; see the ``data`` row).

Levers (``--levers``, comma-separated; ``all`` by default):

- ``layout``: NCHW against channels_last (NHWC), fp32;
- ``optimizer``: AdamW ``foreach`` (PyTorch's default) against ``fused``;
- ``threads``: 1 thread against all cores (``torch.set_num_threads``);
- ``precision``: bf16 autocast (only where the CPU has native bf16, else emulated and slower; on CUDA fp16);
- ``compile``: ``torch.compile`` of the backbone (inductor; its compile time is printed apart; the instance
  head's shapes change with the number of people in the batch, so it stays eager);
- ``batch``: twice the images per step (a lever on images/s, not on learning: it changes the recipe).
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from boir_core import losses as loss_fns  # noqa: E402
from boir_core.config import load_config  # noqa: E402
from boir_core.data import KeypointDataset, collate_train  # noqa: E402
from boir_core.data.sources.synthetic import SynthCrowdSpec, ensure_synthcrowd  # noqa: E402
from boir_core.engine.distributed import DistInfo  # noqa: E402
from boir_core.engine.training.job import TrainingJob, move_batch  # noqa: E402
from boir_core.engine.training.optimization import Optimization  # noqa: E402
from boir_core.engine.training.precision import Precision, amp_settings, cpu_has_native_bf16  # noqa: E402
from boir_core.model import build_model  # noqa: E402

LEVERS = ("layout", "optimizer", "threads", "precision", "compile", "batch")


def cpu_description() -> tuple[str, float | None]:
    """One line about the CPU (model, cores, clock, vector units) and its fp32 FMA peak in GFLOP/s (None when
    the clock is unknown). Peak = cores x GHz x FLOP per cycle: 2 FMA units x 8 fp32 lanes x 2 with AVX2,
    x 16 lanes with AVX-512 (an upper bound: many CPUs clock down under AVX-512)."""
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        text = ""
    field = dict(re.findall(r"^([^:\n]+):\s*(.*)$", text, flags=re.M))
    flags = set(field.get("Flags", "").split())
    model = field.get("Model name", "unknown CPU")
    cores = os.cpu_count() or 1
    mhz = None
    for key in ("CPU max MHz", "CPU MHz"):
        if field.get(key):
            mhz = float(field[key])
            break
    if mhz is None and Path("/proc/cpuinfo").is_file():
        m = re.search(r"cpu MHz\s*:\s*([\d.]+)", Path("/proc/cpuinfo").read_text())
        mhz = float(m.group(1)) if m else None
    isa = [f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    per_cycle = 64 if "avx512f" in flags else 32 if {"avx2", "fma"} <= flags else 16
    peak = cores * mhz / 1000 * per_cycle if mhz else None
    clock = f"{mhz / 1000:.2f} GHz" if mhz else "clock unknown"
    peak_s = f"fp32 FMA peak {peak:.0f} GFLOP/s" if peak else "fp32 peak unknown"
    return (f"{model}, {cores} cores, {clock}, {' '.join(isa) or 'no AVX2'}; native bf16: {cpu_has_native_bf16()};"
            f" {peak_s}; torch {torch.__version__}, {torch.get_num_threads()} threads"), peak


def step_flops(model, batch, channels_last: bool) -> float:
    """FLOPs of one forward + backward of the network and the losses (PyTorch's FLOP counter)."""
    images = batch["image"].contiguous(memory_format=torch.channels_last) if channels_last else batch["image"]
    with FlopCounterMode(display=False) as counter:
        out = model(images, batch["instance_coord"], batch["instance_imgid"])
        loss = sum(v.float().sum() for v in out.values() if torch.is_tensor(v) and v.requires_grad)
        loss.backward()
    model.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


class Setting:
    """One lever setting: its own seeded network and optimiser, stepped by the engine's step
    (:meth:`~boir_core.engine.training.job.TrainingJob.step`)."""

    def __init__(self, name: str, cfg, device: torch.device, *, channels_last: bool, fused: bool = False,
                 threads: int | None = None, amp: str | None = None, compile_net: bool = False, batch_mult: int = 1):
        self.name, self.threads, self.batch_mult = name, threads, batch_mult
        self.cfg = cfg.override(f"train.channels_last={channels_last}", *([f"train.amp={amp}"] if amp else []))
        self.use_amp, self.amp_dtype, use_scaler = amp_settings(self.cfg.train.amp, device)
        torch.manual_seed(0)
        self.model = build_model(self.cfg, train=True).to(device)
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        kw = {"fused": True} if fused else {}
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=self.cfg.train.lr,
                                           weight_decay=self.cfg.train.weight_decay, **kw)
        self.scaler = torch.amp.GradScaler(device.type, enabled=use_scaler)
        self.dinfo = DistInfo(device=device)
        precision = Precision(self.use_amp, self.amp_dtype, use_scaler, device.type)
        self.job = TrainingJob(self.cfg, self.dinfo, None, self.model, self.model,  # the engine's step, no data set
                               Optimization(self.optimizer, self.scaler, precision, iters_per_epoch=1))
        self.compile_s = 0.0
        if compile_net:  # the backbone alone: the instance head's shapes change with the number of people
            self.model.backbone = torch.compile(self.model.backbone)
        self.times: list[float] = []

    def run(self, batch, device: torch.device, record: bool) -> float:
        previous = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            if device.type == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            self.job.step(batch)
            if device.type == "cuda":
                torch.cuda.synchronize()
            dt = time.perf_counter() - t
        finally:
            torch.set_num_threads(previous)
        if record:
            self.times.append(dt)
        return dt


def split_times(setting: Setting, batches, device: torch.device) -> dict[str, float]:
    """Median ms of forward, losses, backward (with clipping) and the AdamW update, on ``setting``'s network."""
    parts: dict[str, list[float]] = {"network forward": [], "losses": [], "backward": [], "optimiser": []}
    model, cfg = setting.model, setting.cfg

    def now():
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter()

    for batch in batches:
        images = batch["image"].contiguous(memory_format=torch.channels_last) if cfg.train.channels_last \
            else batch["image"]
        t0 = now()
        out = model(images, batch["instance_coord"], batch["instance_imgid"])
        t1 = now()
        total = loss_fns.total_loss(out, batch, cfg.loss)["total"]
        t2 = now()
        setting.optimizer.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.clip_grad)
        t3 = now()
        setting.optimizer.step()
        t4 = now()
        for key, dt in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            parts[key].append(dt * 1000)
    return {k: statistics.median(v) for k, v in parts.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="demo")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=0, help="images per step (0: the config's train.batch_size)")
    ap.add_argument("--steps", type=int, default=4, help="timed steps per setting and round")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (the first step of each is warm-up)")
    ap.add_argument("--levers", default="all", help=f"comma-separated subset of {', '.join(LEVERS)}, or all")
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    levers = LEVERS if args.levers == "all" else tuple(x.strip() for x in args.levers.split(","))
    unknown = set(levers) - set(LEVERS)
    if unknown:
        raise SystemExit(f"unknown lever(s) {sorted(unknown)}; choose from {', '.join(LEVERS)}")
    cfg = load_config(args.config, args.overrides)
    device = torch.device(args.device)
    if cfg.data.dataset.startswith("synthcrowd"):
        ensure_synthcrowd(cfg.data.root, SynthCrowdSpec(num_keypoints=cfg.num_keypoints))
    dataset = KeypointDataset.from_config(cfg, split=cfg.data.train_split, train=True)
    b = args.batch or cfg.train.batch_size
    mult = 2 if "batch" in levers else 1
    n = args.steps + 1
    if len(dataset) < n * b * mult:
        raise SystemExit(f"{cfg.data.root} has {len(dataset)} training images; {n} steps of {b * mult} need more")

    # data: one process preparing batches (decode, augment, targets, collate), as the loader does
    t = time.perf_counter()
    samples = [dataset[i] for i in range(n * b * mult)]
    data_s = (time.perf_counter() - t) / len(samples)
    big = [move_batch(collate_train(samples[i * b * mult:(i + 1) * b * mult]), device) for i in range(n)]
    batches = [move_batch(collate_train(samples[i * b:(i + 1) * b]), device) for i in range(n)]

    cpu_line, peak = cpu_description()
    today_cl = bool(cfg.train.channels_last)
    print(f"{cfg.name}: {cfg.model.arch} {cfg.model.backbone}, {cfg.data.input_size} px in, {cfg.data.output_size} px "
          f"out, {b} images per step, train.amp={cfg.train.amp}, channels_last={today_cl}")
    print(f"machine: {cpu_line if device.type == 'cpu' else torch.cuda.get_device_name(device)}")

    settings = [Setting("today (config as is)", cfg, device, channels_last=today_cl)]
    if "layout" in levers:
        settings.append(Setting(f"{'NCHW' if today_cl else 'channels_last'}", cfg, device,
                                channels_last=not today_cl))
    if "optimizer" in levers:
        settings.append(Setting("fused AdamW", cfg, device, channels_last=today_cl, fused=True))
    if "threads" in levers and device.type == "cpu" and torch.get_num_threads() > 1:
        settings.append(Setting("1 thread", cfg, device, channels_last=today_cl, threads=1))
    if "precision" in levers:
        low = "bf16" if device.type == "cpu" else "fp16"
        label = f"{low} autocast" + ("" if device.type != "cpu" or cpu_has_native_bf16() else " (emulated)")
        settings.append(Setting(label, cfg, device, channels_last=today_cl, amp=low))
    if "compile" in levers:
        s = Setting("torch.compile", cfg, device, channels_last=today_cl, compile_net=True)
        t = time.perf_counter()
        try:
            s.run(batches[0], device, record=False)
            s.compile_s = time.perf_counter() - t
            settings.append(s)
        except Exception as e:  # no compiler, or an op inductor cannot lower: report, do not stop the others
            print(f"  torch.compile: not measured ({type(e).__name__}: {str(e).splitlines()[0][:120]})")
    if "batch" in levers:
        settings.append(Setting(f"batch {b * mult}", cfg, device, channels_last=today_cl, batch_mult=mult))

    for r in range(args.rounds):
        for s in settings:
            src = big if s.batch_mult > 1 else batches
            for i in range(n):
                s.run(src[i], device, record=i > 0)

    flops = step_flops(settings[0].model, batches[0], today_cl)
    base = statistics.median(settings[0].times)
    print(f"one step: {flops / 1e9:.1f} GFLOP (network + losses, forward + backward); "
          f"data: {data_s * 1000:.1f} ms per image in one process ({1 / data_s:.0f} images/s)")
    print(f"{'setting':28s} {'ms/step':>8s} {'img/s':>7s} {'GFLOP/s':>8s} {'of peak':>8s} {'vs today':>9s}")
    for s in settings:
        sec = statistics.median(s.times)
        imgs = b * s.batch_mult
        gflops = flops * s.batch_mult / sec / 1e9
        of_peak = f"{100 * gflops / peak:7.0f}%" if peak and device.type == "cpu" else f"{'-':>8s}"
        extra = f"  (compile {s.compile_s:.0f} s)" if s.compile_s else ""
        ratio = (imgs / sec) / (b / base)
        print(f"{s.name:28s} {sec * 1000:8.0f} {imgs / sec:7.1f} {gflops:8.1f} {of_peak} {ratio:8.2f}x{extra}")
    split = split_times(settings[0], batches[1:], device)
    total = sum(split.values())
    print("split of today's step: " + ", ".join(f"{k} {v:.0f} ms ({100 * v / total:.0f}%)" for k, v in split.items())
          + f"; data {data_s * b * 1000:.0f} ms per batch in the same process")


if __name__ == "__main__":
    main()
