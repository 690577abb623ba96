"""Seconds per training step of a config in each precision / memory layout, and the ratio to fp32 NCHW.

Usage::

    python benchmarks/bench_train_step.py                          # the demo config on the CPU
    python benchmarks/bench_train_step.py --config coco_w32 --device cuda --batch 8 data.root=data/coco

One step = the training loop's own step (forward, every loss term, backward, clipping, AdamW), on real batches of the
config's training set (SynthCrowd by default; generated when missing). Data loading is not timed. Modes: fp32 and bf16
autocast, each in NCHW and channels_last; fp16 + GradScaler on CUDA as well. On a CPU bf16 pays off only
with native bf16 (AMX / AVX512-BF16, see ``cpu_has_native_bf16``); elsewhere it is emulated and slower.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

import torch  # noqa: E402

from boir_core.config import load_config  # noqa: E402
from boir_core.data import KeypointDataset, collate_train  # noqa: E402
from boir_core.data.synthetic import ensure_synthcrowd  # noqa: E402
from boir_core.engine.distributed import DistInfo  # noqa: E402
from boir_core.engine.precision import cpu_has_native_bf16  # noqa: E402
from boir_core.engine.train import _step, move_batch  # noqa: E402
from boir_core.model import build_model  # noqa: E402


def _step_seconds(cfg, batches, device: torch.device, dtype: torch.dtype | None, channels_last: bool,
                  warmup: int) -> float:
    """Median seconds of the engine's own training step (clipping and loss bookkeeping included)."""
    cfg = cfg.override(f"train.channels_last={channels_last}")
    torch.manual_seed(0)
    model = build_model(cfg, train=True).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    dinfo = DistInfo(device=device)
    times = []
    for i, batch in enumerate(batches):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        _step(model, optimizer, scaler, batch, cfg, dinfo, dtype is not None, dtype, None)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="demo")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=0, help="images per step (0: the config's train.batch_size)")
    ap.add_argument("--steps", type=int, default=8, help="timed steps per mode")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    cfg = load_config(args.config, args.overrides)
    device = torch.device(args.device)
    if cfg.data.dataset.startswith("synthcrowd"):
        ensure_synthcrowd(cfg.data.root, num_keypoints=cfg.num_keypoints)
    dataset = KeypointDataset.from_config(cfg, split=cfg.data.train_split, train=True)
    b = args.batch or cfg.train.batch_size
    n = args.steps + args.warmup
    if len(dataset) < n * b:
        raise SystemExit(f"{cfg.data.root} has {len(dataset)} training images; {n} steps of {b} need {n * b}")
    batches = [move_batch(collate_train([dataset[i * b + j] for j in range(b)]), device) for i in range(n)]

    modes: list[tuple[str, torch.dtype | None, bool]] = [
        ("fp32", None, False), ("fp32 channels_last", None, True),
        ("bf16", torch.bfloat16, False), ("bf16 channels_last", torch.bfloat16, True)]
    if device.type == "cuda":
        modes += [("fp16", torch.float16, False), ("fp16 channels_last", torch.float16, True)]
    where = (f"CPU, {torch.get_num_threads()} threads, native bf16: {cpu_has_native_bf16()}"
             if device.type == "cpu" else torch.cuda.get_device_name(device))
    print(f"{cfg.name}: {cfg.model.arch} {cfg.model.backbone}, {cfg.data.input_size} px, {b} images per step; {where}")
    base = None
    for name, dtype, cl in modes:
        s = _step_seconds(cfg, batches, device, dtype, cl, args.warmup)
        base = base or s
        print(f"  {name:20s} {s * 1000:8.1f} ms/step  {b / s:7.1f} img/s  {base / s:5.2f}x fp32")


if __name__ == "__main__":
    main()
