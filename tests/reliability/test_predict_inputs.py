"""``predict`` with the inputs and output paths a careful user still gets wrong: an extreme-aspect or huge image
costs only itself, output paths are checked before any work and never overwrite an input, a failed drawing
or results write is an error, and no usable input at all is an error that writes nothing."""
from __future__ import annotations

import errno
import json
import os
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import boir_core.engine.inference.predict as predict_mod
import boir_core.engine.inference.weights as weights_mod
from boir_core.__main__ import main
from boir_core.config import load_config
from boir_core.data.transforms import eval_resize_size
from boir_core.engine.inference.predict import MAX_ASPECT, MAX_PIXELS, PredictInputError, predict, size_problem
from boir_core.model import build_model
from boir_core.model.saving import save_checkpoint

#: the tiny network on the smallest backbone, one view; threshold 0: every image has poses
SETTINGS = ["train.device=cpu", "model.backbone=hrnet_w18_small", "test.flip_test=false",
            "test.center_threshold=0.0"]


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """Random weights of the tiny network in the kit's own format (poses need no training here)."""
    torch.manual_seed(0)
    model = build_model(load_config("tiny", SETTINGS), train=False)
    return save_checkpoint(model, tmp_path_factory.mktemp("weights") / "tiny.pt")


@pytest.fixture()
def loads(monkeypatch):
    """Counts how often the weights are loaded: 0 means the command stopped before any work."""
    calls = []
    real = weights_mod.load_inference_model

    def spy(*a, **kw):
        calls.append(a)
        return real(*a, **kw)

    monkeypatch.setattr(weights_mod, "load_inference_model", spy)  # what Predictor loads through
    return calls


@pytest.fixture()
def unwritable(tmp_path):
    """A folder nobody may create files in: read-only permissions; as root (who ignores them), sysfs."""
    d = tmp_path / "read_only"
    d.mkdir()
    d.chmod(0o555)
    if os.access(d, os.W_OK):
        d = Path("/sys")
        assert not os.access(d, os.W_OK) or not _can_create(d), "no unwritable folder for this test"
    yield d
    if d.is_relative_to(tmp_path):
        d.chmod(0o755)


def _can_create(d: Path) -> bool:
    try:
        (d / ".probe").touch()
    except OSError:
        return False
    (d / ".probe").unlink()
    return True


def _image(path: Path, h: int = 96, w: int = 128, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8))
    return path


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims ``width`` x ``height`` but holds no pixels (a few dozen bytes)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                     + chunk(b"IEND", b""))
    return path


