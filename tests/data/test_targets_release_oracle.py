"""Every training target of a sample against an independent implementation of docs/data_format.md.

The oracle below is written from the spec's text, one person and one keypoint at a time (plain Python
loops, numpy only for a kernel and a slice), and shares no code with ``boir_core.data``. Samples are made
the way the release makes them, on real-format images with pinned augmentation draws (scale, rotation,
translation, flip; center jitter off; ``flip_alignment=release``, ``box_clipping=release``), and every
map is compared: the image, the ignore mask, every multi-heatmap channel, every instance heatmap, the
instance masks, coordinates, centers, boxes and keypoints.

Some draws are built on purpose: a rotated, zoomed-in view whose boxes hang over the map's border (their
corners must be clipped before the Gaussian radius is measured), and shifts that put a labelled keypoint
and a person's center in (-1, 0), where Python's int() gives pixel 0 (floor would drop them). The test
checks that those cases did occur, so it cannot pass by missing them.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from boir_data_builders import write_coco
from pycocotools import mask as mask_utils

from boir_core.data import DataFiles, KeypointDataset, SampleSettings, get_profile
from boir_core.data.transforms import AffineParams

S_IN, S_OUT = 512, 128
MEAN = np.array([0.485, 0.456, 0.406])
STD = np.array([0.229, 0.224, 0.225])
REAL = {"coco": "test_coco.json", "crowdpose": "test_crowdpose.json", "ochuman": "test_ochuman.json"}


# ---- the oracle (docs/data_format.md), written independently ---------------------------------------------

def oracle_affine(center, scale, size, rotation):
    """docs/data_format.md#augmentation: the square crop of side 200·scale centred at ``center`` onto
    size², then a rotation by ``rotation`` degrees about the output center (positive =
    counter-clockwise on screen, as cv2)."""
    f = size / (200.0 * scale)
    m = np.array([[f, 0.0, size / 2.0 - f * center[0]], [0.0, f, size / 2.0 - f * center[1]], [0.0, 0.0, 1.0]])
    rot = np.vstack([cv2.getRotationMatrix2D((size / 2.0, size / 2.0), rotation, 1.0), [0.0, 0.0, 1.0]])
    return rot @ m


def move(m, x, y):
    return m[0, 0] * x + m[0, 1] * y + m[0, 2], m[1, 0] * x + m[1, 1] * y + m[1, 2]


def radius_of(h, w, o=0.7):
    """CornerNet's gaussian_radius as the release has it (r2, r3 halved, not divided by 2a)."""
    r1 = ((h + w) + math.sqrt((h + w) ** 2 - 4 * w * h * (1 - o) / (1 + o))) / 2
    r2 = (2 * (h + w) + math.sqrt((2 * (h + w)) ** 2 - 16 * (1 - o) * w * h)) / 2
    r3 = (-2 * o * (h + w) + math.sqrt((2 * o * (h + w)) ** 2 - 16 * o * (o - 1) * w * h)) / 2
    return max(0, int(min(r1, r2, r3)))


def paste(heatmap, x, y, r):
    """Draw a (2r+1)² Gaussian (σ = (2r+1)/6, values below eps·max zeroed) at (int(x), int(y)), merged by
    max, if that pixel lies in the map."""
    s = heatmap.shape[0]
    cx, cy = int(x), int(y)  # Python's int(): toward zero
    if not (0 <= cx < s and 0 <= cy < s):
        return False
    d = 2 * r + 1
    sigma = d / 6.0
    yy, xx = np.ogrid[-r:r + 1, -r:r + 1]
    g = np.exp(-(xx * xx + yy * yy) / (2 * sigma * sigma))
    g[g < np.finfo(g.dtype).eps * g.max()] = 0
    x0, x1 = max(0, cx - r), min(s, cx + r + 1)
    y0, y1 = max(0, cy - r), min(s, cy + r + 1)
    patch = g[y0 - (cy - r):y1 - (cy - r), x0 - (cx - r):x1 - (cx - r)]
    heatmap[y0:y1, x0:x1] = np.maximum(heatmap[y0:y1, x0:x1], patch)
    return True


