"""Throughput of the training data pipeline: augmentation + targets, single process.

Writes a small COCO-format set (640×480 JPEGs, ``--people`` people each, one crowd region per image) to a
temporary folder, then times ``KeypointDataset.load_train`` step by step (read, affine, mask, targets,
to-tensor) at ``--input-size``. Prints samples/s and the share of each step.

    python benchmarks/bench_data_pipeline.py --input-size 512 --people 10 --samples 60
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from boir_core.data import KeypointDataset, SampleSettings  # noqa: E402


def make_set(root: Path, num_images: int, people: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    (root / "images/train").mkdir(parents=True)
    (root / "annotations").mkdir()
    images, anns = [], []
    w, h = 640, 480
    for i in range(1, num_images + 1):
        img = cv2.GaussianBlur(rng.integers(0, 255, (h, w, 3), dtype=np.uint8), (0, 0), 3)
        cv2.imwrite(str(root / f"images/train/{i}.jpg"), img)
        images.append({"id": i, "file_name": f"{i}.jpg", "width": w, "height": h})
        for p in range(people):
            bw, bh = rng.uniform(40, 200), rng.uniform(80, 400)
            x0, y0 = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
            kp = np.stack([x0 + rng.uniform(0, bw, 17), y0 + rng.uniform(0, bh, 17),
                           rng.choice([0, 1, 2], 17, p=[0.2, 0.2, 0.6])], 1)
            kp[kp[:, 2] == 0, :2] = 0
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": 1, "iscrowd": 0,
                         "keypoints": kp.ravel().tolist(), "num_keypoints": int((kp[:, 2] > 0).sum()),
                         "bbox": [x0, y0, bw, bh], "area": bw * bh,
                         "segmentation": [[x0, y0, x0 + bw, y0, x0 + bw, y0 + bh, x0, y0 + bh]]})
        anns.append({"id": len(anns) + 1, "image_id": i, "category_id": 1, "iscrowd": 1, "num_keypoints": 0,
                     "keypoints": [0] * 51, "bbox": [500, 20, 100, 80], "area": 8000.0,
                     "segmentation": [[500, 20, 600, 20, 600, 100, 500, 100]]})
    (root / "annotations/person_keypoints_train.json").write_text(
        json.dumps({"images": images, "annotations": anns, "categories": [{"id": 1, "name": "person"}]}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--input-size", type=int, default=512)
    ap.add_argument("--people", type=int, default=10)
    ap.add_argument("--samples", type=int, default=60)
    ap.add_argument("--images", type=int, default=8)
    args = ap.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_set(root, args.images, args.people)
        ds = KeypointDataset(root, "synthcrowd", "train", settings=SampleSettings(input_size=args.input_size, seed=0))
        for i in range(3):  # warm-up
            ds.load_train(i % len(ds))
        timings: dict[str, float] = {}
        n_inst = 0
        t0 = time.perf_counter()
        for i in range(args.samples):
            s = ds.load_train(i % len(ds), timings)
            n_inst += len(s["instance_coord"])
        total = time.perf_counter() - t0
    steps = sum(timings.values())
    print(f"data pipeline: {args.samples} samples, input {args.input_size}, output {args.input_size // 4}, "
          f"{args.people} people/image ({n_inst / args.samples:.1f} instances/sample), 1 process, 1 thread")
    print(f"  {args.samples / total:.1f} samples/s  ({1000 * total / args.samples:.1f} ms/sample)")
    for k, v in timings.items():
        print(f"  {k:<10s} {1000 * v / args.samples:7.2f} ms  {100 * v / steps:5.1f} %")


if __name__ == "__main__":
    main()
