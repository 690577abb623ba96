"""``predict``: poses on images, folders of images or video files, as COCO-format results (+ drawings).

The ``image_id`` of each result is the index of the image in the order given (a folder expands to its
sorted images; a video to its frames), so other tools can map results back to their inputs.

Checked before any work (docs/inference.md#predict-inputs-and-outputs): every input path exists and every
folder holds images; the results file is not a folder, not an image or video name and not one of the inputs;
the drawings folder holds none of the inputs; both can be written into. Then each image is predicted on its
own: an input that cannot be used (unreadable, a video that does not open, larger than :data:`MAX_PIXELS` or
more elongated than :data:`MAX_ASPECT`) is reported (``on_failure``, one call per input naming it and why)
and the others keep their results; no usable input at all is an error and writes nothing.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import cv2
import numpy as np
import torch

from ...config import Config
from ...data.imagefiles import image_format, incomplete_reason
from ...data.transforms import eval_input, eval_resize_size
from ...io import atomic_open, atomic_write_json, check_writable_folder
from .draw import draw_poses
from .predictor import FAST, BackendChoice, Predictor

__all__ = ["predict", "Drawings", "iter_inputs", "read_inputs", "size_problem", "PredictInputError", "IMAGE_SUFFIXES",
           "VIDEO_SUFFIXES", "DRAW_MIN_SCORE", "MAX_ASPECT", "MAX_PIXELS"]

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm"}
#: People scored below this are not drawn (they stay in the results JSON). Person scores are the mean of
#: keypoint peak x center score; on SynthCrowd the demo model scores real people about 0.05 to 0.4.
DRAW_MIN_SCORE = 0.05
#: The input limits (docs/inference.md#predict-inputs-and-outputs). The test-time resize makes the short side
#: ``data.input_size`` (S) and pads the long side to a multiple of 64, so the network's canvas is about
#: S x (S * aspect): up to 4:1 that is at most S x 4S (512 x 2048 at S = 512, four times a square canvas).
#: A 1x2000 image would need a 512 x 1,024,000 canvas (gigabytes).
MAX_ASPECT = 4.0
#: Images are decoded in full before the resize: at most this many pixels (12000 x 10000; 360 MB as RGB).
MAX_PIXELS = 120_000_000


class PredictInputError(ValueError):
    """An input or output path that ``predict`` cannot use, found before any work (or no usable input at
    all); the message names the path(s) and what to do."""


@dataclass(frozen=True)
class Drawings:
    """Where ``predict`` draws its poses: one JPEG per image in ``folder``, showing the people scored at least
    ``min_score`` (the results file keeps every pose)."""

    folder: str | os.PathLike
    min_score: float = DRAW_MIN_SCORE


@dataclass(frozen=True)
class Item:
    """One image or video frame from the inputs: ``image`` (RGB uint8) or, when it cannot be used, ``why``."""

    name: str
    image: np.ndarray | None
    why: str | None = None


def size_problem(width: int, height: int, input_size: int | None = None) -> str | None:
    """Why an image of ``width`` x ``height`` exceeds :data:`MAX_PIXELS` or :data:`MAX_ASPECT` (None: it
    does not); with ``input_size``, the message gives the canvas the network would need."""
    if width <= 0 or height <= 0:
        return f"its size is {width}x{height}"
    if width * height > MAX_PIXELS:
        return (f"it is {width}x{height}, {width * height / 1e6:.0f} million pixels; predict reads images of at "
                f"most {MAX_PIXELS / 1e6:.0f} million pixels: downscale it")
    aspect = max(width, height) / min(width, height)
    if aspect > MAX_ASPECT:
        canvas = ""
        if input_size:
            cw, ch = eval_resize_size(width, height, input_size)
            canvas = f" (its short side resized to {input_size} would make a {cw}x{ch} network canvas)"
        return (f"it is {width}x{height}, {aspect:.1f}:1{canvas}; predict reads images up to {MAX_ASPECT:g}:1 "
                f"(long side / short side): crop or split it")
    return None


def _plan(inputs: list[str | os.PathLike]) -> list[tuple[Path, str]]:
    """``(path, "image" | "video")`` for every file the inputs name (folders expanded, sorted); every missing
    path and every folder without images is an error named before any work."""
    plan: list[tuple[Path, str]] = []
    problems: list[str] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            files = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
            if not files:
                problems.append(f"{p}: folder holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
            plan.extend((f, "image") for f in files)
        elif not p.exists():
            problems.append(f"{p}: no such file or folder")
        else:
            plan.append((p, "video" if p.suffix.lower() in VIDEO_SUFFIXES else "image"))
    if problems:
        raise PredictInputError("; ".join(problems) + " (nothing was predicted)")
    return plan


def _image_header_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from the file's header, without decoding it (None where PIL cannot tell)."""
    try:
        from PIL import Image  # optional (it comes with matplotlib): without it the size is checked once decoded
    except ImportError:  # pragma: no cover
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                return im.size
    except Image.DecompressionBombError:
        return (MAX_PIXELS + 1, 1)  # over PIL's own limit, which is above ours: refused as too many pixels
    except Exception:  # noqa: BLE001 - not a format PIL knows (or damaged): OpenCV decides below
        return None