def oracle_sample(img, anns, params, profile, stats):
    """The release's sample (docs/data_format.md) for one image, its annotations and one augmentation draw."""
    h_img, w_img = img.shape[:2]
    k = profile.num_keypoints
    m_in = oracle_affine(params.center, params.scale, S_IN, params.rotation)
    m_out = oracle_affine(params.center, params.scale, S_OUT, params.rotation)

    def labelled(a):
        return a.get("num_keypoints", sum(1 for v in a["keypoints"][2::3] if v > 0))

    # docs/data_format.md#ignore-mask ignore mask: crowd regions and unlabelled people (COCO only), warped, >
    # 0.5; outside the image 0
    valid = np.ones((h_img, w_img), np.uint8)
    if profile.name == "coco":
        acc = np.zeros((h_img, w_img))
        for a in anns:
            if a.get("iscrowd") or labelled(a) == 0:
                seg = a["segmentation"]
                if isinstance(seg, list):
                    rle = mask_utils.merge(mask_utils.frPyObjects(seg, h_img, w_img))
                elif isinstance(seg["counts"], list):
                    rle = mask_utils.frPyObjects(seg, h_img, w_img)
                else:
                    rle = seg
                acc += mask_utils.decode(rle)
        valid = (acc < 0.5).astype(np.uint8)
    mask = cv2.warpAffine(valid * 255, m_out[:2], (S_OUT, S_OUT), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0) / 255.0 > 0.5
    image = cv2.warpAffine(img, m_in[:2], (S_IN, S_IN), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=0)

    # docs/data_format.md#data-sets-on-disk people: not crowd, at least one labelled keypoint;
    # docs/data_format.md#augmentation keypoints and box corners to S_out
    people = []
    for a in anns:
        if a.get("iscrowd") or labelled(a) == 0:
            continue
        kp = [list(move(m_out, a["keypoints"][3 * j], a["keypoints"][3 * j + 1])) + [a["keypoints"][3 * j + 2]]
              for j in range(k)]
        x, y, w, h = a["bbox"]
        corners = [list(move(m_out, px, py)) for px, py in ((x, y), (x + w, y), (x, y + h), (x + w, y + h))]
        area = w * h * (S_IN / (200.0 * params.scale)) ** 2
        people.append({"kp": kp, "corners": corners, "area": area})

    # docs/data_format.md#augmentation flip, the release's way: mirror the arrays, x <- S_out - 1 - x, swap
    # the keypoints and corners
    if params.flip:
        image = image[:, ::-1]
        mask = mask[:, ::-1]
        for p in people:
            mirrored = [[S_OUT - 1 - x, y, v] for x, y, v in p["kp"]]
            p["kp"] = [mirrored[profile.flip_index[j]] for j in range(k)]
            c = [[S_OUT - 1 - x, y] for x, y in p["corners"]]
            p["corners"] = [c[1], c[0], c[3], c[2]]

    # docs/data_format.md#gaussian-size centers and Gaussian sizes
    for p in people:
        vis = [(x, y) for x, y, v in p["kp"] if v > 0]
        p["center"] = (sum(x for x, _ in vis) / len(vis), sum(y for _, y in vis) / len(vis)) if vis else None
        p["center_ok"] = bool(vis) and not (profile.small_person_no_center and p["area"] < 32 ** 2)
        cl = [[min(max(c, 0.0), S_OUT - 1.0) for c in xy] for xy in p["corners"]]
        tl, tr, bl = cl[0], cl[1], cl[2]
        side_h = math.hypot(tl[0] - bl[0], tl[1] - bl[1])
        side_w = math.hypot(tl[0] - tr[0], tl[1] - tr[1])
        p["r"] = radius_of(math.ceil(side_h), math.ceil(side_w))
        # what the test must have exercised (see the assertions of the test)
        raw = p["corners"]
        stats["clipped_radius_differs"] += radius_of(
            math.ceil(math.hypot(raw[0][0] - raw[2][0], raw[0][1] - raw[2][1])),
            math.ceil(math.hypot(raw[0][0] - raw[1][0], raw[0][1] - raw[1][1]))) != p["r"]
        stats["ceil_differs"] += radius_of(side_h, side_w) != p["r"]
        stats["rotated_box_over_border"] += params.rotation != 0 and any(
            not 0 <= c <= S_OUT - 1 for xy in raw for c in xy)
        for x, y, v in p["kp"]:
            stats["keypoint_in_minus_one_zero"] += v > 0 and (-1 < x < 0 or -1 < y < 0)

    multi = np.zeros((k + 1, S_OUT, S_OUT))
    for p in people:
        for j, (x, y, v) in enumerate(p["kp"]):
            if v > 0:
                paste(multi[j], x, y, p["r"])
        if p["center_ok"]:
            paste(multi[k], p["center"][0], p["center"][1], p["r"])

    # instances in ascending area order; the smaller person keeps a shared coordinate
    inst = {"coord": [], "center": [], "heatmap": [], "mask": [], "bbox": [], "keypoints": []}
    taken = set()
    for p in sorted(people, key=lambda q: q["area"]):
        if not p["center_ok"]:
            continue
        cx, cy = int(p["center"][0]), int(p["center"][1])
        if not (0 <= cx < S_OUT and 0 <= cy < S_OUT) or (cy, cx) in taken:
            continue
        taken.add((cy, cx))
        stats["center_in_minus_one_zero"] += -1 < p["center"][0] < 0 or -1 < p["center"][1] < 0
        hm = np.zeros((k, S_OUT, S_OUT))
        for j, (x, y, v) in enumerate(p["kp"]):
            if v > 0:
                paste(hm[j], x, y, p["r"])
        xs = [x for x, _ in p["corners"]]
        ys = [y for _, y in p["corners"]]
        box = [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]
        inst["coord"].append([cy, cx])
        inst["center"].append(list(p["center"]))
        inst["heatmap"].append(hm)
        inst["mask"].append([1.0 if v > 0 else 0.0 for _, _, v in p["kp"]])
        inst["bbox"].append([min(max(b, 0.0), S_OUT - 1.0) for b in box])  # each number on its own
        inst["keypoints"].append(p["kp"])
    return {"image": (image / 255.0 - MEAN) / STD, "multi_mask": mask, "multi_heatmap": multi, **inst}


