"""Bad data is found before any work, with an error that names the file, the image, the annotation, the key and
the value; valid data keeps loading; SynthCrowd is generated only where it should be and never left half done.

Each case was measured on the kit before it was fixed (a truncated JPEG trained as a half-grey image, duplicate
image ids merged two images' people, ``iscrowd: "0"`` made a person an ignore region, a wrong image size was found
hours into a run, ``evaluate`` without people printed -1 everywhere, an interrupted SynthCrowd was used as it was,
a mistyped ``data.root`` generated 83 MB). The data sets' counting rules are pinned against pycocotools' own
reading of the same file.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import struct
import subprocess
import sys
import warnings
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from boir_core.config import load_config
from boir_core.data import DataError, KeypointDataset, SampleSettings, read_image
from boir_core.data.imagefiles import inspect_image_file
from boir_core.data.sources import synthetic
from boir_core.engine.evaluation.evaluate import evaluate_results
from boir_core.engine.evaluation.runner import Predictor, prepare_demo_data, run_evaluation
from boir_core.paths import PathNotFound

K = 17
READ = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
NO_AUG = dict(min_scale=1.0, max_scale=1.0, max_rotation=0.0, max_translate=0.0, flip=0.0, center_jitter=False)


# ---- builders (a SynthCrowd-layout COCO file in tmp_path) ------------------------------------------------------

def picture(w: int, h: int, seed: int = 0) -> np.ndarray:
    """A smooth BGR picture (JPEG-compressible, so a cut file still decodes to something)."""
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.integers(0, 255, (h, w, 3), dtype=np.uint8), (9, 9), 0)


def jpeg(img: np.ndarray, progressive: bool = False) -> bytes:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90, cv2.IMWRITE_JPEG_PROGRESSIVE, int(progressive)])
    assert ok
    return buf.tobytes()


def png(img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", img)
    assert ok
    return buf.tobytes()


def with_exif(data: bytes, orientation: int = 6, thumbnail: bytes | None = None) -> bytes:
    """``data`` (a JPEG) with an EXIF APP1 segment after SOI: an orientation tag and, inside the segment, a
    thumbnail JPEG of another size (its frame header must not be taken for the image's)."""
    tiff = b"II*\x00" + struct.pack("<IH", 8, 1) + struct.pack("<HHII", 0x0112, 3, 1, orientation) + b"\0" * 4
    payload = b"Exif\x00\x00" + tiff + (thumbnail or b"")
    return data[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + data[2:]


def kp17(x0: float, y0: float, v=2) -> list[float]:
    """17 keypoints on a small grid from (x0, y0), all with visibility ``v`` (or the list ``v``)."""
    vs = v if isinstance(v, list) else [v] * K
    out = []
    for j in range(K):
        x, y = (x0 + 4 * (j % 5), y0 + 6 * (j // 5)) if vs[j] > 0 else (0, 0)
        out += [float(x), float(y), vs[j]]
    return out


def ann(aid: int, iid: int, x0=20.0, y0=20.0, v=2, **extra) -> dict:
    kp = kp17(x0, y0, v)
    a = {"id": aid, "image_id": iid, "category_id": 1, "iscrowd": 0, "keypoints": kp,
         "num_keypoints": sum(1 for f in kp[2::3] if f > 0), "bbox": [x0 - 2, y0 - 2, 24.0, 30.0], "area": 720.0}
    a.update(extra)
    return a


def write_set(root: Path, images: list[dict], anns: list[dict], files: dict[str, bytes] | None = None,
              split: str = "train") -> Path:
    """Write the JSON and each image (a JPEG of the listed size unless ``files`` gives the bytes)."""
    d = root / "images" / split
    d.mkdir(parents=True, exist_ok=True)
    for i, im in enumerate(images):
        name = im.get("file_name")
        if isinstance(name, str) and name:
            data = (files or {}).get(name)
            if data is None:
                w, h = im.get("width", 96), im.get("height", 80)
                data = jpeg(picture(int(w) if isinstance(w, (int, float)) and w > 0 else 96,
                                    int(h) if isinstance(h, (int, float)) and h > 0 else 80, i))
            (d / name).parent.mkdir(parents=True, exist_ok=True)
            (d / name).write_bytes(data)
    path = root / "annotations" / f"person_keypoints_{split}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": [{"id": 1, "name": "person"}]}))
    return path


def two_images(root: Path, files: dict[str, bytes] | None = None, split: str = "train") -> Path:
    images = [{"id": 1, "file_name": "a.jpg", "width": 96, "height": 80},
              {"id": 2, "file_name": "b.jpg", "width": 96, "height": 80}]
    return write_set(root, images, [ann(11, 1), ann(12, 1, 50, 30), ann(21, 2)], files, split)


def build(root: Path, split: str = "train", train: bool = True, **settings) -> KeypointDataset:
    return KeypointDataset(root, "synthcrowd", split, train, settings=SampleSettings(input_size=64, **settings))


def edit(path: Path, fn) -> None:
    d = json.loads(path.read_text())
    fn(d)
    path.write_text(json.dumps(d))


# ---- truncated and corrupt image files ---------------------------------------------------------------------------

@pytest.mark.parametrize("progressive", [False, True], ids=["baseline", "progressive"])
@pytest.mark.parametrize("keep", [0.6, -2], ids=["cut-mid-scan", "no-end-marker"])
def test_truncated_jpeg_is_an_error_naming_file_and_ids(tmp_path, progressive, keep):
    whole = jpeg(picture(96, 80, 1), progressive)
    cut = whole[:int(len(whole) * keep)] if keep > 0 else whole[:keep]
    bad = tmp_path / "images/train/b.jpg"
    two_images(tmp_path, {"b.jpg": cut})
    img = cv2.imread(str(bad), READ)  # the fault: OpenCV decodes the cut file (a warning on stderr, no error)
    assert img is not None and img.shape == (80, 96, 3)
    with pytest.raises(DataError) as e:
        build(tmp_path)
    msg = str(e.value)
    assert f"{bad}: the JPEG file is cut short" in msg
    assert "image id 2, annotation ids 21" in msg and "person_keypoints_train.json" in msg
    assert "skip_bad_samples" in msg  # what to do
    with pytest.warns(UserWarning, match="skipped 1 bad"):
        ds = build(tmp_path, skip_bad_samples=True)
    assert ds.image_ids == [1] and "cut short" in ds.skipped[0]


def test_truncated_png_is_an_error(tmp_path):
    whole = png(picture(96, 80))
    two_images(tmp_path, {"b.jpg": whole[:len(whole) // 2]})  # a PNG behind a .jpg name: found by its bytes
    with pytest.raises(DataError, match=r"b\.jpg: the PNG file is cut short \(no IEND chunk\) \(image id 2"):
        build(tmp_path)


def test_image_cut_after_the_data_set_was_built_fails_when_read(tmp_path):
    two_images(tmp_path)
    ds = build(tmp_path, train=False)
    path = tmp_path / "images/train/b.jpg"
    path.write_bytes(path.read_bytes()[:-300])
    with pytest.raises(DataError, match=rf"{path}: the JPEG file is cut short .*\(image id 2\)"):
        ds[1]
    with pytest.raises(DataError, match="cut short"):
        read_image(path, 2)


def test_complete_files_with_padding_or_a_trailer_load_unchanged(tmp_path):
    """Bytes after the end marker (zero padding, a camera's trailer) are not truncation; the pixels are
    exactly OpenCV's reading of the file."""
    base = jpeg(picture(96, 80, 3))
    files = {"a.jpg": base + b"\0" * 5000, "b.jpg": base + b"TRAILER-DATA\xff\xe0junk"}
    two_images(tmp_path, files)
    ds = build(tmp_path, train=False)
    for name in files:
        path = tmp_path / "images/train" / name
        expect = cv2.cvtColor(cv2.imread(str(path), READ), cv2.COLOR_BGR2RGB)
        np.testing.assert_array_equal(read_image(path), expect)
    assert len(ds) == 2


# ---- sizes from the header ---------------------------------------------------------------------------------------

HEADER_CASES = {
    "baseline jpeg": lambda: jpeg(picture(97, 61)),
    "progressive jpeg": lambda: jpeg(picture(61, 97), progressive=True),
    "grey jpeg": lambda: jpeg(picture(50, 40)[..., 0]),
    "exif + thumbnail": lambda: with_exif(jpeg(picture(120, 72)), 6, jpeg(picture(40, 24))),
    "fill bytes": lambda: (lambda d: d[:2] + b"\xff\xff\xff" + d[2:])(jpeg(picture(33, 17))),
    "png": lambda: png(picture(77, 45)),
    "png 16-bit grey": lambda: png((picture(31, 29)[..., 0].astype(np.uint16) * 257)),
}


@pytest.mark.parametrize("case", sorted(HEADER_CASES))
def test_header_size_matches_what_opencv_decodes(tmp_path, case):
    path = tmp_path / "f.img"
    path.write_bytes(HEADER_CASES[case]())
    info = inspect_image_file(path)
    img = cv2.imread(str(path), READ)
    assert info is not None and info.problem is None
    assert info.size == (img.shape[1], img.shape[0])
    assert read_image(path).shape[:2] == img.shape[:2]  # EXIF orientation ignored, as the header says
    if case == "exif + thumbnail":
        assert info.size == (120, 72) and cv2.imread(str(path)).shape[:2] == (120, 72)  # rotated when honoured


def test_other_formats_are_left_to_the_decoder(tmp_path):
    path = tmp_path / "x.bmp"
    cv2.imwrite(str(path), picture(20, 10))
    assert inspect_image_file(path) is None


def test_image_size_disagreeing_with_the_file_is_found_when_the_data_set_is_built(tmp_path):
    ann_file = two_images(tmp_path, {"b.jpg": jpeg(picture(80, 96))})  # the file says 96 x 80
    with pytest.raises(DataError) as e:
        build(tmp_path)
    msg = str(e.value)
    assert f"{tmp_path / 'images/train/b.jpg'}: the image is 80x96 pixels but {ann_file} says width 96, height 80" \
        in msg and "image id 2, annotation ids 21" in msg
    with pytest.warns(UserWarning, match="skipped 1 bad"):
        assert build(tmp_path, skip_bad_samples=True).image_ids == [1]
    # test mode checks every listed image too (an evaluation would die half way)
    with pytest.raises(DataError, match="80x96 pixels"):
        build(tmp_path, train=False)


# ---- ids -----------------------------------------------------------------------------------------------------------

def test_duplicate_image_ids_name_both_entries(tmp_path):
    ann_file = two_images(tmp_path)
    edit(ann_file, lambda d: d["images"][1].update(id=1))
    with pytest.raises(DataError) as e:
        build(tmp_path, skip_bad_samples=True)  # not skippable: which image's people are which is unknown
    assert str(e.value).startswith(f"{ann_file}: images[0] (a.jpg) and images[1] (b.jpg) both have image id 1")


def test_duplicate_annotation_ids_name_both_entries(tmp_path):
    ann_file = two_images(tmp_path)
    edit(ann_file, lambda d: d["annotations"][2].update(id=11))
    with pytest.raises(DataError, match=r"annotations\[0\] \(image id 1\) and annotations\[2\] \(image id 2\) both "
                                        r"have annotation id 11"):
        build(tmp_path)


# ---- types, checked up front ---------------------------------------------------------------------------------------

def _set(i, key, value, where="annotations"):
    return lambda d: d[where][i].__setitem__(key, value)


TYPE_CASES = {
    "keypoints as strings": (lambda d: d["annotations"][2].update(keypoints=[str(v) for v in d["annotations"][2][
        "keypoints"]]), r"annotation id 21 \(image id 2, b\.jpg\): 'keypoints' must be a list of 3 x 17 = 51 "
                        r"numbers; item 0 is '20\.0' \(a string\)"),
    "keypoints a string": (_set(2, "keypoints", "1 2 2"),
                           r"annotation id 21 \(image id 2, b\.jpg\): 'keypoints' must be a list .* got '1 2 2'"),
    "visibility true": (lambda d: d["annotations"][2]["keypoints"].__setitem__(2, True),
                        r"annotation id 21 .*'keypoints'.*item 2 is True \(a boolean\)"),
    "bbox with a string": (_set(2, "bbox", [1, 2, "30", 40]),
                           r"annotation id 21 \(image id 2, b\.jpg\): 'bbox' must be a list of 4 numbers .*item 2 "
                           r"is '30' \(a string\)"),
    "bbox of 3": (_set(2, "bbox", [1, 2, 3]), r"annotation id 21 .*'bbox' must be \[x, y, w, h\], got \[1, 2, 3\]"),
    "iscrowd '0'": (_set(2, "iscrowd", "0"),
                    r"annotation id 21 \(image id 2, b\.jpg\): 'iscrowd' must be 0, 1, true or false, got '0' "
                    r"\(a string\)"),
    "iscrowd 2": (_set(2, "iscrowd", 2), r"annotation id 21 .*'iscrowd' must be 0, 1, true or false, got 2"),
    "num_keypoints '3'": (_set(2, "num_keypoints", "3"),
                          r"annotation id 21 .*'num_keypoints' must be a whole number >= 0, got '3' \(a string\)"),
}


@pytest.mark.parametrize("case", sorted(TYPE_CASES))
def test_annotation_of_the_wrong_type_names_file_ids_key_and_value(tmp_path, case):
    ann_file = two_images(tmp_path)
    fn, pattern = TYPE_CASES[case]
    edit(ann_file, fn)
    with pytest.raises(DataError, match=pattern) as e:
        build(tmp_path)
    assert str(e.value).startswith(str(ann_file))
    with pytest.warns(UserWarning, match="skipped 1 bad"):  # one bad annotation costs its image only
        assert build(tmp_path, skip_bad_samples=True).image_ids == [1]


ENTRY_CASES = {
    "string image id": (lambda d: (d["images"][1].update(id="2"), d["annotations"][2].update(image_id="2")),
                        r"images\[1\] \(b\.jpg\): 'id' must be an integer, got '2' \(a string\)"),
    "string image_id": (_set(2, "image_id", "2"), r"annotations\[2\] \(annotation id 21, image id '2'\): 'image_id' "
                                                  r"must be an integer, got '2' \(a string\)"),
    "string annotation id": (_set(2, "id", "21"), r"annotations\[2\] \(annotation id '21', image id 2\): 'id' must "
                                                  r"be an integer"),
    "string width": (_set(1, "width", "96", "images"), r"images\[1\] \(image id 2, b\.jpg\): 'width' must be a "
                                                       r"positive whole number of pixels, got '96' \(a string\)"),
    "zero height": (_set(1, "height", 0, "images"), r"images\[1\] \(image id 2, b\.jpg\): 'height' must be a "
                                                    r"positive whole number of pixels, got 0"),
    "fractional width": (_set(1, "width", 95.5, "images"), r"'width' must be a positive whole number .*got 95\.5"),
    "file_name a number": (_set(1, "file_name", 7, "images"), r"images\[1\] \(image id 2\): 'file_name' must be a "
                                                              r"non-empty string, got 7 \(an? integer\)"),
}


@pytest.mark.parametrize("case", sorted(ENTRY_CASES))
def test_image_and_id_fields_of_the_wrong_type_are_errors(tmp_path, case):
    ann_file = two_images(tmp_path)
    fn, pattern = ENTRY_CASES[case]
    edit(ann_file, fn)
    with pytest.raises(DataError, match=pattern) as e:
        build(tmp_path, skip_bad_samples=True)
    assert str(e.value).startswith(str(ann_file))


def test_valid_spellings_still_load(tmp_path):
    """Boolean iscrowd, float sizes written as whole numbers (640.0), int or float keypoints: all valid."""
    images = [{"id": 1, "file_name": "a.jpg", "width": 96.0, "height": 80}]
    anns = [ann(1, 1, iscrowd=False), ann(2, 1, 50, 30, iscrowd=0),
            ann(3, 1, 10, 40, v=0, iscrowd=True, segmentation=[[0, 0, 10, 0, 10, 10, 0, 10]])]
    anns[1]["keypoints"] = [int(v) for v in anns[1]["keypoints"]]
    write_set(tmp_path, images, anns)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = build(tmp_path)
    assert ds.records[0]["ann_ids"] == [1, 2] and [a["id"] for a in ds.records[0]["ignore"]] == [3]


# ---- the cases that were already good stay good -------------------------------------------------------------------

def test_structural_faults_are_named(tmp_path):
    ann_file = two_images(tmp_path)
    edit(ann_file, lambda d: d["images"][1].pop("file_name"))
    with pytest.raises(DataError, match=rf"{ann_file}: images\[1\] lacks 'id' or 'file_name'"):
        build(tmp_path)
    ann_file.write_text(json.dumps({"images": []}))
    with pytest.raises(DataError, match=rf"{ann_file}: missing top-level key 'annotations'"):
        build(tmp_path)
    two_images(tmp_path)
    edit(ann_file, lambda d: d["annotations"][2].update(image_id=99))
    with pytest.raises(DataError, match=rf"{ann_file}: annotation id 21 refers to unknown image id 99"):
        build(tmp_path, skip_bad_samples=True)
    two_images(tmp_path)
    with pytest.raises(DataError, match=rf"{ann_file}: annotation id 11 \(image id 1, a\.jpg\): 'keypoints' has 51 "
                                        r"numbers, expected 3 x 14 = 42 for profile 'synthcrowd14'"):
        KeypointDataset(tmp_path, "synthcrowd14", "train", settings=SampleSettings(input_size=64))
    (tmp_path / "images/train/b.jpg").unlink()
    with pytest.raises(DataError, match=r"b\.jpg: image file not found \(image id 2, annotation ids 21, listed in"):
        build(tmp_path)


# ---- the counting rules, against COCO's own definitions ------------------------------------------------------------

def _coco_ground_truth(ann_file: Path) -> dict[int, bool]:
    """pycocotools' reading of the file: annotation id -> ignored by the keypoint evaluation (iscrowd, or
    num_keypoints == 0), over every image."""
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(ann_file))
        dt = gt.loadRes([{"image_id": gt.getImgIds()[0], "category_id": 1, "keypoints": [1.0] * 3 * K,
                          "score": 1.0}])
        ev = COCOeval(gt, dt, "keypoints")
        ev._prepare()  # noqa: SLF001  (where COCOeval decides which ground truth counts)
    return {g["id"]: bool(g["ignore"]) for gts in ev._gts.values() for g in gts}  # noqa: SLF001


def test_people_and_ignore_regions_follow_cocoeval(tmp_path):
    """A person: non-crowd with a labelled keypoint (COCO: num_keypoints > 0); an ignore region: a crowd
    annotation (iscrowd 1 or true) or a person without labelled keypoints (num_keypoints 0), exactly the
    ground truth COCOeval ignores."""
    images = [{"id": 1, "file_name": "a.jpg", "width": 96, "height": 80},
              {"id": 2, "file_name": "b.jpg", "width": 96, "height": 80}]
    seg = [[0, 0, 20, 0, 20, 20, 0, 20]]
    one = [0] * K
    one[5] = 1  # one keypoint, labelled but not visible
    anns = [ann(1, 1), ann(2, 1, 50, 30, v=one), ann(3, 1, v=0, segmentation=seg),
            ann(4, 1, v=0, iscrowd=1, segmentation=seg), ann(5, 2, iscrowd=True, segmentation=seg),
            ann(6, 2, 40, 10)]
    ann_file = write_set(tmp_path, images, anns)
    coco = _coco_ground_truth(ann_file)
    assert coco == {1: False, 2: False, 3: True, 4: True, 5: True, 6: False}
    for train in (True, False):
        ds = build(tmp_path, train=train)
        people = {a for r in ds.records for a in r["ann_ids"]}
        ignored = {a["id"] for r in ds.records for a in r["ignore"]}
        assert people == {i for i, ign in coco.items() if not ign}
        assert ignored == {i for i, ign in coco.items() if ign}
    assert ds.summary()["people"] == 3 and ds.summary()["ignored_annotations"] == 3


def test_visibility_values_follow_coco(tmp_path):
    """v = 0: not labelled (instance mask 0, nothing drawn, not in the center); v = 1 (labelled, not visible)
    and v = 2 (labelled, visible): both labelled, drawn and counted, as COCO's OKS counts v > 0."""
    v = [2, 1, 0] * 5 + [1, 0]
    images = [{"id": 1, "file_name": "a.jpg", "width": 128, "height": 128}]
    write_set(tmp_path, images, [ann(1, 1, 30, 30, v=v, bbox=[20.0, 20.0, 40.0, 50.0])])
    ds = KeypointDataset(tmp_path, "synthcrowd", "train",
                         settings=SampleSettings(input_size=128, output_size=128, **NO_AUG))
    s = ds[0]
    labelled = np.array(v) > 0
    np.testing.assert_array_equal(s["instance_mask"][0].numpy(), labelled.astype(np.float32))
    assert ds.summary()["labelled_keypoints"] == int(labelled.sum()) == 11
    kp = np.asarray(ann(1, 1, 30, 30, v=v)["keypoints"], float).reshape(K, 3)
    np.testing.assert_allclose(s["instance_center"][0].numpy(), kp[labelled, :2].mean(0), atol=1e-4)
    peaks = s["instance_heatmap"][0].amax(dim=(1, 2)).numpy()
    np.testing.assert_array_equal(peaks == 1.0, labelled)  # drawn for v = 1 and 2, not for v = 0


def test_num_keypoints_field_is_not_what_counts(tmp_path):
    """The kit counts labelled keypoints from the visibility flags, never from ``num_keypoints`` (CrowdPose's
    files count only the 12 body joints there: docs/data_format.md#which-annotations-are-used)."""
    a = ann(1, 1)
    a["num_keypoints"] = 5  # 17 labelled
    write_set(tmp_path, [{"id": 1, "file_name": "a.jpg", "width": 96, "height": 80}], [a])
    ds = build(tmp_path)
    assert ds.summary()["labelled_keypoints"] == K and ds.records[0]["ann_ids"] == [1]


# ---- evaluate without people ---------------------------------------------------------------------------------------

def test_evaluate_on_ground_truth_without_people_is_an_error(tmp_path):
    ann_file = two_images(tmp_path, split="val")
    edit(ann_file, lambda d: d.update(annotations=[]))
    gt = json.loads(ann_file.read_text())
    pose = {"image_id": 1, "category_id": 1, "keypoints": kp17(20, 20), "score": 0.9}
    metrics = evaluate_results([pose], {**gt, "annotations": []})  # the fault: every metric -1, nothing said
    assert set(metrics.values()) == {-1.0}
    cfg = load_config("tiny", [f"data.root={tmp_path}", "train.device=cpu"])
    with pytest.raises(DataError) as e:
        run_evaluation(cfg, None, out_dir=tmp_path / "eval", predictor=Predictor(cfg, model=object()),
                       progress=False)  # before decoding
    msg = str(e.value)
    assert msg.startswith(f"{ann_file}: no people to evaluate against: none of its 2 images has a person")
    assert "every metric would be -1" in msg and not (tmp_path / "eval").exists()


# ---- SynthCrowd generation ------------------------------------------------------------------------------------------

#: a tiny set: 2 train + 1 val images of 64-80 px, at most 2 people
SMALL = synthetic.SynthCrowdSpec(num_train=2, num_val=1, image_size=(64, 80), max_people=2)


@pytest.fixture
def small_defaults(monkeypatch, tmp_path):
    """A fresh working folder, the default SynthCrowd made small (2 train + 1 val images)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(synthetic, "DEFAULT_TRAIN", 2)
    monkeypatch.setattr(synthetic, "DEFAULT_VAL", 1)
    return load_config("tiny")  # data.root: data/synthcrowd, from the working folder


def test_interrupted_generation_leaves_nothing_behind(tmp_path, monkeypatch):
    real = synthetic._generate_split

    def stop_at_val(root, split, *a, **k):
        if split == "val":
            raise KeyboardInterrupt
        return real(root, split, *a, **k)

    monkeypatch.setattr(synthetic, "_generate_split", stop_at_val)
    root = tmp_path / "data" / "synthcrowd"
    with pytest.raises(KeyboardInterrupt):
        synthetic.make_synthcrowd(root, SMALL)
    assert list((tmp_path / "data").iterdir()) == []  # no half set, no temporary folder


def test_a_killed_generations_temporary_folder_is_removed_by_the_next(tmp_path):
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = tmp_path / f".sc.generating-{int(done.stdout)}-x1"  # its process is gone
    live = tmp_path / f".sc.generating-{os.getppid()}-x2"  # a generation still running (the parent process)
    for d in (dead, live):
        (d / "images/train").mkdir(parents=True)
    synthetic.make_synthcrowd(tmp_path / "sc", replace(SMALL, num_train=1))
    assert not dead.exists() and live.exists()
    assert synthetic.synthcrowd_state(tmp_path / "sc") == ("complete", "")
    assert os.stat(tmp_path / "sc").st_mode & 0o777 == 0o777 & ~_umask()  # not mkdtemp's private 0700


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_regenerating_into_a_folder_keeps_what_is_not_synthcrowds(tmp_path):
    root = tmp_path / "sc"
    synthetic.make_synthcrowd(root, replace(SMALL, num_train=3))
    (root / "notes.txt").write_text("mine")
    synthetic.make_synthcrowd(root, replace(SMALL, seed=1))
    assert (root / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in (root / "images/train").iterdir()) == ["000001.jpg", "000002.jpg"]
    assert synthetic.synthcrowd_state(root) == ("complete", "")


def test_default_synthcrowd_is_generated_in_a_fresh_folder(small_defaults, tmp_path):
    said: list[str] = []
    assert prepare_demo_data(small_defaults, said.append) is True
    assert synthetic.synthcrowd_state(tmp_path / "data/synthcrowd") == ("complete", "")
    assert "no synthcrowd data at data.root=data/synthcrowd" in said[0] and "generating" in said[0]
    assert prepare_demo_data(small_defaults, said.append) is False and len(said) == 2


def test_an_old_interrupted_synthcrowd_is_regenerated_not_used(small_defaults, tmp_path):
    root = tmp_path / "data/synthcrowd"  # what an older kit's interrupted run left: images, no annotations
    (root / "images/train").mkdir(parents=True)
    (root / "images/train/000001.jpg").write_bytes(jpeg(picture(64, 64)))
    assert synthetic.synthcrowd_state(root) == ("incomplete", f"no completion marker {synthetic.MARKER_NAME}, no "
                                                "annotations/person_keypoints_train.json or "
                                                "annotations/person_keypoints_val.json")
    said: list[str] = []
    assert prepare_demo_data(small_defaults, said.append) is True
    assert "an incomplete SynthCrowd (no completion marker" in said[0] and "not used as it is" in said[0]
    assert synthetic.synthcrowd_state(root) == ("complete", "")
    assert len(build(root)) >= 1  # it loads now ("annotation file not found" before)
    (root / "images/val/000001.jpg").unlink()  # a set that lost a file: incomplete again, regenerated
    assert synthetic.synthcrowd_state(root)[0] == "incomplete"
    assert prepare_demo_data(small_defaults, said.append) is True and "holds 0 of its 1 images" in said[-2]


def test_a_mistyped_data_root_is_an_error_not_83_mb(small_defaults, tmp_path):
    cfg = small_defaults.override("data.root=data/synthcrwod")
    with pytest.raises(PathNotFound) as e:
        prepare_demo_data(cfg, print)
    msg = str(e.value)
    assert msg.startswith(f"data.root=data/synthcrwod ({(tmp_path / 'data/synthcrwod').resolve()}) does not exist")
    assert "only at its default folder data.root=data/synthcrowd" in msg
    # how to generate it there on purpose
    assert "ensure_synthcrowd('data/synthcrwod', SynthCrowdSpec(num_keypoints=17))" in msg
    assert not (tmp_path / "data").exists()


def test_an_incomplete_set_elsewhere_is_an_error_and_someones_data_is_left_alone(small_defaults, tmp_path):
    mine = tmp_path / "mine"
    (mine / "annotations").mkdir(parents=True)
    (mine / "annotations/person_keypoints_train.json").write_text("{}")  # SynthCrowd's names only: a leftover
    with pytest.raises(DataError, match=rf"data.root={mine} .*holds an incomplete SynthCrowd set \(no completion "
                                        r"marker .*ensure_synthcrowd"):
        prepare_demo_data(small_defaults.override(f"data.root={mine}"), print)
    assert sorted(p.name for p in mine.rglob("*")) == ["annotations", "person_keypoints_train.json"]
    # both annotation files (someone's data in SynthCrowd's layout), or anything else: used as it is
    (mine / "annotations/person_keypoints_val.json").write_text("{}")
    assert synthetic.synthcrowd_state(mine)[0] == "other"
    assert prepare_demo_data(small_defaults.override(f"data.root={mine}"), print) is False
    (mine / "annotations/person_keypoints_val.json").unlink()
    (mine / "README.txt").write_text("my own data")
    assert synthetic.synthcrowd_state(mine)[0] == "other"
    assert prepare_demo_data(small_defaults.override(f"data.root={mine}"), print) is False
    default = tmp_path / "data/synthcrowd"
    default.mkdir(parents=True)
    (default / "list.txt").write_text("mine too")  # even at the default folder
    assert prepare_demo_data(small_defaults, print) is False and [p.name for p in default.iterdir()] == ["list.txt"]
