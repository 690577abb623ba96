"""Evaluation: perfect predictions, a known perturbation against pycocotools run directly, the CrowdPose
easy/medium/hard split, the metrics JSON and the result files."""
from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import json

import numpy as np
import pytest

from boir_core.engine.evaluation.evaluate import (
    COCO_METRICS,
    COCO_OKS_SIGMAS,
    CROWDPOSE_METRICS,
    CROWDPOSE_OKS_SIGMAS,
    Measurements,
    MetricsProvenance,
    evaluate_results,
    evaluation_backend,
    write_metrics_json,
)
from boir_core.engine.evaluation.results import (
    coco_testdev_filename,
    load_results_json,
    results_path,
    write_results_json,
    write_testdev_results,
)

# ---- tiny hand-made ground truth ---------------------------------------------------------------------------

def tiny_gt(k=17, crowd_index=(0.1, 0.5, 0.9), seed=0, people=3):
    """Images of 400x300 with a few people each; 'area' for the COCO protocol, 'crowdIndex' per image."""
    rng = np.random.default_rng(seed)
    images, anns = [], []
    for i, ci in enumerate(crowd_index):
        images.append({"id": 100 + i, "width": 400, "height": 300, "file_name": f"{i}.jpg", "crowdIndex": ci})
        for p in range(people):
            w, h = rng.uniform(40, 150), rng.uniform(60, 200)
            x0, y0 = rng.uniform(0, 400 - w), rng.uniform(0, 300 - h)
            xy = np.stack([rng.uniform(x0, x0 + w, k), rng.uniform(y0, y0 + h, k)], 1)
            v = np.full(k, 2)
            v[rng.random(k) < 0.15] = 0
            kp = np.concatenate([xy, v[:, None]], 1)
            kp[v == 0, :2] = 0
            anns.append({"id": len(anns) + 1, "image_id": 100 + i, "category_id": 1, "iscrowd": 0,
                         "keypoints": [float(t) for t in kp.flatten()], "num_keypoints": int((v > 0).sum()),
                         "bbox": [x0, y0, w, h], "area": float(w * h * 0.6)})
    return {"images": images, "annotations": anns,
            "categories": [{"id": 1, "name": "person", "supercategory": "person"}]}


def gt_as_results(gt, score=1.0):
    return [{"image_id": a["image_id"], "category_id": 1, "keypoints": list(a["keypoints"]), "score": score}
            for a in gt["annotations"] if a["num_keypoints"] > 0 and not a.get("iscrowd", 0)]


def perturbed(gt, seed, k):
    """Jittered poses with random scores, one person dropped and one false positive per image."""
    rng = np.random.default_rng(seed)
    res = []
    for j, r in enumerate(gt_as_results(gt)):
        if j % 4 == 3:
            continue
        kp = np.asarray(r["keypoints"], float).reshape(k, 3)
        kp[:, :2] += rng.normal(0, rng.choice([1.0, 4.0, 12.0]), (k, 2))
        kp[:, 2] = 1
        res.append({**r, "keypoints": kp.flatten().tolist(), "score": float(rng.random())})
    for im in gt["images"]:
        fp = np.concatenate([rng.uniform(0, 300, (k, 2)), np.ones((k, 1))], 1)
        res.append({"image_id": im["id"], "category_id": 1, "keypoints": fp.flatten().tolist(), "score": 0.3})
    return res


def pycocotools_stats(gt, results, sigmas, img_ids=None):
    """pycocotools run directly (the reference), with optional sigmas and image subset."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    with contextlib.redirect_stdout(io.StringIO()):
        g = COCO()
        g.dataset = copy.deepcopy(gt)
        g.createIndex()
        d = g.loadRes(copy.deepcopy(results))
        e = COCOeval(g, d, "keypoints")
        e.params.kpt_oks_sigmas = np.array(sigmas)
        if img_ids is not None:
            e.params.imgIds = img_ids
        e.evaluate()
        e.accumulate()
        e.summarize()
    return e.stats


def with_crowdpose_area(gt):
    """The CrowdPose API's scale (GT box w·h·0.53) written into 'area', so pycocotools can serve as oracle."""
    g = copy.deepcopy(gt)
    for a in g["annotations"]:
        a["area"] = a["bbox"][2] * a["bbox"][3] * 0.53
    return g


