"""``data.dataset=custom`` (boir_core.data.custom): flip pairs inferred from names, the profile built from a
file's categories and the config, and the errors that name what is missing."""
from __future__ import annotations

import json

import pytest

from boir_core.config import Config, ConfigError, KeypointsConfig
from boir_core.data import DataError
from boir_core.data.custom import custom_profile, flip_index_from_pairs, infer_flip_pairs, profile_for
from boir_core.data.profiles import COCO_FLIP_INDEX, COCO_KEYPOINTS, CROWDPOSE_FLIP_INDEX, CROWDPOSE_KEYPOINTS


def named_pairs(names):
    return {(names[a], names[b]) for a, b in infer_flip_pairs(names)}


def test_inferred_flip_pairs_reproduce_the_registry_flip_indices():
    assert flip_index_from_pairs(17, infer_flip_pairs(COCO_KEYPOINTS)) == COCO_FLIP_INDEX
    assert flip_index_from_pairs(14, infer_flip_pairs(CROWDPOSE_KEYPOINTS)) == CROWDPOSE_FLIP_INDEX


@pytest.mark.parametrize("names,pairs", [
    (["snout", "left_ear", "right_ear"], {("left_ear", "right_ear")}),  # left_* / right_*
    (["ear_left", "ear_right", "tail"], {("ear_left", "ear_right")}),  # *_left / *_right
    (["front-left-paw", "front-right-paw"], {("front-left-paw", "front-right-paw")}),  # a word in the middle
    (["leftEye", "rightEye", "frontLeftPaw", "frontRightPaw"],  # camelCase
     {("leftEye", "rightEye"), ("frontLeftPaw", "frontRightPaw")}),
    (["Left Ear", "Right Ear", "LEFT_HAND", "RIGHT_HAND"], {("Left Ear", "Right Ear"), ("LEFT_HAND", "RIGHT_HAND")}),
    (["l_eye", "r_eye", "eye_L", "eye_R", "l eye", "r eye"],  # l_* / r_*, *_L / *_R, l / r with a space
     {("l_eye", "r_eye"), ("eye_L", "eye_R"), ("l eye", "r eye")}),
    (["LEye", "REye", "Neck"], {("LEye", "REye")}),  # L / R before a capital (OpenPose's spelling)
    (["cleft", "lefty", "lip", "rim", "LIP", "wrist"], set()),  # no side: inside words, letters without mirror
])
def test_flip_pairs_are_inferred_from_left_right_names(names, pairs):
    assert named_pairs(names) == pairs


def test_a_side_word_without_its_mirror_and_duplicate_names_are_errors():
    with pytest.raises(DataError, match=r"'left_paw' names a side but 'right_paw' is not a keypoint.*flip_pairs"):
        infer_flip_pairs(["snout", "left_paw"], "f.json")
    with pytest.raises(DataError, match=r"unique, \['a'\]"):
        infer_flip_pairs(["a", "b", "a"])


def write(tmp_path, categories="default", k=3, keypoints_len=None, split="train"):
    names = ["nose", "left_ear", "right_ear"][:k] if k <= 3 else [f"p{i}" for i in range(k)]
    data = {"images": [{"id": 1, "file_name": "a.png", "width": 8, "height": 8}],
            "annotations": [{"id": 7, "image_id": 1, "keypoints": [1, 1, 2] * (keypoints_len or k),
                             "bbox": [0, 0, 4, 4], "iscrowd": 0, "area": 16, "num_keypoints": keypoints_len or k}]}
    if categories == "default":
        categories = [{"id": 1, "name": "cat", "keypoints": names, "skeleton": [[1, 2], [1, 3]][: k - 1]}]
    if categories is not None:
        data["categories"] = categories
    f = tmp_path / "annotations" / f"{split}.json"
    f.parent.mkdir(exist_ok=True)
    f.write_text(json.dumps(data))
    return f