def _predict(weights, capsys, *args: str) -> tuple[int, str, str]:
    rc = main(["predict", "--config", "tiny", "--checkpoint", str(weights), "--quiet", *args, *SETTINGS])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def test_a_truncated_jpeg_is_an_error_naming_it_and_the_other_images_keep_their_output(weights, tmp_path, capsys):
    """A JPEG cut short decodes as a half-grey picture with only libjpeg's warning: predict refuses it instead."""
    good = _image(tmp_path / "a.png")
    ok, enc = cv2.imencode(".jpg", np.random.default_rng(0).integers(0, 255, (96, 128, 3), dtype=np.uint8))
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(enc.tobytes()[: len(enc) // 2])
    assert ok and cv2.imread(str(cut)) is not None  # OpenCV alone would decode it
    out = tmp_path / "out.json"
    rc, _, err = _predict(weights, capsys, "-o", str(out), str(good), str(cut))
    assert rc == 2
    assert {p["image_id"] for p in json.loads(out.read_text())} == {0}
    lines = [line for line in err.splitlines() if str(cut) in line]
    assert len(lines) == 1 and lines[0].startswith(f"error: {cut}: ") and "copy or download" in lines[0]


# ---- huge and extreme-aspect images --------------------------------------------------------------------------------


def test_a_1x2000_png_is_refused_and_the_other_images_keep_their_output(weights, tmp_path, capsys, monkeypatch):
    """Measured: an 88-byte 1x2000 PNG made predict allocate 4.2 GB and die; the good images got nothing."""
    good_a, good_b = _image(tmp_path / "a.png"), _image(tmp_path / "b.png", seed=1)
    strip = tmp_path / "strip.png"
    assert cv2.imwrite(str(strip), np.zeros((2000, 1, 3), np.uint8)) and strip.stat().st_size < 200
    canvases = []
    real = predict_mod.eval_input
    monkeypatch.setattr(predict_mod, "eval_input",
                        lambda img, size: canvases.append(img.shape[:2]) or real(img, size))
    out = tmp_path / "out.json"
    rc, stdout, err = _predict(weights, capsys, "-o", str(out), "--draw", str(tmp_path / "drawn"),
                               str(good_a), str(strip), str(good_b))
    assert rc == 2
    assert canvases == [(96, 128), (96, 128)]  # the strip never reached the resize
    poses = json.loads(out.read_text())
    assert {p["image_id"] for p in poses} == {0, 2}  # the good images' results, by their argument index
    assert sorted(p.name for p in (tmp_path / "drawn").iterdir()) == ["000000_a.jpg", "000002_b.jpg"]
    lines = [line for line in err.splitlines() if str(strip) in line]
    assert len(lines) == 1 and lines[0].startswith(f"error: {strip}: ")
    assert "1x2000" in lines[0] and f"{MAX_ASPECT:g}:1" in lines[0] and "crop" in lines[0]
    cw, ch = eval_resize_size(1, 2000, 128)
    assert f"{cw}x{ch} network canvas" in lines[0]  # what it would have cost
    assert "1 input(s) failed" in err and str(out) in err


def test_a_huge_image_is_refused_from_its_header_without_decoding_it(weights, tmp_path, capsys, monkeypatch):
    bomb = _png_header_only(tmp_path / "bomb.png", 20000, 8000)  # 160 million pixels claimed, 45 bytes
    good = _image(tmp_path / "good.png")
    decoded = []
    real = cv2.imdecode
    monkeypatch.setattr(predict_mod.cv2, "imdecode", lambda buf, *a: decoded.append(len(buf)) or real(buf, *a))
    rc, _, err = _predict(weights, capsys, "-o", str(tmp_path / "out.json"), str(bomb), str(good))
    assert rc == 2 and decoded == [good.stat().st_size]  # only the good image was decoded
    assert f"error: {bomb}: it is 20000x8000, 160 million pixels" in err and f"{MAX_PIXELS / 1e6:.0f} million" in err
    assert {p["image_id"] for p in json.loads((tmp_path / "out.json").read_text())} == {1}


def test_the_limits_are_what_the_help_states(capsys):
    assert size_problem(512, 128) is None and size_problem(128, 512) is None  # 4:1 exactly is accepted
    assert "4.0:1" in size_problem(513, 128) and "4.0:1" in size_problem(128, 513)
    assert size_problem(12000, 10000) is None and "million pixels" in size_problem(12000, 10001)
    assert size_problem(MAX_PIXELS, 1) is not None  # a single row of that many pixels is refused, too
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"{MAX_ASPECT:g}:1" in text and f"{MAX_PIXELS / 1e6:.0f} million pixels" in text
    assert "Exit status: 0 every input predicted; 2 an input failed" in text


def test_an_extreme_aspect_video_is_refused_once_and_the_images_keep_their_output(weights, tmp_path, capsys):
    video = tmp_path / "banner.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5, (320, 32))  # 10:1
    for i in range(3):
        writer.write(np.full((32, 320, 3), 40 * i, np.uint8))
    writer.release()
    good = _image(tmp_path / "good.png")
    rc, _, err = _predict(weights, capsys, "-o", str(tmp_path / "out.json"), str(video), str(good))
    assert rc == 2
    lines = [line for line in err.splitlines() if "banner.avi" in line]
    assert len(lines) == 1 and lines[0].startswith(f"error: {video}#frame0: it is 320x32, 10.0:1")
    assert "the rest of the video is skipped" in lines[0]
    assert {p["image_id"] for p in json.loads((tmp_path / "out.json").read_text())} == {1}


# ---- output paths, checked before the first image -----------------------------------------------------------------


def test_output_into_a_read_only_folder_fails_before_any_work(weights, tmp_path, capsys, loads, unwritable):
    good = _image(tmp_path / "good.png")
    out = unwritable / "out.json"
    rc, _, err = _predict(weights, capsys, "-o", str(out), str(good))
    assert rc == 2 and loads == []  # the weights were never loaded
    assert err.count("\n") == 1 and err.startswith(f"error: {unwritable}: ") and str(out) in err
    assert not out.exists()


def test_draw_into_a_read_only_folder_fails_before_any_work(weights, tmp_path, capsys, loads, unwritable):
    """Measured: --draw into a read-only folder exited 0 with no drawing (cv2.imwrite's False ignored)."""
    good = _image(tmp_path / "good.png")
    rc, _, err = _predict(weights, capsys, "-o", str(tmp_path / "out.json"), "--draw", str(unwritable / "drawn"),
                          str(good))
    assert rc == 2 and loads == [] and err.startswith("error: ") and "--draw" in err
    assert not (tmp_path / "out.json").exists()


def test_a_drawing_that_cannot_be_written_is_an_error_and_the_results_are_kept(weights, tmp_path, capsys,
                                                                                monkeypatch, unwritable):
    """The folder became unwritable after the check (or the disk filled up): each lost drawing is an error."""
    monkeypatch.setattr(predict_mod, "check_writable_folder", lambda folder: Path(folder))
    good = _image(tmp_path / "good.png")
    out = tmp_path / "out.json"
    rc, _, err = _predict(weights, capsys, "-o", str(out), "--draw", str(unwritable), str(good))
    assert rc == 2
    assert f"error: {good}: its drawing was not written: {unwritable / '000000_good.jpg'}" in err
    assert len(json.loads(out.read_text())) > 0  # its poses are kept


def test_output_onto_a_folder_is_refused(weights, tmp_path, capsys, loads):
    good = _image(tmp_path / "good.png")
    folder = tmp_path / "results"
    (folder / "keep.txt").parent.mkdir()
    (folder / "keep.txt").write_text("mine")
    rc, _, err = _predict(weights, capsys, "-o", str(folder), str(good))
    assert rc == 2 and loads == [] and "is a folder" in err and str(folder / "predictions.json") in err
    assert [p.name for p in folder.iterdir()] == ["keep.txt"]


def test_a_full_disk_is_found_before_the_first_image(weights, tmp_path, capsys, loads, monkeypatch):
    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    rc, _, err = _predict(weights, capsys, "-o", str(tmp_path / "out" / "p.json"), str(_image(tmp_path / "a.png")))
    assert rc == 2 and loads == []
    assert err.startswith(f"error: {tmp_path / 'out'}: No space left on device") and "disk is full" in err


def test_a_disk_that_fills_up_during_the_run_keeps_the_old_results_and_names_the_file(weights, tmp_path, capsys,
                                                                                      monkeypatch):
    out = tmp_path / "out.json"
    out.write_text("[]\n")  # the results of an earlier run
    real_fsync, synced = os.fsync, []

    def fills_up(fd):  # the probe before the work succeeds, the disk is full when the results are written
        synced.append(fd)
        if len(synced) > 1:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fills_up)
    rc, _, err = _predict(weights, capsys, "-o", str(out), str(_image(tmp_path / "a.png")))
    assert rc == 2 and err.count("\n") == 1
    assert err.startswith(f"error: {out}: No space left on device (the disk is full")
    assert out.read_text() == "[]\n" and sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "out.json"]