def _read_image(path: Path, input_size: int | None) -> Item:
    size = _image_header_size(path)
    why = size_problem(*size, input_size) if size is not None else None
    if why is not None:
        return Item(str(path), None, why)
    try:  # a JPEG / PNG cut short decodes with its missing part grey and only a libjpeg warning: refused
        data = path.read_bytes()
    except OSError as e:
        return Item(str(path), None, f"cannot read it ({e.strerror or e})")
    problem = incomplete_reason(data, image_format(data[:8]))
    if problem:
        return Item(str(path), None, f"{problem}; copy or download the file again")
    try:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    except cv2.error as e:
        return Item(str(path), None, f"OpenCV cannot decode it ({str(e).strip().splitlines()[-1]})")
    if img is None:
        return Item(str(path), None, "not an image OpenCV can read (unknown format, damaged or empty file)")
    why = size_problem(img.shape[1], img.shape[0], input_size)
    if why is not None:
        return Item(str(path), None, why)
    return Item(str(path), cv2.cvtColor(img, cv2.COLOR_BGR2RGB))


def _read_video(path: Path, input_size: int | None) -> Iterator[Item]:
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            yield Item(str(path), None, "cannot open the video (unknown format or damaged file)")
            return
        i = 0
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            why = size_problem(frame.shape[1], frame.shape[0], input_size)
            if why is not None:  # every frame has the same size: the video is refused once
                yield Item(f"{path}#frame{i}", None, f"{why} (the rest of the video is skipped)")
                return
            yield Item(f"{path}#frame{i}", cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            i += 1
        if i == 0:
            yield Item(str(path), None, "the video holds no frame that can be read")
    finally:
        cap.release()


def read_inputs(inputs: list[str | os.PathLike], input_size: int | None = None) -> Iterator[Item]:
    """An :class:`Item` for every image / frame, in order (a video that cannot be read: one item for it)."""
    return _read_plan(_plan(inputs), input_size)


def _read_plan(plan: list[tuple[Path, str]], input_size: int | None) -> Iterator[Item]:
    for path, kind in plan:
        if kind == "video":
            yield from _read_video(path, input_size)
        else:
            yield _read_image(path, input_size)


def iter_inputs(inputs: list[str | os.PathLike]) -> Iterator[tuple[str, np.ndarray | None]]:
    """Yield (name, RGB image or None if it cannot be used) for every image / frame, in order."""
    for item in read_inputs(inputs):
        yield item.name, item.image


def _check_outputs(output: str | os.PathLike, draw_dir: str | os.PathLike | None,
                   files: list[Path]) -> None:
    """Refuse outputs that would overwrite an input or cannot be written, before any work."""
    out = Path(output).expanduser()
    inputs = {f.resolve(): f for f in files}
    if out.resolve() in inputs:
        raise PredictInputError(f"the output {output} is the input {inputs[out.resolve()]}: it would be "
                                f"overwritten with the results; name another file")
    if out.is_dir():
        raise PredictInputError(f"the output {output} is a folder; name the results file, e.g. "
                                f"{out / 'predictions.json'}")
    if out.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES:
        raise PredictInputError(f"the output {output} is named like an image or a video; the results are COCO "
                                f"JSON: name a .json file (drawings go to --draw)")
    if draw_dir is not None:
        d = Path(draw_dir).expanduser()
        if d.exists() and not d.is_dir():
            raise PredictInputError(f"--draw {draw_dir} is a file; name a folder for the drawings")
        holding = [f for f in files if f.resolve().parent == d.resolve()]
        if holding:
            raise PredictInputError(f"--draw {draw_dir} holds input {holding[0]}"
                                    f"{f' (and {len(holding) - 1} more)' if len(holding) > 1 else ''}: the "
                                    f"drawings would mix with (or overwrite) the inputs; name another folder")
        _writable(d, f"the drawings (--draw {draw_dir})")
    _writable(out.parent, f"the results file {output}")


def _writable(folder: Path, what: str) -> None:
    try:
        check_writable_folder(folder)
    except OSError as e:
        raise OSError(e.errno, f"{e.strerror}; {what} cannot be written there", e.filename) from None


def _out_of_memory(e: BaseException) -> bool:
    if isinstance(e, (MemoryError, torch.OutOfMemoryError)):
        return True
    return isinstance(e, RuntimeError) and ("can't allocate memory" in str(e) or "out of memory" in str(e))


def _warn(name: str, why: str) -> None:
    warnings.warn(f"cannot use {name}: {why}", stacklevel=3)


def _write_drawing(path: Path, rgb: np.ndarray) -> None:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"{path}: OpenCV could not encode the drawing as JPEG")
    with atomic_open(path, "wb") as f:
        f.write(buf.tobytes())


