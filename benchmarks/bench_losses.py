"""Speed of the vectorised losses vs the loop-based oracles (boir_core.losses.reference), on CPU.

Default setting (the issue's): 20 images × 10 people, 128×128 maps, D = 128. Prints forward time, and
forward+backward time where it applies, for each loss and the speed-up over the oracle. Not a test.

    HF_HUB_OFFLINE=1 python benchmarks/bench_losses.py [--images 20 --people 10 --size 128 --dim 128 --repeat 3]
                                                       [--oracle-backward]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from boir_core.losses import BboxMaskSettings, bbox_loss, bbox_mask_terms, cid_contrastive_loss, multi_heatmap_loss
from boir_core.losses.reference import bbox_loss_ref, bbox_mask_paper_ref, bbox_mask_release_ref, cid_contrastive_ref


def make_inputs(images: int, people: int, size: int, dim: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    n = images * people
    imgid = torch.arange(images).repeat_interleave(people)
    xy = torch.rand(n, 2, generator=g) * size * 0.8
    wh = torch.rand(n, 2, generator=g) * size * 0.4 + 4
    bbox = torch.cat([xy, wh], 1)
    center = xy + wh * torch.rand(n, 2, generator=g)
    coord = center.floor().clamp(0, size - 1).long().flip(1)
    emb = torch.randn(images, dim, size, size, generator=g)
    box_map = torch.rand(images, 4, size, size, generator=g) * 20
    features = torch.randn(images, 32, size, size, generator=g)
    return dict(imgid=imgid, bbox=bbox, center=center, coord=coord, emb=emb, box_map=box_map, features=features)


def timed(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def fwd_bwd(fn, x):
    def run():
        y = x.detach().clone().requires_grad_()
        fn(y).backward()
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=20)
    ap.add_argument("--people", type=int, default=10)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--oracle-repeat", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    ap.add_argument("--oracle-backward", action="store_true",
                    help="also time the oracles' backward pass (minutes: they build huge autograd graphs)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    d = make_inputs(args.images, args.people, args.size, args.dim)
    print(f"CPU, {torch.get_num_threads()} threads; {args.images} images x {args.people} people, "
          f"{args.size}x{args.size} maps, D={args.dim}")
    rows = []
    fast_of = {
        "bbox_mask paper": lambda e: bbox_mask_terms(e, d["bbox"], d["imgid"], d["center"]).loss,
        "bbox_mask release-instance": lambda e: bbox_mask_terms(e, d["bbox"], d["imgid"],
                                                                settings=BboxMaskSettings("release-instance")).loss,
        "bbox_mask release-image": lambda e: bbox_mask_terms(e, d["bbox"], d["imgid"],
                                                             settings=BboxMaskSettings("release-image")).loss,
        "bbox (CIoU)": lambda m: bbox_loss(m, d["coord"], d["imgid"], d["bbox"]),
        "cid contrastive": lambda f: cid_contrastive_loss(f, d["coord"], d["imgid"]),
    }
    slow_of = {
        "bbox_mask paper": lambda e: bbox_mask_paper_ref(e, d["bbox"], d["imgid"], d["center"])["bbox_mask"],
        "bbox_mask release-instance": lambda e: bbox_mask_release_ref(e, d["bbox"], d["imgid"], level=0)[0],
        "bbox_mask release-image": lambda e: bbox_mask_release_ref(e, d["bbox"], d["imgid"], level=1)[0],
        "bbox (CIoU)": lambda m: bbox_loss_ref(m, d["coord"], d["imgid"], d["bbox"]),
        "cid contrastive": lambda f: cid_contrastive_ref(f, d["coord"], d["imgid"]),
    }
    inputs = {"bbox (CIoU)": d["box_map"], "cid contrastive": d["features"]}
    for name in fast_of:
        x = inputs.get(name, d["emb"])
        with torch.no_grad():
            rows.append((name, "forward", timed(lambda: fast_of[name](x), args.repeat),
                         timed(lambda: slow_of[name](x), args.oracle_repeat)))
        t_slow = timed(fwd_bwd(slow_of[name], x), args.oracle_repeat) if args.oracle_backward else float("nan")
        rows.append((name, "fwd+bwd", timed(fwd_bwd(fast_of[name], x), args.repeat), t_slow))
        a, b = fast_of[name](x), slow_of[name](x)
        print(f"  {name}: vectorised {float(a):.6f}  oracle {float(b):.6f}")

    heat = torch.rand(args.images, 18, args.size, args.size)
    heat[heat > 0.999] = 1
    mask = torch.ones(args.images, 1, args.size, args.size)
    logits = torch.randn(args.images, 18, args.size, args.size)
    t_focal = timed(lambda: multi_heatmap_loss(logits[:, 17:], logits[:, :17], heat, mask), args.repeat)

    print(f"\n{'loss':30s} {'pass':8s} {'vectorised':>11s} {'oracle':>9s} {'speed-up':>9s}")
    for name, kind, tf, ts in rows:
        if ts != ts:  # oracle backward not timed (see --oracle-backward)
            print(f"{name:30s} {kind:8s} {tf * 1e3:9.1f}ms {'-':>9s} {'-':>9s}")
        else:
            print(f"{name:30s} {kind:8s} {tf * 1e3:9.1f}ms {ts * 1e3:7.0f}ms {ts / tf:8.1f}x")
    print("(small ops are dominated by thread wake-up latency on a busy machine; try --threads 1)")
    print(f"{'multi heatmap (focal)':30s} {'forward':8s} {t_focal * 1e3:9.1f}ms {'-':>9s} {'-':>9s}")


if __name__ == "__main__":
    main()
