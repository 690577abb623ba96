"""The real COCO / CrowdPose / OCHuman files (shared/fixtures/real) through KeypointDataset."""
from __future__ import annotations

import contextlib
import io
import json

import cv2
import numpy as np
import pytest
from pycocotools.cocoeval import COCOeval

from boir_core.data import DataFiles, KeypointDataset, SampleSettings, get_profile
from boir_core.data.transforms import IMAGENET_MEAN, IMAGENET_STD, apply_affine, eval_resize

pytestmark = pytest.mark.real
FILES = {"coco": "test_coco.json", "crowdpose": "test_crowdpose.json", "ochuman": "test_ochuman.json"}
NO_AUG = dict(min_scale=1.0, max_scale=1.0, max_rotation=0.0, max_translate=0.0, flip=0.0)


def load(real, name, train: bool = True, **settings) -> KeypointDataset:
    return KeypointDataset(real / name, name, "test", train, settings=SampleSettings(**settings),
                           files=DataFiles(ann_file=real / name / FILES[name], image_dir=real / name))


@pytest.mark.parametrize("name", sorted(FILES))
def test_targets_peak_at_keypoints_and_centers(real_fixtures, name):
    ds = load(real_fixtures, name, input_size=256, center_jitter=False, seed=0, **NO_AUG)
    assert len(ds) == {"coco": 4, "crowdpose": 2, "ochuman": 3}[name]
    k = ds.num_keypoints
    total = 0
    for i in range(len(ds)):
        s = ds[i]
        kp = s["instance_keypoints"].numpy()
        vis = kp[..., 2] > 0
        np.testing.assert_allclose(s["instance_center"].numpy(),
                                   (kp[..., :2] * vis[..., None]).sum(1) / vis.sum(1)[:, None], rtol=1e-5)
        np.testing.assert_array_equal(s["instance_mask"].numpy(), vis.astype(np.float32))
        for n in range(len(kp)):
            y, x = s["instance_coord"][n].tolist()
            assert [x, y] == np.trunc(s["instance_center"][n].numpy()).astype(int).tolist()  # int() as the release
            assert s["multi_heatmap"][k, y, x] == 1.0
            for j in np.nonzero(vis[n])[0]:
                px, py = np.trunc(kp[n, j, :2]).astype(int)
                if 0 <= px < 64 and 0 <= py < 64:
                    total += 1
                    assert s["instance_heatmap"][n, j, py, px] == 1.0 and s["multi_heatmap"][j, py, px] == 1.0
                else:
                    assert s["instance_heatmap"][n, j].max() == 0
        assert s["multi_mask"].min() == 0 or s["multi_mask"].min() == 1
    assert total > 20


@pytest.mark.parametrize("name", sorted(FILES))
@pytest.mark.parametrize("mode, shift", [("correct", 0.25), ("release", 1.0)])
def test_flip_is_consistent_with_the_flip_index(real_fixtures, name, mode, shift):
    aug = dict(min_scale=0.9, max_scale=0.9, max_rotation=0.0, max_translate=0.0, center_jitter=False, seed=1)
    plain = load(real_fixtures, name, input_size=128, flip=0.0, **aug)
    flipped = load(real_fixtures, name, input_size=128, flip=1.0, flip_alignment=mode, **aug)
    fi = list(get_profile(name).flip_index)
    for i in range(len(plain)):
        a, b = plain[i], flipped[i]
        ka, kb = a["instance_keypoints"].numpy(), b["instance_keypoints"].numpy()
        assert ka.shape == kb.shape
        # same people in the same (area) order; keypoint j of the flipped sample is keypoint fi[j] mirrored
        np.testing.assert_allclose(kb[:, :, 0], 32 - shift - ka[:, fi, 0], atol=1e-4)
        np.testing.assert_allclose(kb[:, :, 1:], ka[:, fi, 1:], atol=1e-4)
        diff = (b["image"] - a["image"].flip(-1)).abs().mean()
        assert diff < 0.02  # the image is the mirror of the unflipped one (both modes)
        ba, bb = a["instance_bbox"].numpy(), b["instance_bbox"].numpy()
        inside = (ba[:, 0] > 1) & (ba[:, 0] + ba[:, 2] < 30)  # not clipped in either sample
        np.testing.assert_allclose(bb[inside, 2:], ba[inside, 2:], atol=1e-4)
        np.testing.assert_allclose(bb[inside, 0], 32 - shift - ba[inside, 0] - ba[inside, 2], atol=1e-4)