# ---- data: a built real-format file and the real fixtures --------------------------------------------

def built_set(root: Path) -> tuple[Path, Path, str]:
    """A COCO file with what the real fixtures lack: a crowd region (RLE), float keypoints, people at the
    image border; 17 keypoints, profile coco."""
    rng = np.random.default_rng(5)
    w, h = 500, 333
    images = [{"id": 7, "file_name": "a.png", "width": w, "height": h}]
    anns = []
    for aid, (x0, y0, bw, bh) in enumerate([(5, 20, 150, 300), (180, 40, 120, 280), (330, 10, 165, 320),
                                            (250, 200, 40, 80)], start=1):
        kp = [[float(x0 + rng.uniform(0, bw)), float(y0 + rng.uniform(0, bh)), int(rng.choice([0, 1, 2, 2]))]
              for _ in range(17)]
        kp[0][2] = 2
        anns.append({"id": aid, "image_id": 7, "category_id": 1, "iscrowd": 0, "bbox": [x0, y0, bw, bh],
                     "keypoints": [c for p in kp for c in p], "num_keypoints": sum(p[2] > 0 for p in kp),
                     "area": bw * bh, "segmentation": [[x0, y0, x0 + bw, y0, x0 + bw, y0 + bh, x0, y0 + bh]]})
    crowd = np.zeros((h, w), np.uint8, order="F")
    crowd[250:330, 20:140] = 1
    rle = mask_utils.encode(crowd)
    rle["counts"] = rle["counts"].decode()
    anns.append({"id": 9, "image_id": 7, "category_id": 1, "iscrowd": 1, "bbox": [20, 250, 120, 80],
                 "keypoints": [0] * 51, "num_keypoints": 0, "area": 9600, "segmentation": rle})
    ann = write_coco(root, images, anns, split="train")
    return ann, root / "images" / "train", "coco"


