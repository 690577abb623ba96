"""The demo target: SynthCrowd val AP and wall time of `make demo`'s main job on this machine's CPU.

Generates SynthCrowd if missing, trains the `demo` config from scratch into a fresh folder, evaluates it
on SynthCrowd val (COCO keypoint AP) and prints the AP and the time of each stage. Target (issue 5):
AP >= 0.5 within 10 minutes on 2 CPU cores. Not a test.

    HF_HUB_OFFLINE=1 python benchmarks/bench_demo.py [--out runs/bench_demo] [key=value ...]
"""
from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from boir_core.config import load_config  # noqa: E402
from boir_core.data.synthetic import ensure_synthcrowd  # noqa: E402
from boir_core.engine.runner import run_evaluation  # noqa: E402
from boir_core.engine.train import train  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/bench_demo")
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    cfg = load_config("demo", args.overrides)
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.time()
    ensure_synthcrowd(cfg.data.root, num_keypoints=cfg.num_keypoints)
    t_data = time.time() - t0
    t1 = time.time()
    s = train(cfg, out / "train", resume=False, progress=False)
    t_train = time.time() - t1
    t2 = time.time()
    ev = run_evaluation(cfg, out / "train" / "final.pt", out_dir=out / "eval", progress=False)
    t_eval = time.time() - t2
    m = ev["metrics"]
    total = time.time() - t0
    print(f"device: CPU, {torch.get_num_threads()} threads; config demo ({cfg.model.backbone}, "
          f"{cfg.data.input_size} px, {s.iterations} iterations of {cfg.train.batch_size} images)")
    print(f"SynthCrowd val ({ev['images']} images): AP {m['AP']:.3f}  AP50 {m['AP50']:.3f}  AP75 {m['AP75']:.3f}  "
          f"AR {m['AR']:.3f}")
    print(f"time: data {t_data:.0f} s, train {t_train:.0f} s, evaluate {t_eval:.0f} s, total {total:.0f} s "
          f"({total / 60:.1f} min; target <= 10 min)")
    print(f"per image: network {ev['timings']['network_ms']:.1f} ms, decoding {ev['timings']['decode_ms']:.1f} ms")
    print(f"AP target 0.5: {'met' if m['AP'] >= 0.5 else 'NOT met'}; time target 10 min: "
          f"{'met' if total <= 600 else 'NOT met'}")


if __name__ == "__main__":
    main()