@pytest.mark.parametrize("name", sorted(FILES))
def test_test_resize_round_trip(real_fixtures, name):
    ds = load(real_fixtures, name, train=False, input_size=256)
    for i in range(len(ds)):
        s = ds[i]
        meta = s["meta"]
        w, h = meta["size"]
        assert min(s["image"].shape[1:]) == 256 and s["image"].shape[1] % 64 == 0 and s["image"].shape[2] % 64 == 0
        anns = ds.coco.loadAnns(ds.coco.getAnnIds(imgIds=[s["image_id"]]))
        kp = np.array([a["keypoints"] for a in anns], float).reshape(-1, 3)[:, :2]
        fwd = eval_resize(w, h, 256).matrix
        np.testing.assert_allclose(apply_affine(apply_affine(kp, fwd), meta["trans_inv"]), kp, atol=1e-6)
        # pixels: warping the canvas back with trans_inv reproduces the original image (blurred)
        canvas = (s["image"].numpy().transpose(1, 2, 0) * IMAGENET_STD + IMAGENET_MEAN) * 255
        back = cv2.warpAffine(canvas.astype(np.float32), meta["trans_inv"], (w, h),
                              flags=cv2.INTER_LINEAR)
        orig = cv2.imread(str(ds.records[i]["path"]))[..., ::-1].astype(np.float32)
        inner = (slice(4, h - 4), slice(4, w - 4))
        corr = np.corrcoef(back[inner].ravel(), orig[inner].ravel())[0, 1]
        assert corr > 0.9


@pytest.mark.parametrize("name", sorted(FILES))
@pytest.mark.parametrize("size", [256, 512])
def test_test_canvas_is_the_releases(real_fixtures, name, size):
    """The test canvas of every real image is the release's: long side int((S / short * long + 63) // 64 * 64)
    (the 500x333 COCO image is 768 wide at 512, not 832; the 665x1000 OCHuman portrait 384 high at 256)."""
    ds = load(real_fixtures, name, train=False, input_size=size)
    for i in range(len(ds)):
        s = ds[i]
        w, h = s["meta"]["size"]
        long_side = int((size / min(w, h) * max(w, h) + 63) // 64 * 64)
        expect = (size, long_side) if w >= h else (long_side, size)  # (H', W')
        assert tuple(s["image"].shape[1:]) == expect, (w, h)


@pytest.mark.parametrize("name", ["coco", "ochuman"])
def test_ground_truth_as_predictions_scores_ap_one(real_fixtures, name):
    ds = load(real_fixtures, name, train=False, input_size=256)
    preds = []
    for i in range(len(ds)):
        s = ds[i]
        w, h = s["meta"]["size"]
        fwd = eval_resize(w, h, 256).matrix
        for a in ds.coco.loadAnns(ds.coco.getAnnIds(imgIds=[s["image_id"]], iscrowd=False)):
            if a["num_keypoints"] == 0:
                continue
            kp = np.array(a["keypoints"], float).reshape(-1, 3)
            on_canvas = apply_affine(kp[:, :2], fwd)  # what a perfect network would find
            xy = apply_affine(on_canvas, s["meta"]["trans_inv"])
            flat = np.concatenate([xy, np.ones((len(xy), 1))], 1).ravel().tolist()
            preds.append({"image_id": s["image_id"], "category_id": 1, "keypoints": flat, "score": 1.0})
    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(ds.coco, ds.coco.loadRes(preds), "keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert ev.stats[0] == pytest.approx(1.0)
    assert ev.stats[5] == pytest.approx(1.0)  # AR


def test_crowdpose_images_carry_a_crowd_index(real_fixtures):
    assert get_profile("crowdpose").has_crowd_index
    images = json.loads((real_fixtures / "crowdpose" / FILES["crowdpose"]).read_text())["images"]
    assert all(0 <= im["crowdIndex"] <= 1 for im in images)
