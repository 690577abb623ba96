"""Forward time of each part of BoIR: backbone, neck + center head, instance head for N people.

Usage::

    python benchmarks/bench_model.py                      # hrnet_w32, 512 input, batch 1, CPU (+ CUDA if present)
    python benchmarks/bench_model.py --size 256 --backbone hrnet_w18_small --repeats 5
    python benchmarks/bench_model.py --device cuda --channels-last --amp

Prints a table of median milliseconds per part (inference model, eval mode, no_grad). Untrained weights:
timing does not depend on the values. The paper's Table 5 reports 110.6 ms (W32) for the whole inference
with flip test and decoding on an RTX 3090, so the figures here are not directly comparable.
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

from boir_core.model import BoIR, count_parameters  # noqa: E402


def _time(fn, device, repeats: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def bench(device: torch.device, backbone: str, inst_channels: int, size: int, people: list[int], repeats: int,
          warmup: int, channels_last: bool, amp: bool) -> list[tuple[str, float]]:
    torch.manual_seed(0)
    model = BoIR(17, backbone, inst_channels=inst_channels, train_heads=False).to(device).eval()
    images = torch.randn(1, 3, size, size, device=device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        images = images.to(memory_format=torch.channels_last)
    dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    rows = []
    with torch.no_grad(), torch.autocast(device.type, dtype=dtype, enabled=amp):
        feats = model.features(images)
        h, w = feats.shape[-2:]
        rows.append(("backbone", _time(lambda: model.features(images), device, repeats, warmup)))
        rows.append(("neck + center head", _time(lambda: model.center_logits(feats), device, repeats, warmup)))
        g = torch.Generator().manual_seed(1)
        for n in people:
            coord = torch.stack([torch.randint(0, h, (n,), generator=g), torch.randint(0, w, (n,), generator=g)], 1)
            coord, imgid = coord.to(device), torch.zeros(n, dtype=torch.long, device=device)
            rows.append((f"instance head, N = {n}",
                         _time(lambda: model.instance_heatmaps(feats, coord, imgid), device, repeats, warmup)))
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbone", default="hrnet_w32")
    ap.add_argument("--inst-channels", type=int, default=None, help="default: 96 for hrnet_w48, else 64")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--people", type=int, nargs="+", default=[1, 10, 30])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                    help="auto: CPU, then CUDA too when available")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: PyTorch default)")
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--amp", action="store_true", help="autocast (fp16 on CUDA, bf16 on CPU)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    inst = args.inst_channels or (96 if args.backbone == "hrnet_w48" else 64)
    devices = {"cpu": ["cpu"], "cuda": ["cuda"],
               "auto": ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])}[args.device]
    with torch.device("meta"):
        n_params = count_parameters(BoIR(17, args.backbone, inst_channels=inst, train_heads=False))["total"]
    print(f"BoIR inference model, {args.backbone} ({n_params / 1e6:.2f} M params), input {args.size}x{args.size}, "
          f"batch 1, channels_last={args.channels_last}, amp={args.amp}, median of {args.repeats}")
    for dev in devices:
        device = torch.device(dev)
        name = torch.cuda.get_device_name(device) if dev == "cuda" else f"CPU, {torch.get_num_threads()} threads"
        rows = bench(device, args.backbone, inst, args.size, args.people, args.repeats, args.warmup,
                     args.channels_last, args.amp)
        print(f"\n{name}")
        for part, ms in rows:
            print(f"  {part:24s} {ms:10.2f} ms")


if __name__ == "__main__":
    main()