def test_the_profile_from_the_file_and_the_config_override(tmp_path):
    write(tmp_path)
    p = custom_profile(KeypointsConfig(), tmp_path, ("train", "val"))
    assert (p.name, p.keypoints, p.skeleton, p.flip_index) == ("custom", ("nose", "left_ear", "right_ear"),
                                                               ((0, 1), (0, 2)), (0, 2, 1))
    assert p.ann_file(tmp_path, "train") == tmp_path / "annotations" / "train.json"
    assert p.image_dir(tmp_path, "val") == tmp_path / "images" / "val"
    q = custom_profile(KeypointsConfig(names=["a", "b", "c"], flip_pairs=[], skeleton=[["c", "b"]],
                                       sigmas=[0.1, 0.2, 0.3]), tmp_path)
    assert (q.keypoints, q.flip_index, q.skeleton, q.sigmas) == (("a", "b", "c"), (0, 1, 2), ((2, 1),), (0.1, 0.2, 0.3))
    cfg = Config().override("data.dataset=custom", f"data.root={tmp_path}")
    assert profile_for(cfg) == p and profile_for(Config()).name == "synthcrowd"
    with pytest.raises(ConfigError, match="without data.keypoints.names.*profile_for"):
        cfg.num_keypoints
    assert cfg.override("data.keypoints.names=[a,b,c]").num_keypoints == 3


def test_missing_categories_name_the_file_and_what_to_add(tmp_path):
    f = write(tmp_path, categories=None)
    with pytest.raises(DataError, match=rf"{f}: no 'categories' list.*data.keypoints.names"):
        custom_profile(KeypointsConfig(), tmp_path)
    write(tmp_path, categories=[{"id": 1, "name": "cat"}])
    with pytest.raises(DataError, match="no category has a 'keypoints' list"):
        custom_profile(KeypointsConfig(), tmp_path)
    write(tmp_path, categories=[{"id": 1, "name": "cat", "keypoints": ["a", "b"], "skeleton": [[0, 1]]}], k=2)
    with pytest.raises(DataError, match=r"skeleton\[0\] = \[0, 1\] is not a pair of 1-based keypoint numbers in 1..2"):
        custom_profile(KeypointsConfig(), tmp_path)
    with pytest.raises(DataError, match="no annotation file to read the keypoints from.*give data.keypoints.names"):
        custom_profile(KeypointsConfig(), tmp_path / "nowhere")


def test_keypoint_counts_that_disagree_are_named(tmp_path):
    f = write(tmp_path, keypoints_len=4)  # the category names 3 keypoints, the annotations hold 4
    with pytest.raises(DataError, match=rf"{f}: annotation id 7 has 12 keypoint numbers, expected 3 x 3 = 9"):
        custom_profile(KeypointsConfig(), tmp_path)
    write(tmp_path)
    with pytest.raises(DataError, match=r"data.keypoints.names has 2 names but .*train.json lists 3 keypoints"):
        custom_profile(KeypointsConfig(names=["a", "b"]), tmp_path)
    with pytest.raises(DataError, match="data.keypoints.sigmas has 2 values for the 3 keypoints"):
        custom_profile(KeypointsConfig(sigmas=[0.1, 0.1]), tmp_path)


@pytest.mark.parametrize("pairs,match", [
    ([["left_ear"]], r"flip_pairs\[0\] = \['left_ear'\] is not a pair"),
    ([["left_ear", "tail"]], r"names unknown keypoint\(s\) \['tail'\]; the keypoints are \['nose'"),
    ([["nose", "nose"]], "pairs a keypoint with itself"),
    ([["left_ear", "right_ear"], ["nose", "right_ear"]], r"'right_ear' is already paired in .*flip_pairs\[0\]"),
])
def test_flip_pairs_that_do_not_pair_are_named(tmp_path, pairs, match):
    write(tmp_path)
    with pytest.raises(DataError, match=match):
        custom_profile(KeypointsConfig(flip_pairs=pairs), tmp_path)
