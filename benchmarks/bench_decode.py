"""Time the released decoding: network calls vs everything around them (docs/inference.md#decoding-steps), per image.

    python benchmarks/bench_decode.py [--size 512] [--backbone hrnet_w32] [--repeats 3] [--no-flip]

Uses ``boir_core.model.BoIR`` with random weights when it imports (else a tiny fake network with the same
API), on the CPU and, when present, on CUDA. The center-head bias is raised so that all ``max_proposals``
(30) peaks survive the threshold and the decoder does its full work. Prints milliseconds; not a test.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from boir_core.engine.inference.decode import DecodeSettings, decode  # noqa: E402

COCO_FLIP = [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15]
COCO_SIGMAS = [0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062, 0.062,
               0.107, 0.107, 0.087, 0.087, 0.089, 0.089]


class FakeNet(torch.nn.Module):
    """Same API as BoIR: a strided conv backbone, a 1x1 center head and a 1x1 instance head."""

    def __init__(self, k: int = 17, c: int = 32):
        super().__init__()
        self.backbone = torch.nn.Conv2d(3, c, 4, stride=4)
        self.center = torch.nn.Conv2d(c, 1, 1)
        self.inst = torch.nn.Conv2d(c, k, 1)

    def features(self, x):
        return self.backbone(x)

    def center_logits(self, f):
        return self.center(f)

    def instance_heatmaps(self, f, coord, imgid, params=None):
        p = f[imgid, :, coord[:, 0], coord[:, 1]] if params is None else params
        return self.inst(f[imgid] * p[:, :, None, None])


def build(backbone: str):
    try:
        from boir_core.model import BoIR
        model = BoIR(17, backbone=backbone, train_heads=False)
        head = model.multihead.center_head
        last = [m for m in head.modules() if isinstance(m, torch.nn.Conv2d)][-1]
        with torch.no_grad():
            last.bias.add_(2.0)  # center probabilities ~0.07 > 0.01: 30 proposals survive
        return model, f"BoIR({backbone}, random weights)"
    except Exception as e:  # noqa: BLE001 - a benchmark falls back rather than fails
        model = FakeNet()
        with torch.no_grad():
            model.center.bias.fill_(-2.0)
        return model, f"FakeNet (BoIR unavailable: {type(e).__name__}: {e})"


def bench(model, device: str, size: int, repeats: int, flip: bool):
    model = model.to(device).eval()
    image = torch.randn(3, size, size, device=device)
    meta = {"trans_inv": np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])}
    settings = DecodeSettings(flip_test=flip, flip_index=COCO_FLIP, oks_sigmas=COCO_SIGMAS)
    decode(model, image, meta, settings)  # warm-up
    net, dec, n = [], [], 0
    for _ in range(repeats):
        r = decode(model, image, meta, settings)
        net.append(r.time_network * 1000)
        dec.append(r.time_decode * 1000)
        n = len(r.poses)
    return statistics.median(net), statistics.median(dec), n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--backbone", default="hrnet_w32")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-flip", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    model, name = build(args.backbone)
    print(f"model: {name}; input {args.size}x{args.size}; flip_test={not args.no_flip}; "
          f"median of {args.repeats} runs")
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for dev in devices:
        net, dec, n = bench(model, dev, args.size, args.repeats, not args.no_flip)
        label = torch.cuda.get_device_name() if dev == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
        print(f"{label:40s} network {net:9.1f} ms   decoding {dec:7.1f} ms   poses after NMS {n}")


if __name__ == "__main__":
    main()
