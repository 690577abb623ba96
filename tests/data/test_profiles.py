"""Data-set profiles: names, flip index, sigmas, file layout, rules."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from boir_core.data import PROFILES, get_profile


def _mirror(name: str) -> str:
    if name.startswith("left_"):
        return "right_" + name[5:]
    if name.startswith("right_"):
        return "left_" + name[6:]
    return name


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_flip_index_swaps_left_and_right_by_name(name):
    p = get_profile(name)
    assert len(p.flip_index) == len(p.keypoints) == len(p.sigmas) == p.num_keypoints
    for i, j in enumerate(p.flip_index):
        assert p.keypoints[j] == _mirror(p.keypoints[i])
    for a, b in p.skeleton:
        assert 0 <= a < p.num_keypoints and 0 <= b < p.num_keypoints


def test_keypoint_counts_and_rules():
    assert {n: get_profile(n).num_keypoints for n in PROFILES} == {
        "coco": 17, "crowdpose": 14, "ochuman": 17, "synthcrowd": 17, "synthcrowd14": 14}
    assert get_profile("coco").small_person_no_center and get_profile("ochuman").small_person_no_center
    assert not get_profile("crowdpose").small_person_no_center
    assert get_profile("coco").crowd_ignore_mask and not get_profile("crowdpose").crowd_ignore_mask
    assert not get_profile("ochuman").crowd_ignore_mask
    assert get_profile("coco").train_filter == "coco" and get_profile("crowdpose").train_filter == "any"
    assert get_profile("crowdpose").has_crowd_index and not get_profile("coco").has_crowd_index
    assert get_profile("synthcrowd").train_filter == "coco" and get_profile("synthcrowd14").has_crowd_index
    # CrowdPose sigmas (docs/training.md#released-settings: OKS_SIGMAS / 10), COCO's standard values
    assert get_profile("crowdpose").sigmas[6] == pytest.approx(0.107)
    assert get_profile("coco").sigmas[:3] == pytest.approx((0.026, 0.025, 0.025))


def test_file_layout():
    root = Path("/r")
    assert get_profile("coco").ann_file(root, "val") == root / "annotations/coco_val.json"
    assert get_profile("coco").image_dir(root, "train") == root / "images/train2017"
    assert get_profile("crowdpose").ann_file(root, "trainval") == root / "annotations/crowdpose_trainval.json"
    assert get_profile("ochuman").image_dir(root, "test") == root / "images"
    assert get_profile("synthcrowd").ann_file(root, "train") == root / "annotations/person_keypoints_train.json"
    assert get_profile("synthcrowd14").image_dir(root, "val") == root / "images/val"


def test_unknown_profile_names_the_known_ones():
    with pytest.raises(KeyError, match="cocoo.*coco, crowdpose"):
        get_profile("cocoo")


def test_names_and_skeleton_match_the_real_files(real_fixtures):
    coco = json.loads((real_fixtures / "coco" / "test_coco.json").read_text())["categories"][0]
    assert tuple(coco["keypoints"]) == get_profile("coco").keypoints
    one_based = {tuple(sorted((a - 1, b - 1))) for a, b in coco["skeleton"]}
    assert one_based == {tuple(sorted(e)) for e in get_profile("coco").skeleton}
    cp = json.loads((real_fixtures / "crowdpose" / "test_crowdpose.json").read_text())["categories"][0]
    assert tuple(cp["keypoints"]) == get_profile("crowdpose").keypoints


def test_the_profiles_are_the_one_registry_of_data_set_names():
    """Everything that names data sets reads one table: the config's registry of names and K, which the
    profiles build on and the config's ``data.dataset`` choices and ``num_keypoints`` come from."""
    import typing

    from boir_core.config import DATASET_KEYPOINTS, Config, DataConfig
    from boir_core.data.profiles import DATASETS, DEMO_DATASETS, REAL_DATASETS
    from boir_core.data.sources.prepare import DATASETS as PREPARED
    from boir_core.engine.evaluation.evaluate import DATASET_PROTOCOLS
    from boir_core.paper import DATASETS as PAPER_DATASETS
    from boir_core.paper import DEMO_DATASETS as PAPER_DEMO
    from boir_core.paper.plan import REAL_DATASETS as REPRODUCED
    from boir_core.paper.render import DATASET_NAMES

    assert DATASETS == ("coco", "crowdpose", "ochuman", "synthcrowd", "synthcrowd14") == tuple(DATASET_KEYPOINTS)
    assert REAL_DATASETS == ("coco", "crowdpose", "ochuman") and DEMO_DATASETS == ("synthcrowd", "synthcrowd14")
    assert PREPARED == REPRODUCED == REAL_DATASETS
    assert PAPER_DATASETS == DATASETS and PAPER_DEMO == DEMO_DATASETS
    # data.dataset also accepts "custom": a keypoint set of one's own, its profile built from its file
    # (boir_core.data.custom), so in no table of fixed data sets
    assert set(typing.get_args(typing.get_type_hints(DataConfig)["dataset"])) == {*DATASETS, "custom"}
    assert {n: DATASET_PROTOCOLS[n][0] for n in DATASETS} == {
        "coco": "coco", "crowdpose": "crowdpose", "ochuman": "coco", "synthcrowd": "coco",
        "synthcrowd14": "crowdpose"}
    assert all(DATASET_PROTOCOLS[n][1] == get_profile(n).sigmas for n in DATASETS)
    assert DATASET_NAMES == {"coco": "COCO", "crowdpose": "CrowdPose", "ochuman": "OCHuman",
                             "synthcrowd": "SynthCrowd", "synthcrowd14": "SynthCrowd-14"}
    for name in DATASETS:
        assert Config().override(f"data.dataset={name}").num_keypoints == get_profile(name).num_keypoints, name


def test_profiles_that_disagree_with_the_registry_of_names_are_refused():
    """A data set added (or its K changed) in the profiles but not in the config's registry, or the reverse, is an
    error on import that shows both tables, not a config that accepts a name the data cannot load."""
    from boir_core.config import DATASET_KEYPOINTS
    from boir_core.data.profiles import _check_agrees_with_registry

    _check_agrees_with_registry(PROFILES, DATASET_KEYPOINTS)  # the shipped tables agree
    extra = dict(PROFILES, coco2=get_profile("coco"))
    with pytest.raises(RuntimeError, match="coco2.*disagrees with.*DATASET_KEYPOINTS"):
        _check_agrees_with_registry(extra, DATASET_KEYPOINTS)
    with pytest.raises(RuntimeError, match="disagrees"):
        _check_agrees_with_registry(PROFILES, dict(DATASET_KEYPOINTS, crowdpose=17))
    with pytest.raises(RuntimeError, match="disagrees"):  # the order is the registry's too
        _check_agrees_with_registry(dict(reversed(PROFILES.items())), DATASET_KEYPOINTS)
    with pytest.raises(RuntimeError, match=r"PROFILES\['coco2'\] is named 'coco'"):
        _check_agrees_with_registry(extra, dict(DATASET_KEYPOINTS, coco2=17))
