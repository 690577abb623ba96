"""Valid but unusual real annotation files load without loss (issue: a PoseTrack-style file was rejected).

The file built here has what real exports hold: boolean ``iscrowd``, float keypoints, labelled keypoints
outside the frame (25 px above it, 12 px right of it), nested ``file_name`` paths and extra keys at every
level. Strict mode must load every image and every annotation; the summary counts the out-of-frame points;
the targets treat them as docs/data_format.md#targets says the release does.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from boir_core.data import DataError, DataFiles, KeypointDataset, SampleSettings
from boir_core.data.transforms import AffineParams

NOSE, L_EYE, R_EYE, L_WRIST = 0, 1, 2, 9


def body(x0, y0, w, h, rng):
    """17 float keypoints (x, y, v) spread over the box, all labelled."""
    return [[round(float(x0 + rng.uniform(0.1, 0.9) * w), 3), round(float(y0 + rng.uniform(0.1, 0.9) * h), 3),
             2.0] for _ in range(17)]


def posetrack_like(root: Path) -> tuple[Path, dict]:
    rng = np.random.default_rng(11)
    sizes = {1: (320, 240), 2: (300, 220), 3: (240, 320)}
    names = {1: "posetrack/val/000342_mpii/000001.jpg", 2: "posetrack/val/000342_mpii/000002.jpg",
             3: "other/sub/dir/x.jpg"}
    images = [{"id": i, "file_name": names[i], "width": w, "height": h, "frame_id": 10000 + i,
               "vid_id": "000342", "is_labeled": True, "nframes": 3, "ignore_regions_x": []}
              for i, (w, h) in sizes.items()]
    for im in images:
        path = root / "images" / im["file_name"]
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), rng.integers(0, 255, (im["height"], im["width"], 3), dtype=np.uint8))

    def ann(aid, iid, kp, bbox, crowd=False, **extra):
        a = {"id": aid, "image_id": iid, "category_id": 1, "iscrowd": crowd, "bbox": [float(v) for v in bbox],
             "keypoints": [c for p in kp for c in p], "num_keypoints": sum(p[2] > 0 for p in kp),
             "track_id": aid % 3, "bbox_head": [1.5, 2.5, 20.0, 20.0], "attributes": {"occluded": False}}
        a.update(extra)
        return a

    anns = []
    # image 1: a truncated person whose head is 25 px above the frame, and a normal one
    kp = body(40, 0, 90, 200, rng)
    for j in (NOSE, L_EYE, R_EYE):
        kp[j][1] = -25.0 + 0.5 * j
    anns.append(ann(1, 1, kp, [40, 0, 90, 200]))
    anns.append(ann(2, 1, body(180, 30, 80, 190, rng), [180, 30, 80, 190]))
    # image 2: a wrist 12 px right of the frame (its box reaches out too), a crowd region (RLE, iscrowd True)
    kp = body(200, 20, 90, 190, rng)
    kp[L_WRIST][:2] = [312.0, 100.25]
    anns.append(ann(3, 2, kp, [200, 20, 112, 190]))
    crowd = np.zeros((220, 300), np.uint8, order="F")
    crowd[150:210, 10:90] = 1
    rle = mask_utils.encode(crowd)
    rle["counts"] = rle["counts"].decode()
    anns.append(ann(4, 2, [[0.0, 0.0, 0.0]] * 17, [10, 150, 80, 60], crowd=True, segmentation=rle))
    # image 3 (portrait): one person inside, one unlabelled person (num_keypoints 0, a polygon)
    anns.append(ann(5, 3, body(50, 60, 120, 240, rng), [50, 60, 120, 240]))
    anns.append(ann(6, 3, [[0.0, 0.0, 0.0]] * 17, [180, 10, 40, 60],
                    segmentation=[[180.0, 10.0, 220.0, 10.0, 220.0, 70.0, 180.0, 70.0]]))
    data = {"info": {"description": "PoseTrack-style export"}, "licenses": [{"id": 1, "name": "x"}],
            "images": images, "annotations": anns,
            "categories": [{"id": 1, "name": "person", "supercategory": "person", "keypoints": [], "skeleton": []}]}
    path = root / "annotations" / "val.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path, data


def build(root, ann_file, train: bool = True, **settings):
    return KeypointDataset(root, "coco", "val", train, settings=SampleSettings(**settings),
                           files=DataFiles(ann_file=ann_file, image_dir=root / "images"))


@pytest.mark.parametrize("skip_bad_samples", [False, True])
def test_every_sample_loads_and_nothing_is_lost(tmp_path, skip_bad_samples):
    ann_file, data = posetrack_like(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not even a "skipped" warning
        train = build(tmp_path, ann_file, input_size=128, seed=0, skip_bad_samples=skip_bad_samples)
        test = build(tmp_path, ann_file, train=False, input_size=128, skip_bad_samples=skip_bad_samples)
    assert train.image_ids == test.image_ids == [1, 2, 3] and train.skipped == [] == test.skipped
    people = [a for a in data["annotations"] if not a["iscrowd"] and a["num_keypoints"] > 0]
    for i, rec in enumerate(train.records):  # every annotation is kept, float coordinates exactly
        mine = [a for a in people if a["image_id"] == rec["image_id"]]
        assert rec["ann_ids"] == [a["id"] for a in mine]
        np.testing.assert_array_equal(rec["keypoints"], np.array([a["keypoints"] for a in mine]).reshape(-1, 17, 3))
        assert len(rec["ignore"]) == {1: 0, 2: 1, 3: 1}[rec["image_id"]]  # the crowd and the unlabelled person
    for i in range(3):
        s = train[i]
        assert s["instance_coord"].shape[0] >= 1 and np.isfinite(s["multi_heatmap"].numpy()).all()
        assert test[i]["image"].shape[0] == 3
    assert train[1]["multi_mask"].min() == 0  # the crowd region is ignored
    assert train.summary() == {"images": 3, "people": 4, "labelled_keypoints": 68, "keypoints_outside_image": 4,
                               "people_with_keypoints_outside": 2, "ignored_annotations": 2, "skipped": 0}
    assert "4 people, 68 labelled keypoints (4 outside their image)" in repr(train)


def test_out_of_frame_keypoints_follow_the_release(tmp_path):
    """A keypoint 25 px above the frame keeps instance mask 1 and counts in the center. It is drawn only
    where its pixel lands in the output map: not without augmentation (it maps above the map: an
    all-negative channel), yes when the view zooms out (then the ignore mask is 0 there, because that
    pixel is outside the image, so only the instance heatmap trains on it)."""
    ann_file, data = posetrack_like(tmp_path)
    ds = build(tmp_path, ann_file, input_size=128, center_jitter=False, seed=0)
    a = data["annotations"][0]
    kp = np.array(a["keypoints"]).reshape(17, 3)
    w, h = 320, 240
    s0 = min(w, h) / 200
    for scale, drawn in ((1.0, False), (1.5, True)):
        s = ds.load_train(0, params=AffineParams((w / 2, h / 2), scale * s0, 0.0, False))
        f = 32 / (200 * scale * s0)
        expect = (kp[:, :2] - [w / 2, h / 2]) * f + 16  # closed form of the affine (no rotation)
        n = int(np.argmin(np.abs(s["instance_keypoints"][:, :, :2].numpy() - expect).max(axis=(1, 2))))
        np.testing.assert_allclose(s["instance_keypoints"][n, :, :2].numpy(), expect, atol=1e-4)
        np.testing.assert_allclose(s["instance_center"][n].numpy(), expect.mean(0), atol=1e-4)
        assert s["instance_mask"][n].tolist() == [1.0] * 17
        for j in (NOSE, L_EYE, R_EYE):
            x, y = expect[j]
            hm = s["instance_heatmap"][n, j].numpy()
            if drawn:
                assert -1 < y < 32 and hm[int(y), int(x)] == 1.0 and hm.max() == 1.0
                assert s["multi_mask"][0, int(y), int(x)] == 0  # outside the image: ignored by the BUK loss
            else:
                assert y <= -1 and hm.max() == 0.0  # no peak: the point is outside the map
        assert s["multi_heatmap"].max() <= 1.0


@pytest.mark.parametrize("edit, pattern", [
    (lambda d: d["annotations"][0].update(keypoints=d["annotations"][0]["keypoints"][:-3]),
     "annotation id 1 .*has 48 numbers"),
    (lambda d: d["annotations"][2]["keypoints"].__setitem__(4, float("nan")), "annotation id 3 .*NaN"),
    (lambda d: d["annotations"][4]["keypoints"].__setitem__(2, 5), "annotation id 5 .*visibility flags"),
])
def test_what_is_really_broken_is_still_an_error(tmp_path, edit, pattern):
    ann_file, data = posetrack_like(tmp_path)
    edit(data)
    ann_file.write_text(json.dumps(data))
    with pytest.raises(DataError, match=pattern) as e:
        build(tmp_path, ann_file, input_size=128)
    msg = str(e.value)
    assert str(ann_file) in msg and ("posetrack/val/000342_mpii/" in msg or "other/sub/dir/x.jpg" in msg)


def test_missing_nested_image_names_file_and_annotations(tmp_path):
    ann_file, _ = posetrack_like(tmp_path)
    (tmp_path / "images/other/sub/dir/x.jpg").unlink()
    with pytest.raises(DataError, match=r"other/sub/dir/x.jpg: image file not found "
                                        r"\(image id 3, annotation ids 5, 6, listed in .*val.json\)"):
        build(tmp_path, ann_file, input_size=128)
