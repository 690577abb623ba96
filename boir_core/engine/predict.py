"""``predict``: poses on images, folders of images or video files, as COCO-format results (+ drawings).

The ``image_id`` of each result is the index of the image in the order given (a folder expands to its
sorted images; a video to its frames), so other tools can map results back to their inputs.
Unreadable inputs are named and skipped with a count; an empty folder is an error.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Iterator

import cv2
import numpy as np
import torch

from ..config import Config
from ..data import get_profile
from ..data.transforms import eval_input
from ..io import atomic_write_json
from . import backends, runner
from . import decode as decode_mod
from .distributed import resolve_device
from .draw import draw_poses

__all__ = ["predict", "iter_inputs", "IMAGE_SUFFIXES", "VIDEO_SUFFIXES", "DRAW_MIN_SCORE"]

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm"}
#: People scored below this are not drawn (they stay in the results JSON). Person scores are the mean of
#: keypoint peak x center score; on SynthCrowd the demo model scores real people about 0.05 to 0.4.
DRAW_MIN_SCORE = 0.05


def iter_inputs(inputs: list[str | os.PathLike]) -> Iterator[tuple[str, np.ndarray | None]]:
    """Yield (name, RGB image or None if unreadable) for every image / frame, in order."""
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            files = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise FileNotFoundError(f"{p}: folder holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
            for f in files:
                yield str(f), _read(f)
        elif p.suffix.lower() in VIDEO_SUFFIXES:
            cap = cv2.VideoCapture(str(p))
            if not cap.isOpened():
                yield str(p), None
                continue
            i = 0
            while True:
                ok, frame = cap.read()
                if not ok:
                    break
                yield f"{p}#frame{i}", cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                i += 1
            cap.release()
        else:
            yield str(p), _read(p)


def _read(path: Path) -> np.ndarray | None:
    if not path.is_file():
        return None
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return None if img is None else cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def predict(cfg: Config, checkpoint, inputs: list[str], *, output: str | os.PathLike,
            draw_dir: str | os.PathLike | None = None, draw_min_score: float = DRAW_MIN_SCORE,
            progress: bool = False) -> dict[str, Any]:
    """Predict every input; write the COCO results list to ``output`` (atomically).

    ``output`` keeps every pose (AP needs the low-scored ones too); the images in ``draw_dir`` show only
    the people scored at least ``draw_min_score``, so the long tail of weak proposals does not bury them.
    """
    device = resolve_device(cfg.train.device)
    model, _ = runner.load_inference_model(cfg, checkpoint, device)
    net = backends.make_runner(cfg.test.backend, model)  # test.backend: torch / onnxruntime / openvino
    prof = get_profile(cfg.data.dataset)
    kwargs = decode_mod.decode_kwargs_from_config(cfg.test, prof.flip_index, prof.sigmas)
    results: list[dict] = []
    skipped: list[str] = []
    n_images = 0
    if draw_dir is not None:
        Path(draw_dir).mkdir(parents=True, exist_ok=True)
    for image_id, (name, img) in enumerate(iter_inputs(inputs)):
        if img is None:
            skipped.append(name)
            warnings.warn(f"cannot read {name}: skipped ({len(skipped)} so far)")
            continue
        n_images += 1
        x = eval_input(img, cfg.data.input_size)
        r = decode_mod.decode(net, torch.from_numpy(x.image), {"trans_inv": x.resize.trans_inv}, image_id=image_id,
                              **kwargs)
        results.extend(r.poses)
        if draw_dir is not None:
            drawn = draw_poses(img, r.poses, prof.skeleton, min_score=draw_min_score)
            out_name = f"{image_id:06d}_{Path(name.split('#')[0]).stem}.jpg"
            cv2.imwrite(str(Path(draw_dir) / out_name), cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
    out = atomic_write_json(output, results)
    return {"num_images": n_images, "num_poses": len(results), "skipped": len(skipped),
            "skipped_inputs": skipped, "output": str(out)}