# ---- perfect predictions -----------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["pycocotools", "faster-coco-eval"])
def test_ground_truth_as_predictions_gives_ap_1_tiny_coco(backend):
    gt = tiny_gt()
    m = evaluate_results(gt_as_results(gt), gt, "coco", backend)
    assert list(m) == list(COCO_METRICS)
    assert m["AP"] == pytest.approx(1.0) and m["AR"] == pytest.approx(1.0) and m["AP50"] == pytest.approx(1.0)


def test_ground_truth_as_predictions_gives_ap_1_tiny_crowdpose(tmp_path):
    gt = tiny_gt(k=14)
    for a in gt["annotations"]:
        del a["area"]  # CrowdPose has none
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(gt))
    m = evaluate_results(gt_as_results(gt), path, "crowdpose")
    assert list(m) == list(CROWDPOSE_METRICS)
    for name in CROWDPOSE_METRICS:
        assert m[name] == pytest.approx(1.0), name


@pytest.mark.parametrize("dataset,folder,backend", [
    ("coco", "coco/test_coco.json", "pycocotools"), ("coco", "coco/test_coco.json", "faster-coco-eval"),
    ("ochuman", "ochuman/test_ochuman.json", "pycocotools"),
    ("ochuman", "ochuman/test_ochuman.json", "faster-coco-eval"),
    ("crowdpose", "crowdpose/test_crowdpose.json", "faster-coco-eval"),
])
def test_ground_truth_as_predictions_gives_ap_1_real(real_fixtures, dataset, folder, backend):
    path = real_fixtures / folder
    gt = json.loads(path.read_text())
    m = evaluate_results(gt_as_results(gt), path, dataset, backend)
    assert m["AP"] == pytest.approx(1.0) and m["AR"] == pytest.approx(1.0)
    if dataset == "crowdpose":  # both fixture images have crowdIndex in [0.2, 0.8): easy/hard are empty
        assert m["AP_medium"] == pytest.approx(1.0) and m["AP_easy"] == -1 and m["AP_hard"] == -1


# ---- a known perturbation vs pycocotools run directly ------------------------------------------------------