def predict(cfg: Config, checkpoint, inputs: list[str], *, output: str | os.PathLike, draw: Drawings | None = None,
            on_failure: Callable[[str, str], None] | None = None) -> dict[str, Any]:
    """Predict every input; write the COCO results list to ``output`` (atomically) and, with ``draw``, a drawing
    of each image into ``draw.folder``.

    ``output`` keeps every pose (AP needs the low-scored ones too); the drawings show only the people scored
    at least ``draw.min_score``, so the long tail of weak proposals does not bury them.
    Paths are checked before the weights are loaded (:class:`PredictInputError`, or an ``OSError`` naming a
    folder that cannot be written). An input that cannot be used, or whose drawing cannot be written, is
    passed to ``on_failure(name, why)`` (default: a warning) and listed in the report's ``failed``; the
    others keep their results. No usable input at all: :class:`PredictInputError`, nothing written.
    """
    draw_dir = draw.folder if draw is not None else None
    plan = _plan(inputs)
    _check_outputs(output, draw_dir, [p for p, _ in plan])
    on_failure = on_failure or _warn
    # test.backend, unset: the fast torch path (predict reports no metrics; docs/inference.md#exact-and-fast-inference)
    predictor = Predictor(cfg, checkpoint, backend=BackendChoice(default=FAST))
    prof = predictor.profile  # profile_for(cfg): a custom data set's keypoints, skeleton and sigmas from its file
    results: list[dict] = []
    failed: list[dict[str, str]] = []
    drawings = 0
    n_images = 0

    def fail(name: str, why: str) -> None:
        failed.append({"input": name, "error": why})
        on_failure(name, why)

    for image_id, item in enumerate(_read_plan(plan, cfg.data.input_size)):
        if item.image is None:
            fail(item.name, item.why or "cannot be read")
            continue
        try:
            x = eval_input(item.image, cfg.data.input_size)
            r = predictor(torch.from_numpy(x.image), {"trans_inv": x.resize.trans_inv}, image_id=image_id)
        except Exception as e:
            if not _out_of_memory(e):
                raise
            h, w = item.image.shape[:2]
            fail(item.name, f"out of memory predicting a {w}x{h} image ({type(e).__name__}); try a smaller "
                            f"data.input_size or a downscaled image")
            continue
        n_images += 1
        results.extend(r.poses)
        if draw is not None:
            drawn = draw_poses(item.image, r.poses, prof.skeleton, min_score=draw.min_score)
            path = Path(draw_dir) / f"{image_id:06d}_{Path(item.name.split('#')[0]).stem}.jpg"
            try:
                _write_drawing(path, drawn)
                drawings += 1
            except OSError as e:
                fail(item.name, f"its drawing was not written: {path}: {e.strerror or e} (its poses are in the "
                                f"results)")
    if n_images == 0:
        named = "; ".join(f"{f['input']}: {f['error']}" for f in failed[:5])
        more = f"; and {len(failed) - 5} more" if len(failed) > 5 else ""
        raise PredictInputError(f"no input could be used ({named}{more}); nothing written to {output}")
    out = atomic_write_json(output, results)
    return {"num_images": n_images, "num_poses": len(results), "failed": failed, "skipped": len(failed),
            "skipped_inputs": [f["input"] for f in failed], "drawings": drawings, "output": str(out)}
