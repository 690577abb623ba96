"""boir_core.data.sources.layout.check_layout: present / absent / laid out differently, and CrowdPose's crowdIndex.

Tiny folders built here; the end-to-end use (make reproduce's pre-flight on a prepared installation) is
tests/paper/test_reproduce_real.py."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from boir_core.data.sources.layout import DataLayoutError, check_layout


def _json(path: Path, images: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"images": images, "annotations": [], "categories": [{"id": 1}]}))
    return path


def test_prepared_present_and_absent_splits(tmp_path):
    _json(tmp_path / "coco" / "annotations" / "coco_val.json", [{"id": 1, "file_name": "a.jpg"}])
    (tmp_path / "coco" / "images" / "val2017").mkdir(parents=True)
    assert check_layout(tmp_path, "coco", ["val", "test", "val"]) == {"val": True, "test": False}
    assert check_layout(tmp_path, "ochuman", ["val", "test"]) == {"val": False, "test": False}  # no folder


def test_the_release_layout_names_what_was_expected_where(tmp_path):
    raw = _json(tmp_path / "coco" / "annotations" / "person_keypoints_val2017.json", [])
    (tmp_path / "coco" / "val2017").mkdir()
    with pytest.raises(DataLayoutError) as e:
        check_layout(tmp_path, "coco", ["val"])
    msg = str(e.value)
    assert f"expected the annotation file {tmp_path / 'coco' / 'annotations' / 'coco_val.json'}" in msg
    assert f"found the release's {raw} instead" in msg
    assert f"prepare_data.py coco --root {tmp_path} --from DIR" in msg


def test_an_image_folder_elsewhere_or_missing(tmp_path):
    (tmp_path / "coco" / "test2017").mkdir(parents=True)  # extracted test2017.zip, never arranged
    with pytest.raises(DataLayoutError, match=r"expected the image folder .*images/test2017 .* found the image "
                                              r"folder .*coco/test2017 instead"):
        check_layout(tmp_path, "coco", ["test"])
    ann = _json(tmp_path / "ochuman" / "annotations" / "ochuman_val.json", [])
    with pytest.raises(DataLayoutError, match=f"{ann} is there but its image folder "
                                              f"{tmp_path / 'ochuman' / 'images'} is not"):
        check_layout(tmp_path, "ochuman", ["val"])


def test_unrecognised_annotation_files_are_reported(tmp_path):
    other = _json(tmp_path / "ochuman" / "ochuman.json", [])
    with pytest.raises(DataLayoutError, match=f"found {other} instead"):
        check_layout(tmp_path, "ochuman", ["val", "test"])


def test_crowdpose_needs_crowd_index_on_every_image(tmp_path):
    (tmp_path / "crowdpose" / "images").mkdir(parents=True)
    ann = _json(tmp_path / "crowdpose" / "annotations" / "crowdpose_test.json",
                [{"id": 1, "file_name": "1.jpg", "crowdIndex": 0.3}, {"id": 2, "file_name": "2.jpg"}])
    with pytest.raises(DataLayoutError, match=f"{ann}: 1 of 2 images lack 'crowdIndex' \\(first: 2.jpg\\)"):
        check_layout(tmp_path, "crowdpose", ["test"])
    _json(ann, [{"id": 1, "file_name": "1.jpg", "crowdIndex": 0.3}])
    assert check_layout(tmp_path, "crowdpose", ["test", "trainval"]) == {"test": True, "trainval": False}