def draws(w, h, anns, profile):
    """Pinned augmentation draws for one image: plain, zoomed out and rotated with a flip, zoomed in and
    rotated over the border, and shifts that bring a keypoint and a center to x (or y) = -0.5."""
    s0 = min(w, h) / 200.0
    out = [AffineParams((w / 2.0, h / 2.0), s0, 0.0, False),
           AffineParams((w / 2.0 + 17, h / 2.0 - 9), 1.4 * s0, 23.0, True),
           AffineParams((w / 2.0 - 30, h / 2.0 + 12), 0.8 * s0, -28.0, False),
           AffineParams((w / 2.0 + 25, h / 2.0), 0.77 * s0, 12.5, True)]
    f = S_OUT / (200.0 * s0)
    people = [a for a in anns if not a.get("iscrowd") and any(v > 0 for v in a["keypoints"][2::3])]
    big = max(people, key=lambda a: a["bbox"][2] * a["bbox"][3])
    kp = np.array(big["keypoints"], float).reshape(-1, 3)
    x, y = kp[kp[:, 2] > 0][0, :2]
    # (the other axis is moved off whole pixels too, so no point sits where rounding order could matter)
    out.append(AffineParams((x + (S_OUT / 2 + 0.5) / f, h / 2.0 + 0.37 / f), s0, 0.0, False))  # x_out = -0.5
    out.append(AffineParams((w / 2.0 + 0.29 / f, y + (S_OUT / 2 + 0.3) / f), s0, 0.0, False))  # y_out = -0.3
    cx, cy = kp[kp[:, 2] > 0, :2].mean(0)
    out.append(AffineParams((cx + (S_OUT / 2 + 0.4) / f, cy + 0.37 / f), s0, 0.0, False))  # center x = -0.4
    return out


SOURCES = ["built"] + sorted(REAL)
CASES = ("clipped_radius_differs", "ceil_differs", "rotated_box_over_border", "keypoint_in_minus_one_zero",
         "center_in_minus_one_zero")


@pytest.mark.parametrize("source", SOURCES)
def test_targets_equal_the_spec_oracle(source, tmp_path, request):
    if source == "built":
        ann_file, image_dir, name = built_set(tmp_path)
    else:
        real = request.getfixturevalue("real_fixtures")
        ann_file, image_dir, name = real / source / REAL[source], real / source, source
    profile = get_profile(name)
    ds = KeypointDataset(image_dir, name, "train",
                         settings=SampleSettings(input_size=S_IN, flip_alignment="release", box_clipping="release",
                                                 center_jitter=False, seed=0),
                         files=DataFiles(ann_file=ann_file, image_dir=image_dir))
    data = json.loads(Path(ann_file).read_text())
    stats = dict.fromkeys(CASES, 0)
    n_samples = n_inst = 0
    for i, rec in enumerate(ds.records):
        anns = [a for a in data["annotations"] if a["image_id"] == rec["image_id"]]
        img = cv2.cvtColor(cv2.imread(str(rec["path"]), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION),
                           cv2.COLOR_BGR2RGB)
        h, w = img.shape[:2]
        for d, params in enumerate(draws(w, h, anns, profile)):
            got = ds.load_train(i, params=params)
            want = oracle_sample(img, anns, params, profile, stats)
            where = f"{source} image {rec['image_id']} draw {d}"
            levels = np.abs(got["image"].numpy() - want["image"].transpose(2, 0, 1)) * STD[:, None, None] * 255
            assert levels.max() < 1.01 and (levels > 0.5).mean() < 1e-3, where  # cv2's rounding, at most
            np.testing.assert_array_equal(got["multi_mask"].numpy()[0], want["multi_mask"], err_msg=where)
            for c in range(profile.num_keypoints + 1):
                np.testing.assert_allclose(got["multi_heatmap"][c].numpy(), want["multi_heatmap"][c], atol=1e-6,
                                           rtol=0, err_msg=f"{where} multi-heatmap channel {c}")
            n = len(want["coord"])
            assert got["instance_coord"].tolist() == want["coord"], where
            if n:
                np.testing.assert_allclose(got["instance_heatmap"].numpy(), np.stack(want["heatmap"]),
                                           atol=1e-6, rtol=0, err_msg=where)
                np.testing.assert_array_equal(got["instance_mask"].numpy(), want["mask"], err_msg=where)
                np.testing.assert_allclose(got["instance_center"].numpy(), want["center"], atol=1e-4)
                np.testing.assert_allclose(got["instance_bbox"].numpy(), want["bbox"], atol=1e-4)
                np.testing.assert_allclose(got["instance_keypoints"].numpy(), want["keypoints"], atol=1e-4)
            else:
                assert got["instance_heatmap"].shape[0] == 0
            n_samples += 1
            n_inst += n
    assert n_samples >= 7 and n_inst >= n_samples  # every draw kept people to compare
    # the draws met every case that the old rules (floor, unrounded sides) or a missing clip get wrong
    assert all(n > 0 for n in stats.values()), stats
