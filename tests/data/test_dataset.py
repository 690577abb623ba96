"""KeypointDataset on tiny COCO JSONs built in tmp_path: contract, geometry, flips, masks, bad input."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from boir_data_builders import person, simple_set, write_coco

from boir_core.config import Config
from boir_core.data import (
    DataError,
    EpochSampler,
    KeypointDataset,
    SampleSettings,
    collate_test,
    collate_train,
    get_profile,
)
from boir_core.data.transforms import IMAGENET_MEAN, IMAGENET_STD

TRAIN_KEYS = {"image", "multi_heatmap", "multi_mask", "instance_coord", "instance_center", "instance_heatmap",
              "instance_mask", "instance_bbox", "instance_keypoints", "image_id"}
NO_AUG = dict(min_scale=1.0, max_scale=1.0, max_rotation=0.0, max_translate=0.0, flip=0.0)


def test_training_sample_follows_the_contract(tiny_coco):
    ds = KeypointDataset(tiny_coco, "synthcrowd", "train", settings=SampleSettings(input_size=128, seed=0))
    assert len(ds) == 2 and ds.output_size == 32
    s = ds[0]
    assert set(s) == TRAIN_KEYS
    n = len(s["instance_coord"])
    assert n == 2
    expect = {"image": ((3, 128, 128), torch.float32), "multi_heatmap": ((18, 32, 32), torch.float32),
              "multi_mask": ((1, 32, 32), torch.float32), "instance_coord": ((n, 2), torch.int64),
              "instance_center": ((n, 2), torch.float32), "instance_heatmap": ((n, 17, 32, 32), torch.float32),
              "instance_mask": ((n, 17), torch.float32), "instance_bbox": ((n, 4), torch.float32),
              "instance_keypoints": ((n, 17, 3), torch.float32)}
    for k, (shape, dtype) in expect.items():
        assert tuple(s[k].shape) == shape and s[k].dtype == dtype, k
    assert isinstance(s["image_id"], int) and s["image_id"] == 1


def test_keypoints_follow_the_closed_form_without_augmentation(tiny_coco):
    ds = KeypointDataset(tiny_coco, "synthcrowd", "train",
                         settings=SampleSettings(input_size=64, center_jitter=False, **NO_AUG))
    s = ds[0]
    raw = np.array(json.loads((tiny_coco / "annotations/person_keypoints_train.json").read_text())
                   ["annotations"][0]["keypoints"]).reshape(17, 3)
    # 128x96 image, short side 96 -> 16 output px, image center (64, 48) -> map center (8, 8)
    expect = (raw[:, :2] - [64, 48]) * 16 / 96 + 8
    got = s["instance_keypoints"].numpy()
    i = int(np.argmin([np.abs(g[:, :2] - expect).max() for g in got]))
    np.testing.assert_allclose(got[i, :, :2], expect, atol=1e-4)
    # box [10, 10, 40, 60] -> x from -1 to 5.67, y from 1.67 to 11.67: "correct" clipping cuts x at 0
    np.testing.assert_allclose(s["instance_bbox"][i].numpy(), [0, 10 / 6, 34 / 6, 10], atol=1e-4)
    c = s["instance_coord"][i].tolist()
    assert c == np.trunc(expect.mean(0)[::-1]).astype(int).tolist()
    for j in range(17):  # every in-map keypoint peaks at 1.0 in the instance heatmap and the BUK channel
        x, y = np.trunc(expect[j]).astype(int)  # int() as the release: toward zero
        if 0 <= x < 16 and 0 <= y < 16:
            assert s["instance_heatmap"][i, j, y, x] == 1.0 and s["multi_heatmap"][j, y, x] == 1.0
    assert s["multi_heatmap"][17, c[0], c[1]] == 1.0


def _dot_image(tmp_path, px, py, flip_alignment):
    """A black 256² image with a white 3×3 dot at (px, py) labelled as left_eye; forced flip."""
    img = np.zeros((256, 256, 3), np.uint8)
    img[py - 1:py + 2, px - 1:px + 2] = 255
    kp = [(0, 0, 0)] * 17
    kp[1] = (px, py, 2)
    write_coco(tmp_path, [{"id": 7, "file_name": "dot.png", "width": 256, "height": 256}],
               [person(1, 7, kp, [px - 30, py - 30, 60, 60])], pixels={7: img})
    ds = KeypointDataset(tmp_path, "synthcrowd", "train",
                         settings=SampleSettings(input_size=256, flip_alignment=flip_alignment, center_jitter=False,
                                                 **{**NO_AUG, "flip": 1.0}))
    s = ds[0]
    red = s["image"][0].numpy() * IMAGENET_STD[0] + IMAGENET_MEAN[0]
    ys, xs = np.nonzero(red > 0.5)
    return s, xs.mean(), ys.mean()


@pytest.mark.parametrize("mode, offset", [("correct", 0.0), ("release", 3.0)])
def test_flip_label_versus_the_flipped_image(tmp_path, mode, offset):
    px, py = 100, 80
    s, x_img, y_img = _dot_image(tmp_path, px, py, mode)
    assert x_img == pytest.approx(255 - px) and y_img == pytest.approx(py)
    kp = s["instance_keypoints"][0].numpy()
    assert kp[1, 2] == 0 and kp[2, 2] == 2  # left_eye became right_eye (flip index)
    x_label = 4 * kp[2, 0]  # output -> input pixels (x_in = 4·x_out)
    assert x_img - x_label == pytest.approx(offset, abs=1e-4)  # release: 3 input px = 0.75 output px off
    assert 4 * kp[2, 1] == pytest.approx(y_img)


def _rle(mask: np.ndarray) -> dict:
    """Uncompressed COCO RLE (column-major run lengths starting with zeros)."""
    flat = mask.flatten(order="F").astype(np.uint8)
    counts, cur, run = [], 0, 0
    for v in flat:
        if v != cur:
            counts.append(run)
            cur, run = v, 0
        run += 1
    counts.append(run)
    return {"counts": counts, "size": list(mask.shape)}


def _mask_set(tmp_path):
    crowd = np.zeros((128, 128), np.uint8)
    crowd[:64, :64] = 1
    kp = [(70 + j, 70 + j, 2) for j in range(17)]
    anns = [person(1, 1, kp, [60, 60, 40, 40]),
            person(2, 1, [(0, 0, 0)] * 17, [0, 0, 64, 64], iscrowd=1, segmentation=_rle(crowd)),
            person(3, 1, [(0, 0, 0)] * 17, [96, 0, 32, 32], segmentation=[[96, 0, 128, 0, 128, 32, 96, 32]])]
    write_coco(tmp_path, [{"id": 1, "file_name": "m.png", "width": 128, "height": 128}], anns)
    return tmp_path


def test_ignore_mask_crowd_unlabelled_and_padding(tmp_path):
    root = _mask_set(tmp_path)
    m = KeypointDataset(root, "synthcrowd", "train",
                        settings=SampleSettings(input_size=128, **NO_AUG))[0]["multi_mask"][0].numpy()
    assert m[:15, :15].max() == 0  # crowd region (RLE)
    assert m[:7, 25:].max() == 0  # unlabelled person (polygon)
    assert m[18:, :].min() == 1 and m[:, 17:23].min() == 1
    # CrowdPose / OCHuman rule: no crowd mask, only padding is ignored
    no_crowd = dataclasses.replace(get_profile("synthcrowd"), crowd_ignore_mask=False)
    m2 = KeypointDataset(root, no_crowd, "train",
                         settings=SampleSettings(input_size=128, **NO_AUG))[0]["multi_mask"][0].numpy()
    assert m2.min() == 1
    zoom_out = {**NO_AUG, "min_scale": 1.5, "max_scale": 1.5}
    m3 = KeypointDataset(root, no_crowd, "train",
                         settings=SampleSettings(input_size=128, **zoom_out))[0]["multi_mask"][0].numpy()
    assert m3[0, 0] == 0 and m3[-1, -1] == 0 and m3[16, 16] == 1 and m3[7:26, 7:26].min() == 1
    assert m3[:, :5].max() == 0 and m3[:, 28:].max() == 0  # the image covers output px 5.3 .. 26.7


def test_train_filter_rules_and_test_mode(tmp_path):
    kp = [(20 + j, 20 + j, 2) for j in range(17)]
    images = [{"id": i, "file_name": f"{i}.png", "width": 64, "height": 64} for i in (1, 2, 3)]
    anns = [person(1, 1, kp, [10, 10, 40, 40]), person(2, 2, [(0, 0, 0)] * 17, [10, 10, 40, 40])]
    write_coco(tmp_path, images, anns)
    assert KeypointDataset(tmp_path, "synthcrowd", "train", settings=SampleSettings(input_size=64)).image_ids == [1]
    anyrule = dataclasses.replace(get_profile("synthcrowd"), train_filter="any")
    assert KeypointDataset(tmp_path, anyrule, "train", settings=SampleSettings(input_size=64)).image_ids == [1, 2]
    test = KeypointDataset(tmp_path, "synthcrowd", "train", train=False, settings=SampleSettings(input_size=64))
    assert test.image_ids == [1, 2, 3]
    s = test[2]
    assert set(s) == {"image", "image_id", "meta"} and s["image"].shape == (3, 64, 64)
    assert set(s["meta"]) == {"center", "scale", "size", "trans_inv"} and s["meta"]["size"] == (64, 64)
    batch = collate_test([s, test[0]])
    assert isinstance(batch, list) and [b["image_id"] for b in batch] == [3, 1]


def test_seeded_samples_repeat_and_epochs_differ(tiny_coco):
    a = KeypointDataset(tiny_coco, "synthcrowd", "train", settings=SampleSettings(input_size=64, seed=5))
    b = KeypointDataset(tiny_coco, "synthcrowd", "train", settings=SampleSettings(input_size=64, seed=5))
    x, y = a[1], b[1]
    for k in TRAIN_KEYS - {"image_id"}:
        assert torch.equal(x[k], y[k]), k
    b.set_epoch(1)
    assert not torch.equal(b[1]["image"], x["image"])
    # an (epoch, index) pair, as EpochSampler yields it, selects that epoch's stream
    assert torch.equal(a[(1, 1)]["image"], b[1]["image"]) and a.epoch == 1
    assert torch.equal(a[(0, 1)]["image"], x["image"])


def test_epoch_sampler_carries_the_epoch_with_every_index():
    inner = torch.utils.data.DistributedSampler(range(6), num_replicas=1, rank=0, shuffle=True, seed=3)
    s = EpochSampler(inner)
    first = list(s)
    assert len(s) == 6 and sorted(i for _, i in first) == list(range(6)) and {e for e, _ in first} == {0}
    s.set_epoch(2)
    second = list(s)
    assert inner.epoch == 2 and {e for e, _ in second} == {2}
    assert [i for _, i in second] != [i for _, i in first]  # the order is reshuffled per epoch


def test_from_config(tiny_coco):
    cfg = Config().override(f"data.root={tiny_coco}", "data.dataset=synthcrowd", "data.input_size=64",
                            "data.output_size=16", "data.flip_alignment=release", "data.box_clipping=release")
    ds = KeypointDataset.from_config(cfg, train=True)
    assert (len(ds), ds.input_size, ds.output_size, ds.flip_alignment, ds.box_clipping) == \
        (2, 64, 16, "release", "release")
    assert ds.seed == cfg.train.seed and ds.max_instances == 200
    with pytest.raises(DataError, match="person_keypoints_val.json: annotation file not found"):
        KeypointDataset.from_config(cfg, train=False)


def test_collate_with_empty_images(tmp_path):
    kp = [(20 + j, 20 + j, 2) for j in range(17)]
    tiny = [(30, 30, 2)] * 17
    images = [{"id": i, "file_name": f"{i}.png", "width": 64, "height": 64} for i in (1, 2)]
    # person 2 is 4×4 px: < 32² input px², so under the COCO rule it has no center and no instance
    anns = [person(1, 1, kp, [10, 10, 40, 40]), person(2, 2, tiny, [28, 28, 4, 4])]
    write_coco(tmp_path, images, anns)
    ds = KeypointDataset(tmp_path, "synthcrowd", "train", settings=SampleSettings(input_size=64, **NO_AUG))
    full, empty = ds[0], ds[1]
    assert len(full["instance_coord"]) == 1 and len(empty["instance_coord"]) == 0
    assert empty["multi_heatmap"][:17].max() == 1.0  # its keypoints still train the BUK channels
    batch = collate_train([empty, full, empty])
    assert batch["image"].shape == (3, 3, 64, 64) and batch["image_id"].tolist() == [2, 1, 2]
    assert batch["instance_imgid"].tolist() == [1]
    assert batch["instance_heatmap"].shape == (1, 17, 16, 16) and batch["instance_mask"].shape == (1, 17)
    none = collate_train([empty, empty])
    assert none["instance_coord"].shape == (0, 2) and none["instance_imgid"].shape == (0,)
    assert none["instance_heatmap"].shape == (0, 17, 16, 16)
    with pytest.raises(KeyError, match="test sample"):
        collate_train([{"image": torch.zeros(3, 4, 4), "image_id": 1, "meta": {}}])


# ---- bad input --------------------------------------------------------------------------------------

def _edit(root, fn):
    p = root / "annotations/person_keypoints_train.json"
    d = json.loads(p.read_text())
    fn(d)
    p.write_text(json.dumps(d))
    return p


def _kp(d, i=0):
    return d["annotations"][i]["keypoints"]


BAD_ANNOTATIONS = {
    "missing keypoints": (lambda d: d["annotations"][2].pop("keypoints"), "annotation id 3.*missing 'keypoints'"),
    "wrong length": (lambda d: d["annotations"][2].update(keypoints=_kp(d, 2)[:-3]),
                     "annotation id 3.*has 48 numbers, expected 3 x 17 = 51"),
    "degenerate box": (lambda d: d["annotations"][2].update(bbox=[30, 30, 0, 60]),
                       "annotation id 3.*degenerate bbox"),
    "nan keypoint": (lambda d: d["annotations"][2]["keypoints"].__setitem__(1, float("nan")),
                     "annotation id 3.*NaN"),
    "infinite keypoint": (lambda d: d["annotations"][2]["keypoints"].__setitem__(3, float("inf")),
                          "annotation id 3.*NaN or infinity"),
    "visibility 3": (lambda d: d["annotations"][2]["keypoints"].__setitem__(5, 3),
                     r"annotation id 3.*visibility flags must be 0, 1 or 2, got \[2.0, 3.0\]"),
    "unknown image": (lambda d: d["annotations"][2].update(image_id=99), "annotation id 3 refers to unknown image"),
}


@pytest.mark.parametrize("case", sorted(BAD_ANNOTATIONS))
def test_bad_annotation_is_named_or_skipped(tmp_path, case):
    simple_set(tmp_path)
    edit, pattern = BAD_ANNOTATIONS[case]
    ann = _edit(tmp_path, edit)
    with pytest.raises(DataError, match=pattern) as e:
        KeypointDataset(tmp_path, "synthcrowd", "train", settings=SampleSettings(input_size=64))
    assert str(ann) in str(e.value)
    if case == "unknown image":
        return  # an annotation of no image cannot be skipped with its image
    assert "b.png" in str(e.value)
    with pytest.warns(UserWarning, match="skipped 1 bad"):
        ds = KeypointDataset(tmp_path, "synthcrowd", "train",
                             settings=SampleSettings(input_size=64, skip_bad_samples=True))
    assert ds.image_ids == [1] and len(ds.skipped) == 1


def test_wrong_keypoint_count_for_the_profile(tmp_path):
    simple_set(tmp_path)  # 17 keypoints, read with a 14-keypoint profile
    with pytest.raises(DataError, match="expected 3 x 14 = 42 for profile 'synthcrowd14'"):
        KeypointDataset(tmp_path, "synthcrowd14", "train", settings=SampleSettings(input_size=64))
    with pytest.warns(UserWarning, match="skipped 3 bad"):
        ds = KeypointDataset(tmp_path, "synthcrowd14", "train",
                             settings=SampleSettings(input_size=64, skip_bad_samples=True))
    assert len(ds) == 0


def test_malformed_json(tmp_path):
    ann = simple_set(tmp_path)
    ann.write_text(ann.read_text()[:-20])
    with pytest.raises(DataError, match="person_keypoints_train.json: not valid JSON"):
        KeypointDataset(tmp_path, "synthcrowd", "train", settings=SampleSettings(skip_bad_samples=True))
    ann.write_text(json.dumps({"images": []}))
    with pytest.raises(DataError, match="missing top-level key 'annotations'"):
        KeypointDataset(tmp_path, "synthcrowd", "train")
    ann.write_text(json.dumps({"images": [{"id": 1}], "annotations": []}))
    with pytest.raises(DataError, match=r"images\[0\] lacks 'id' or 'file_name'"):
        KeypointDataset(tmp_path, "synthcrowd", "train")


def test_missing_image_file(tmp_path):
    simple_set(tmp_path)
    (tmp_path / "images/train/b.png").unlink()
    with pytest.raises(DataError, match="b.png: image file not found \\(image id 2, annotation ids 3, listed in"):
        KeypointDataset(tmp_path, "synthcrowd", "train")
    with pytest.warns(UserWarning, match="skipped 1 bad"):
        ds = KeypointDataset(tmp_path, "synthcrowd", "train",
                             settings=SampleSettings(input_size=64, skip_bad_samples=True))
    assert ds.image_ids == [1]


def test_unreadable_image(tmp_path):
    simple_set(tmp_path)
    (tmp_path / "images/train/b.png").write_bytes(b"not an image at all")
    ds = KeypointDataset(tmp_path, "synthcrowd", "train", settings=SampleSettings(input_size=64))
    with pytest.raises(DataError, match="b.png: cannot decode image \\(image id 2\\)"):
        ds[1]
    ds = KeypointDataset(tmp_path, "synthcrowd", "train", settings=SampleSettings(input_size=64, skip_bad_samples=True))
    with pytest.warns(UserWarning, match="1 skipped so far.*cannot decode"):
        s = ds[1]
    assert s["image_id"] == 1 and ds.num_load_skips == 1


def test_bad_options_are_refused(tiny_coco):
    with pytest.raises(ValueError, match="flip_alignment"):
        KeypointDataset(tiny_coco, "synthcrowd", "train", settings=SampleSettings(flip_alignment="maybe"))
    with pytest.raises(KeyError, match="unknown data set profile 'coc'"):
        KeypointDataset(tiny_coco, "coc", "train")