@pytest.mark.parametrize("backend", ["pycocotools", "faster-coco-eval"])
def test_perturbation_matches_pycocotools_tiny(backend):
    gt = tiny_gt(seed=3, people=4)
    res = perturbed(gt, 1, 17)
    expected = pycocotools_stats(gt, res, COCO_OKS_SIGMAS)
    m = evaluate_results(res, gt, "coco", backend)
    assert 0.2 < m["AP"] < 0.9  # a non-trivial value
    np.testing.assert_allclose([m[n] for n in COCO_METRICS], expected[:10], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", ["pycocotools", "faster-coco-eval"])
def test_perturbation_matches_pycocotools_real_coco(real_fixtures, backend):
    path = real_fixtures / "coco" / "test_coco.json"
    gt = json.loads(path.read_text())
    res = perturbed(gt, 2, 17)
    expected = pycocotools_stats(gt, res, COCO_OKS_SIGMAS)
    m = evaluate_results(res, path, "coco", backend)
    np.testing.assert_allclose([m[n] for n in COCO_METRICS], expected[:10], rtol=1e-12, atol=1e-12)


def test_crowdpose_protocol_matches_pycocotools_with_053_box_area():
    gt = tiny_gt(k=14, seed=5, people=4)
    for a in gt["annotations"]:
        del a["area"]
    res = perturbed(gt, 4, 14)
    m = evaluate_results(res, gt, "crowdpose")
    oracle_gt = with_crowdpose_area(gt)
    full = pycocotools_stats(oracle_gt, res, CROWDPOSE_OKS_SIGMAS)
    got = [m[n] for n in ("AP", "AP50", "AP75", "AR", "AR50", "AR75")]
    np.testing.assert_allclose(got, [full[i] for i in (0, 1, 2, 5, 6, 7)], rtol=1e-12, atol=1e-12)
    for name, img in (("AP_easy", 100), ("AP_medium", 101), ("AP_hard", 102)):
        assert m[name] == pytest.approx(pycocotools_stats(oracle_gt, res, CROWDPOSE_OKS_SIGMAS, [img])[0], abs=6e-5)
    # the 0.53·w·h scale matters: the true area (0.6·w·h) gives a different AP
    assert pycocotools_stats(tiny_gt(k=14, seed=5, people=4), res, CROWDPOSE_OKS_SIGMAS)[0] != pytest.approx(m["AP"])


def test_crowdpose_easy_medium_hard_split():
    gt = tiny_gt(k=14, crowd_index=(0.05, 0.19, 0.2, 0.79, 0.8, 0.95), seed=7)
    for a in gt["annotations"]:
        del a["area"]
    hard = {104, 105}  # crowdIndex >= 0.8
    res = []
    for r in gt_as_results(gt):
        if r["image_id"] in hard:  # wrong: every keypoint 150 px off
            r = {**r, "keypoints": [v + 150.0 if i % 3 != 2 else v for i, v in enumerate(r["keypoints"])]}
        res.append(r)
    m = evaluate_results(res, gt, "crowdpose")
    assert m["AP_easy"] == 1.0 and m["AP_medium"] == 1.0 and m["AP_hard"] == 0.0
    assert 0.3 < m["AP"] < 1.0
    # a fresh evaluator per call: a second evaluation gives the same numbers
    assert evaluate_results(res, gt, "crowdpose") == m


def test_backend_choice_and_errors(tmp_path):
    assert evaluation_backend("crowdpose", "pycocotools") == "faster-coco-eval"
    assert evaluation_backend("coco", "pycocotools") == "pycocotools"
    with pytest.raises(ValueError, match="unknown data set"):
        evaluate_results([], tiny_gt(), "mpii")
    with pytest.raises(ValueError, match="backend"):
        evaluate_results([], tiny_gt(), "coco", "detectron")
    with pytest.raises(FileNotFoundError, match="nope.json"):
        evaluate_results([], tmp_path / "nope.json", "coco")
    gt = tiny_gt()
    with pytest.raises(ValueError, match=r"results\[0\].*image_id 999"):
        evaluate_results([{"image_id": 999, "category_id": 1, "keypoints": [0.0] * 51, "score": 1.0}], gt)
    with pytest.raises(ValueError, match="expected 17"):
        evaluate_results([{"image_id": 100, "category_id": 1, "keypoints": [0.0] * 42, "score": 1.0}], gt)
    with pytest.raises(ValueError, match="crowdIndex"):
        g = tiny_gt(k=14)
        del g["images"][0]["crowdIndex"]
        evaluate_results(gt_as_results(g), g, "crowdpose")
    assert evaluate_results([], gt, "coco") == {n: 0.0 for n in COCO_METRICS}


def test_results_path_as_input(tmp_path):
    gt = tiny_gt()
    p = write_results_json(gt_as_results(gt), results_path(tmp_path, "val"))
    assert p == tmp_path / "results" / "keypoints_val_results.json"
    assert load_results_json(p) == gt_as_results(gt)
    assert evaluate_results(p, gt, "coco")["AP"] == pytest.approx(1.0)


def test_sigmas_are_the_evaluators_own():
    from pycocotools.cocoeval import Params

    assert np.allclose(COCO_OKS_SIGMAS, Params(iouType="keypoints").kpt_oks_sigmas)  # pycocotools' hard-coded
    crowdpose_api = np.array([.79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89, .89, .79, .79]) / 10.0
    assert np.allclose(CROWDPOSE_OKS_SIGMAS, crowdpose_api)  # the CrowdPose API's (docs/inference.md#crowdpose)


# ---- files -------------------------------------------------------------------------------------------------

def test_write_metrics_json_schema(tmp_path):
    from boir_core.config import Config
    cfg = Config()
    ckpt = tmp_path / "model.pth"
    ckpt.write_bytes(b"weights" * 1000)
    out = write_metrics_json(tmp_path / "m" / "metrics.json", dataset="coco", split="val",
                             metrics={"AP": 0.5, "AR": 0.6},
                             provenance=MetricsProvenance(config=cfg, checkpoint=ckpt, key="coco_w32", demo=True),
                             measured=Measurements(images=7, params={"total": 29.4e6},
                                                   timings={"network_ms": 12.5, "decode_ms": 3.0, "device": "cpu"}))
    d = json.loads(out.read_text())
    assert list(d) == ["dataset", "split", "images", "key", "model", "config_name", "config", "checkpoint",
                       "metrics", "timings", "params", "demo", "date", "preset", "batch"]
    assert d["batch"] is None  # no effective batch given: the weights record none
    assert d["images"] == 7
    assert d["model"] == {"arch": cfg.model.arch, "backbone": cfg.model.backbone}
    assert d["config_name"] == cfg.name and d["config"] == cfg.to_dict()
    assert d["checkpoint"] == {"path": str(ckpt), "sha256": hashlib.sha256(b"weights" * 1000).hexdigest()}
    assert d["metrics"] == {"AP": 0.5, "AR": 0.6} and d["demo"] is True and d["key"] == "coco_w32"
    assert d["timings"] == {"network_ms": 12.5, "decode_ms": 3.0, "device": "cpu"}
    assert sorted(p.name for p in out.parent.iterdir()) == ["metrics.json"]  # no temp file left
    with pytest.raises(ValueError, match="percentages"):
        write_metrics_json(tmp_path / "x.json", dataset="coco", split="val", metrics={"AP": 70.5})
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        write_metrics_json(tmp_path / "x.json", dataset="coco", split="val", metrics={},
                           provenance=MetricsProvenance(checkpoint="missing.pth"))
    assert not (tmp_path / "x.json").exists()


def test_write_metrics_json_records_the_effective_batch_as_given_and_reads_as_indented_json(tmp_path):
    batch = {"images_per_gpu": 8, "gpus": 2, "accumulate": 4, "effective": 64}
    out = write_metrics_json(tmp_path / "m.json", dataset="coco", split="val", metrics={"AP": 0.5},
                             provenance=MetricsProvenance(batch=batch))
    text = out.read_text()
    assert json.loads(text)["batch"] == batch
    assert text.startswith('{\n  "dataset": "coco",\n  "split": "val",')  # two-space indented: diffable by hand


def test_evaluating_a_data_set_without_sigmas_says_where_they_come_from(tmp_path):
    gt = tiny_gt()
    with pytest.raises(ValueError, match=r"^evaluating data set 'custom' needs its OKS sigmas "
                                         r"\(sigmas=boir_core\.data\.profile_for\(cfg\)\.sigmas\)$"):
        evaluate_results([], gt, "custom")
    assert evaluate_results(gt_as_results(gt), gt, "custom", sigmas=[0.05] * 17)["AP"] == pytest.approx(1.0)


def test_write_metrics_json_from_decode_result(tmp_path):
    from boir_core.engine.inference.decode import DecodeResult
    r = DecodeResult([], time_network=0.2, time_decode=0.05, num_images=4, device="cpu")
    d = json.loads(write_metrics_json(tmp_path / "m.json", dataset="crowdpose", split="test",
                                      metrics={"AP_easy": -1.0}, measured=Measurements(timings=r)).read_text())
    assert d["timings"] == {"network_ms": pytest.approx(50.0), "decode_ms": pytest.approx(12.5), "device": "cpu"}
    assert d["checkpoint"] == {"path": None, "sha256": None} and d["model"] == {"arch": None, "backbone": None}


def test_testdev_results_file(tmp_path):
    gt = tiny_gt()
    res = gt_as_results(gt)
    p = write_testdev_results(res, tmp_path, alg="boir-w32")
    assert p.name == "person_keypoints_test-dev2017_boir-w32_results.json"
    assert json.loads(p.read_text()) == res
    with pytest.raises(ValueError, match="underscores"):
        coco_testdev_filename("boir_w32")
    with pytest.raises(ValueError, match="not an image"):
        write_testdev_results(res, tmp_path, image_ids=[100])


# ---- end to end: test-time resize -> decode -> evaluate ----------------------------------------------------

class GroundTruthNet:
    """A 'network' that knows the answers: center peaks at each person's keypoint mean and one Gaussian per
    keypoint, placed through the data room's resize affine and the inverse of the decoder's 4x + 2."""

    def __init__(self, anns, matrix, map_hw, k):
        import torch
        self.torch = torch
        self.h, self.w = map_hw
        self.k = k
        self.people = {}
        for a in anns:
            kp = np.asarray(a["keypoints"], float).reshape(k, 3)
            vis = kp[:, 2] > 0
            canvas = kp[:, :2] @ matrix[:, :2].T + matrix[:, 2]
            m = (canvas - 2) / 4  # map pixels
            m[~vis] = m[vis].mean(0)
            cy, cx = (int(round(v)) for v in m[vis].mean(0)[::-1])
            self.people[(cy, cx)] = m

    def features(self, images):
        return self.torch.zeros(images.shape[0], 1, self.h, self.w)

    def center_logits(self, feats):
        p = np.full((self.h, self.w), 1e-3)
        for (cy, cx) in self.people:
            p[cy, cx] = 0.9
        p = self.torch.tensor(p, dtype=self.torch.float32)
        return self.torch.log(p / (1 - p)).expand(feats.shape[0], 1, self.h, self.w)

    def instance_heatmaps(self, feats, coord, imgid, params=None):
        yy, xx = np.mgrid[0:self.h, 0:self.w]
        out = []
        for cy, cx in coord.tolist():
            m = self.people[(cy, cx)]
            g = np.exp(-((xx[None] - m[:, 0, None, None]) ** 2 + (yy[None] - m[:, 1, None, None]) ** 2) / 2)
            out.append(np.clip(0.9 * g, 1e-3, None))
        p = self.torch.tensor(np.stack(out), dtype=self.torch.float32)
        return self.torch.log(p / (1 - p))


def test_resize_decode_evaluate_end_to_end_real_coco(real_fixtures):
    """Perfect maps decoded through the real resize score AP = 1: even a 2-canvas-pixel slip
    (4x instead of 4x + 2) already costs AP (0.93 here), a transposed affine or x/y swap far more."""
    import torch

    import boir_core.data.transforms as transforms
    from boir_core.engine.inference.decode import DecodeSettings, decode
    path = real_fixtures / "coco" / "test_coco.json"
    gt = json.loads(path.read_text())
    results = []
    for im in gt["images"]:
        anns = [a for a in gt["annotations"]
                if a["image_id"] == im["id"] and a["num_keypoints"] > 0 and not a["iscrowd"]]
        tr = transforms.eval_resize(im["width"], im["height"], 512)
        cw, ch = tr.canvas
        net = GroundTruthNet(anns, tr.matrix, (ch // 4, cw // 4), 17)
        res = decode(net, torch.zeros(3, ch, cw), {"trans_inv": tr.trans_inv},
                     DecodeSettings(flip_test=False, oks_sigmas=COCO_OKS_SIGMAS), image_id=im["id"])
        results += res.poses
    m = evaluate_results(results, path, "coco")
    assert len(results) == 12  # every labelled person found once
    assert m["AP"] == pytest.approx(1.0) and m["AR"] == pytest.approx(1.0), m


# ---- arguments, side effects and messages (found by mutation testing) ------------------------------------

@pytest.mark.parametrize("backend", ["pycocotools", "faster-coco-eval"])
def test_evaluation_uses_the_chosen_backend_changes_no_input_and_prints_nothing(backend, monkeypatch, capsys):
    import boir_core.engine.evaluation.evaluate as ev

    gt = tiny_gt(seed=3, people=4)
    res = perturbed(gt, 1, 17)
    gt_before, res_before = copy.deepcopy(gt), copy.deepcopy(res)
    used = []
    for name in ("_stats_pycocotools", "_stats_faster"):
        real = getattr(ev, name)
        monkeypatch.setattr(ev, name, lambda *a, _real=real, _name=name: used.append(_name) or _real(*a))
    evaluate_results(res, gt, "coco", backend)
    assert used == ["_stats_pycocotools" if backend == "pycocotools" else "_stats_faster"]
    assert gt == gt_before and res == res_before  # the libraries add keys to copies only
    assert capsys.readouterr().out == ""


def test_sigmas_argument_overrides_the_protocols():
    gt = tiny_gt(seed=3, people=4)
    res = perturbed(gt, 1, 17)
    tight = [s / 4 for s in COCO_OKS_SIGMAS]
    m = evaluate_results(res, gt, "coco", sigmas=tight)
    expected = pycocotools_stats(gt, res, tight)
    np.testing.assert_allclose([m[n] for n in COCO_METRICS], expected[:10], rtol=1e-12, atol=1e-12)
    assert m["AP"] < evaluate_results(res, gt, "coco")["AP"]


def _gt_file(tmp_path, edit):
    gt = tiny_gt(k=14)
    edit(gt)
    path = tmp_path / "bad_gt.json"
    path.write_text(json.dumps(gt))
    return path


@pytest.mark.parametrize("dataset, edit, message", [
    ("coco", lambda g: g.pop("categories"), r"bad_gt.json: ground truth has no 'categories' list \(keys: "
                                            r"\['annotations', 'images'\]\)"),
    ("crowdpose", lambda g: g["annotations"][1].pop("bbox"), r"bad_gt.json: annotations\[1\] \(id 2\) has no 'bbox'"),
    ("coco", lambda g: None, r"bad_gt.json: annotations\[0\] has 14 keypoints, the protocol expects 17"),
    ("crowdpose", lambda g: g["images"][2].pop("crowdIndex"),
     r"bad_gt.json: image 102 has no 'crowdIndex' \(the CrowdPose protocol splits images into easy/medium/hard"),
])
def test_bad_ground_truth_errors_name_the_file_the_entry_and_the_key(tmp_path, dataset, edit, message):
    path = _gt_file(tmp_path, edit)
    with pytest.raises(ValueError, match=message):
        evaluate_results([], path, dataset)


def test_coco_ground_truth_without_area_is_refused_by_name(tmp_path):
    gt = tiny_gt()
    del gt["annotations"][2]["area"]
    path = tmp_path / "no_area.json"
    path.write_text(json.dumps(gt))
    with pytest.raises(ValueError, match=r"no_area.json: annotations\[2\] \(id 3\) has no 'area', which the COCO "
                                         r"protocol uses as the person's scale"):
        evaluate_results(gt_as_results(gt), path, "coco")
    with pytest.raises(ValueError, match=r"<ground-truth dict>: annotations\[2\] \(id 3\) has no 'area'"):
        evaluate_results(gt_as_results(gt), gt, "coco")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ValueError, match=r"broken.json: invalid JSON"):
        evaluate_results([], tmp_path / "broken.json", "coco")
    with pytest.raises(ValueError,
                       match=r"unknown data set 'mpii'; known: coco, crowdpose, ochuman, synthcrowd, synthcrowd14"):
        evaluation_backend("mpii", "pycocotools")


def test_timings_are_per_image_from_any_decode_result():
    from types import SimpleNamespace

    from boir_core.engine.evaluation.evaluate import timings_from_decode

    one = SimpleNamespace(time_network=0.25, time_decode=0.125, num_images=1, device="cuda:0")
    assert timings_from_decode(one) == {"network_ms": 250.0, "decode_ms": 125.0, "device": "cuda:0"}
    bare = SimpleNamespace(time_network=0.5, time_decode=0.25)  # no num_images, no device: one image, unknown
    assert timings_from_decode(bare) == {"network_ms": 500.0, "decode_ms": 250.0, "device": None}
    assert timings_from_decode(bare, device="cpu")["device"] == "cpu"


@pytest.mark.parametrize("value", [float("nan"), "0.5", True, -1.5, 1.5, 2.0])
def test_metrics_outside_fractions_or_not_numbers_are_refused(tmp_path, value):
    with pytest.raises(ValueError, match=r"metrics\['AP'\] = "):
        write_metrics_json(tmp_path / "m.json", dataset="coco", split="val", metrics={"AP": value})


def test_write_metrics_json_defaults_preset_and_checks(tmp_path):
    from boir_core.config import Config, preset_label
    from boir_core.engine.inference.decode import DecodeResult

    cfg = Config()
    d = json.loads(write_metrics_json(tmp_path / "a.json", dataset="coco", split="val",
                                      metrics={"AP": 1.0, "AP_hard": -1.0},
                                      provenance=MetricsProvenance(config=cfg.to_dict())).read_text())
    assert d["metrics"] == {"AP": 1.0, "AP_hard": -1.0}  # a perfect score and an undefined one are valid
    assert d["demo"] is False and d["config"] == cfg.to_dict() and d["config_name"] == cfg.name
    assert d["preset"] == preset_label(cfg.to_dict()) and d["preset"]
    assert d["date"].endswith("+00:00")  # UTC, with its offset
    given = json.loads(write_metrics_json(tmp_path / "b.json", dataset="coco", split="val", metrics={},
                                          provenance=MetricsProvenance(config=cfg, preset="released weights"))
                       .read_text())
    assert given["preset"] == "released weights"
    with pytest.raises(ValueError, match=r"timings: unknown keys \['gpu_ms'\] \(allowed: network_ms"):
        write_metrics_json(tmp_path / "c.json", dataset="coco", split="val", metrics={},
                           measured=Measurements(timings={"gpu_ms": 1.0}))
    with pytest.raises(TypeError, match="config must be a Config, a dict or None, got int"):
        write_metrics_json(tmp_path / "c.json", dataset="coco", split="val", metrics={},
                           provenance=MetricsProvenance(config=3))
    # a foreign or older config dict that preset_label cannot read: no preset rather than a made-up one
    old = json.loads(write_metrics_json(tmp_path / "d.json", dataset="coco", split="val", metrics={},
                                        provenance=MetricsProvenance(config={"name": "old", "preset": "weird"}))
                     .read_text())
    assert old["preset"] is None and old["config_name"] == "old"
    with pytest.raises(TypeError, match="provenance= takes a MetricsProvenance, got dict"):
        write_metrics_json(tmp_path / "f.json", dataset="coco", split="val", metrics={}, provenance={"key": "k"})
    with pytest.raises(TypeError, match="measured= takes a Measurements, got DecodeResult"):  # not wrapped
        write_metrics_json(tmp_path / "f.json", dataset="coco", split="val", metrics={},
                           measured=DecodeResult([]))
    assert not (tmp_path / "f.json").exists()
    with pytest.raises(ValueError, match=r"metrics\['AP'\] = 70.5: metrics are fractions in \[0, 1\] \(-1: "
                                         r"undefined\), not percentages"):
        write_metrics_json(tmp_path / "e.json", dataset="coco", split="val", metrics={"AP": 70.5})