def test_output_naming_an_input_image_is_refused(weights, tmp_path, capsys, loads, monkeypatch):
    """Measured: -o naming one of the input images overwrote it with JSON (exit 0)."""
    imgs = tmp_path / "imgs"
    a, b = _image(imgs / "a.png"), _image(imgs / "b.png", seed=1)
    before = b.read_bytes()
    monkeypatch.chdir(tmp_path)
    for output, inputs in ((str(b), [str(a), str(b)]),  # as given
                           ("imgs/../imgs/b.png", [str(b)]),  # another spelling of the same file
                           ("imgs/b.png", [str(imgs)])):  # an image inside an input folder
        rc, _, err = _predict(weights, capsys, "-o", output, *inputs)
        assert rc == 2 and "is the input" in err and "b.png" in err, (output, err)
    assert b.read_bytes() == before and loads == []
    rc, _, err = _predict(weights, capsys, "-o", "poses.png", str(a))  # results named like an image: refused
    assert rc == 2 and "name a .json file" in err and not Path("poses.png").exists()
    rc, _, err = _predict(weights, capsys, "-o", "x.json", "--draw", str(imgs), str(imgs))
    assert rc == 2 and "--draw" in err and "holds input" in err and sorted(p.name for p in imgs.iterdir()) == [
        "a.png", "b.png"]


def test_output_in_a_new_folder_is_created(weights, tmp_path, capsys):
    out = tmp_path / "new" / "deeper" / "out.json"
    rc, _, _ = _predict(weights, capsys, "-o", str(out), "--draw", str(tmp_path / "d"), str(_image(tmp_path / "a.png")))
    assert rc == 0 and len(json.loads(out.read_text())) > 0 and len(list((tmp_path / "d").iterdir())) == 1
    assert [p.name for p in out.parent.iterdir()] == ["out.json"]  # the write probe left nothing behind


# ---- no usable input ------------------------------------------------------------------------------------------------


def test_no_readable_input_is_an_error_and_writes_nothing(weights, tmp_path, capsys):
    """Measured: `predict corrupt.mp4` and a mistyped path exited 0 with `[]`."""
    video = tmp_path / "corrupt.mp4"
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42 but nothing after")
    out = tmp_path / "out.json"
    rc, _, err = _predict(weights, capsys, "-o", str(out), str(video))
    assert rc == 2 and not out.exists()
    assert f"error: {video}: cannot open the video" in err
    assert f"error: no input could be used ({video}: cannot open the video" in err and "nothing written" in err


def test_a_mistyped_path_is_named_before_any_work(weights, tmp_path, capsys, loads):
    good = _image(tmp_path / "good.png")
    out = tmp_path / "out.json"
    rc, _, err = _predict(weights, capsys, "-o", str(out), str(good), str(tmp_path / "goood.png"),
                          str(tmp_path / "nothere"))
    assert rc == 2 and loads == [] and not out.exists()
    assert err.count("\n") == 1 and "goood.png: no such file" in err and "nothere: no such file" in err


def test_the_library_reports_each_failure_and_raises_when_nothing_is_usable(weights, tmp_path):
    cfg = load_config("tiny", SETTINGS)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    seen = []
    report = predict(cfg, weights, [str(bad), str(_image(tmp_path / "a.png"))], output=tmp_path / "o.json",
                     on_failure=lambda name, why: seen.append(name))
    assert seen == [str(bad)] and report["failed"][0]["input"] == str(bad) and report["num_images"] == 1
    with pytest.warns(UserWarning, match="bad.jpg"):  # without a callback: a warning per input
        with pytest.raises(PredictInputError, match="no input could be used"):
            predict(cfg, weights, [str(bad)], output=tmp_path / "p.json")
    assert not (tmp_path / "p.json").exists()
