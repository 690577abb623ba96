"""`make demo`'s figures on this machine's CPU: AP (shipped and fresh weights) and the time of every stage.

Runs the demo (boir_core.engine.jobs.demo.run_demo) into a fresh folder: SynthCrowd, evaluation of the shipped
BoIR and CID (all / crowded / sparse val images), a fresh run of the `demo` config within the demo's time
budget, drawing and, with --notebooks, the notebooks. Prints the AP table, the measured step time and the
seconds per stage. Target: the whole demo, set-up excluded, in <= 12 min on a 2-core AVX2 CPU
(emulate one on a newer Intel CPU with ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 and train.amp=off).
Not a test.

    HF_HUB_OFFLINE=1 python benchmarks/bench_demo.py [--out runs/bench_demo] [--notebooks] [key=value ...]
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from boir_core.engine.distributed import device_name  # noqa: E402
from boir_core.engine.jobs.demo import DemoOptions, run_demo  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/bench_demo")
    ap.add_argument("--notebooks", action="store_true", help="also execute the notebooks (as make demo does)")
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    isa = os.environ.get("ATEN_CPU_CAPABILITY", "native")
    print(f"device: {device_name(torch.device('cpu'))}; ATen CPU capability: {isa}")
    s = run_demo(out_dir=args.out, overrides=args.overrides, options=DemoOptions(notebooks=args.notebooks))
    total = s["total_seconds"]
    print(f"\nwhole demo {'with' if args.notebooks else 'without'} notebooks: {total:.0f} s ({total / 60:.1f} min; "
          f"target <= 12 min on a 2-core AVX2 CPU)")
    shipped = s["results"].get("shipped_boir")
    if shipped:
        print(f"shipped BoIR AP {shipped['AP']:.3f}: target 0.5 {'met' if shipped['AP'] >= 0.5 else 'NOT met'}")


if __name__ == "__main__":
    main()
