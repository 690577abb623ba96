#!/usr/bin/env python
"""Generate SynthCrowd, the kit's embedded synthetic crowd data set (see :mod:`boir_core.data.sources.synthetic`).

    python data_scripts/make_synthetic.py                                   # data/synthcrowd, 2000 / 200 images
    python data_scripts/make_synthetic.py --keypoints 14                    # data/synthcrowd14 (CrowdPose format)
    python data_scripts/make_synthetic.py --out /tmp/sc --train 6 --val 2 --seed 1 --force

Without ``--force`` an existing complete set made with the same arguments is kept (``ensure_synthcrowd``).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # runs from a checkout, installed or not

from boir_core.data.sources import synthetic  # noqa: E402


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="make_synthetic.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=None,
                    help=f"output folder (default: {synthetic.DEFAULT_ROOT} for 17 keypoints, "
                         f"{synthetic.DEFAULT_ROOT_14} for 14)")
    ap.add_argument("--train", type=int, default=synthetic.DEFAULT_TRAIN, help="training images")
    ap.add_argument("--val", type=int, default=synthetic.DEFAULT_VAL, help="validation images")
    ap.add_argument("--seed", type=int, default=synthetic.DEFAULT_SEED)
    ap.add_argument("--keypoints", type=int, choices=(17, 14), default=17,
                    help="17: COCO format; 14: CrowdPose format with crowdIndex")
    ap.add_argument("--max-people", type=int, default=synthetic.DEFAULT_MAX_PEOPLE)
    ap.add_argument("--force", action="store_true", help="regenerate even if a matching set exists")
    args = ap.parse_args(argv)
    if args.train < 0 or args.val < 0:
        ap.error(f"--train and --val must be >= 0, got {args.train} / {args.val}")

    out = args.out or synthetic.default_root(args.keypoints)
    kw = dict(num_train=args.train, num_val=args.val, seed=args.seed, num_keypoints=args.keypoints,
              max_people=args.max_people)
    if args.force:
        summary = {**synthetic.make_synthcrowd(out, synthetic.SynthCrowdSpec(**kw)), "generated": True}
    else:
        summary = synthetic.ensure_synthcrowd(out, synthetic.SynthCrowdSpec(**kw))
    why = f" ({summary['reason']})" if summary.get("reason") else ""
    state = f"generated in {summary['seconds']} s{why}" if summary["generated"] else "already complete, kept"
    print(f"SynthCrowd ({args.keypoints} keypoints) in {out}: {state}")
    for split, s in summary["splits"].items():
        print(f"  {split}: {s['num_images']} images, {s['num_people']} people -> {s['annotations']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
