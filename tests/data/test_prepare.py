"""Real-data preparation (boir_core.data.sources.prepare) on small fake releases built in tmp_path.

The fakes mimic the real file names and folder structure (COCO's zips, CrowdPose's loose JSONs and
images/ folder, OCHuman's images.tar.gz); the expected counts are passed in, the real ones being
module constants. Downloads run against a file:// URL or a loopback http.server with Range support.
"""
from __future__ import annotations

import hashlib
import http.server
import json
import shutil
import tarfile
import threading
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from boir_core.__main__ import main as cli_main
from boir_core.data import KeypointDataset, SampleSettings
from boir_core.data.sources import prepare as P

QUIET = P.PrepareOptions(progress=False)
DOWNLOAD = P.PrepareOptions(download_missing=True, progress=False)
FAST = P.Transfer(timeout=10, progress=False)

# ---------------------------------------------------------------------------------------------------
# fake releases


def _jpeg_bytes(seed: int, w: int = 40, h: int = 32) -> bytes:
    img = np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    return buf.tobytes()


def _person(ann_id: int, image_id: int, k: int = 17) -> dict:
    kps = []
    for j in range(k):
        kps += [5 + j, 6 + (j % 10), 2]
    return {"id": ann_id, "image_id": image_id, "category_id": 1, "iscrowd": 0, "keypoints": kps,
            "num_keypoints": k, "bbox": [4.0, 5.0, 20.0, 14.0], "area": 280.0,
            "segmentation": [[4, 5, 24, 5, 24, 19, 4, 19]]}


def _coco_json(names: dict[int, str], people_per_image: int = 1, first_ann: int = 1, k: int = 17,
               with_annotations: bool = True, crowd_index: bool = False) -> dict:
    images = [{"id": i, "file_name": n, "width": 40, "height": 32, **({"crowdIndex": 0.25} if crowd_index else {})}
              for i, n in names.items()]
    d = {"info": {"description": "fake"}, "images": images,
         "categories": [{"id": 1, "name": "person", "supercategory": "person"}]}
    if with_annotations:
        anns, aid = [], first_ann
        for i in names:
            for _ in range(people_per_image):
                anns.append(_person(aid, i, k))
                aid += 1
        d["annotations"] = anns
    return d


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


VAL = {1: "000000000001.jpg", 2: "000000000002.jpg", 3: "000000000003.jpg"}
TRAIN = {11: "000000000011.jpg", 12: "000000000012.jpg"}
TEST = {21: "000000000021.jpg", 22: "000000000022.jpg"}
COCO_EXPECTED = {"train": P.Expected(2, 4), "val": P.Expected(3, 6), "test": P.Expected(2, 0)}


def _fake_coco_release(src: Path, val_images=(1, 2)) -> dict[str, bytes]:
    """The five COCO zips in ``src`` (val2017.zip holds only ``val_images``); returns the JSON bytes."""
    src.mkdir(parents=True, exist_ok=True)
    js = {
        "person_keypoints_val2017.json": json.dumps(_coco_json(VAL, 2)).encode(),
        "person_keypoints_train2017.json": json.dumps(_coco_json(TRAIN, 2, first_ann=100)).encode(),
        "image_info_test-dev2017.json": json.dumps(_coco_json(TEST, with_annotations=False)).encode(),
    }
    _zip(src / "annotations_trainval2017.zip", {
        "annotations/person_keypoints_val2017.json": js["person_keypoints_val2017.json"],
        "annotations/person_keypoints_train2017.json": js["person_keypoints_train2017.json"],
        "annotations/instances_val2017.json": b"{}",
    })
    _zip(src / "image_info_test2017.zip",
         {"annotations/image_info_test-dev2017.json": js["image_info_test-dev2017.json"]})
    _zip(src / "val2017.zip", {f"val2017/{VAL[i]}": _jpeg_bytes(i) for i in val_images})
    _zip(src / "train2017.zip", {f"train2017/{n}": _jpeg_bytes(i) for i, n in TRAIN.items()})
    _zip(src / "test2017.zip", {f"test2017/{n}": _jpeg_bytes(i) for i, n in TEST.items()})
    return js


def _table(src: Path, dataset: str = "coco", md5: dict[str, str] | None = None, url: bool = False) -> dict:
    """An archive table for the fakes in ``src`` (optionally with md5s and file:// URLs)."""
    md5 = md5 or {}
    arcs = []
    for a in P.ARCHIVES[dataset]:
        u = (src / a.name).resolve().as_uri() if url else None
        arcs.append(P.Archive(a.name, u, a.page, md5=md5.get(a.name)))
    return {dataset: tuple(arcs)}


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------------------------------------------
# COCO, offline


def test_coco_offline_end_to_end(tmp_path, capsys):
    src, root = tmp_path / "downloads", tmp_path / "data"
    js = _fake_coco_release(src, val_images=(1, 2))
    table = _table(src, md5={n: _md5(src / n) for n in ("val2017.zip", "annotations_trainval2017.zip")})

    report = P.prepare("coco", root, src, archives=table, expected=COCO_EXPECTED, options=QUIET)
    coco = root / "coco"
    # annotation files under the profile's names; the keypoint files are copied byte for byte
    assert (coco / "annotations/coco_val.json").read_bytes() == js["person_keypoints_val2017.json"]
    assert (coco / "annotations/coco_train.json").read_bytes() == js["person_keypoints_train2017.json"]
    test_json = json.loads((coco / "annotations/coco_test.json").read_text())
    assert test_json["annotations"] == []  # the image-info file gets the key the loader needs
    assert [im["file_name"] for im in test_json["images"]] == list(TEST.values())
    # image folders
    assert sorted(p.name for p in (coco / "images/val2017").iterdir()) == [VAL[1], VAL[2]]
    assert sorted(p.name for p in (coco / "images/train2017").iterdir()) == sorted(TRAIN.values())
    assert sorted(p.name for p in (coco / "images/test2017").iterdir()) == sorted(TEST.values())
    assert (coco / "images/val2017" / VAL[1]).read_bytes() == _jpeg_bytes(1)

    # incomplete: exactly one problem, naming the split, the count and the missing file
    assert not report.ok and report.returncode == 1
    assert len(report.problems) == 1, report.problems
    assert "val" in report.problems[0] and "1 of 3" in report.problems[0] and VAL[3] in report.problems[0]
    assert report.splits["val"].missing == [VAL[3]]
    assert report.splits["train"].missing == [] and report.splits["test"].missing == []
    assert (report.splits["val"].images, report.splits["val"].annotations) == (3, 6)
    text = report.format()
    assert "INCOMPLETE" in text and VAL[3] in text

    # verify finds the same; once the image is there, the set is complete
    again = P.verify("coco", root, expected=COCO_EXPECTED)
    assert again.problems == report.problems
    (coco / "images/val2017" / VAL[3]).write_bytes(_jpeg_bytes(3))
    done = P.verify("coco", root, expected=COCO_EXPECTED)
    assert done.ok and done.returncode == 0, done.problems

    # the command line checks against the real counts (module constants): 3 images is not 5,000
    assert P.EXPECTED["coco"]["val"].images == 5000
    rc = cli_main(["prepare-data", "verify", "coco", "--root", str(root)])
    out = capsys.readouterr().out
    assert rc == 1 and "lists 3 images, expected 5000" in out and "expected 118287" in out
    # --subset (a trial on a few images): every listed image on disk, no release counts
    assert cli_main(["prepare-data", "verify", "coco", "--root", str(root), "--subset"]) == 0
    assert "COMPLETE" in capsys.readouterr().out
    (coco / "images/val2017" / VAL[3]).unlink()
    assert cli_main(["prepare-data", "verify", "coco", "--root", str(root), "--subset"]) == 1
    assert "1 of 3 images missing" in capsys.readouterr().out
    (coco / "images/val2017" / VAL[3]).write_bytes(_jpeg_bytes(3))

    # the loader opens the prepared COCO
    ds = KeypointDataset(coco, "coco", split="val", train=False, settings=SampleSettings(input_size=64))
    assert len(ds) == 3
    sample = ds[0]
    assert sample["image"].shape[0] == 3 and sample["image_id"] in VAL


def test_coco_counts_against_passed_expectations(tmp_path):
    src, root = tmp_path / "src", tmp_path / "data"
    _fake_coco_release(src, val_images=(1, 2, 3))
    wrong = {**COCO_EXPECTED, "train": P.Expected(5, None), "val": P.Expected(3, 7)}
    report = P.prepare("coco", root, src, archives=_table(src), expected=wrong, options=QUIET)
    assert sorted(report.problems) == sorted([
        "coco train: coco_train.json lists 2 images, expected 5",
        "coco val: coco_val.json has 6 annotations, expected 7",
    ])
    assert P.verify("coco", root, expected=COCO_EXPECTED).ok


def test_wrong_checksum_is_reported_with_the_file_name(tmp_path):
    src, root = tmp_path / "src", tmp_path / "data"
    _fake_coco_release(src, val_images=(1, 2, 3))
    good = _md5(src / "annotations_trainval2017.zip")
    table = _table(src, md5={"val2017.zip": "0" * 32, "annotations_trainval2017.zip": good})
    report = P.prepare("coco", root, src, archives=table, expected=COCO_EXPECTED, options=QUIET)
    bad = [p for p in report.problems if "val2017.zip" in p and "md5" in p]
    assert len(bad) == 1 and "expected " + "0" * 32 in bad[0] and _md5(src / "val2017.zip") in bad[0]
    assert not (root / "coco/images/val2017").exists()  # nothing extracted from the bad archive
    assert (root / "coco/annotations/coco_val.json").is_file()  # the good archive was used
    assert any("3 of 3 images missing" in p for p in report.problems)
    # a wrong size is caught too, before any hashing
    with pytest.raises(P.ChecksumError, match=r"val2017\.zip: size \d+ bytes, expected 12"):
        P.check_file(src / "val2017.zip", size=12)


def test_missing_archive_names_the_download(tmp_path):
    src, root = tmp_path / "src", tmp_path / "data"
    _fake_coco_release(src)
    (src / "train2017.zip").unlink()
    report = P.prepare("coco", root, src, archives=_table(src, url=True), expected=COCO_EXPECTED, options=QUIET)
    msg = [p for p in report.problems if p.startswith("train2017.zip")]
    assert len(msg) == 1 and "--download" in msg[0]
    assert any("coco train: 2 of 2 images missing" in p for p in report.problems)


def test_download_from_file_url_then_rerun_keeps_everything(tmp_path):
    """--download with the table's URLs (file:// here): archives land in root/coco/downloads."""
    release, root = tmp_path / "release", tmp_path / "data"
    _fake_coco_release(release, val_images=(1, 2, 3))
    table = _table(release, url=True, md5={"val2017.zip": _md5(release / "val2017.zip")})
    report = P.prepare("coco", root, None, options=DOWNLOAD, archives=table, expected=COCO_EXPECTED)
    assert report.ok, report.problems
    assert (root / "coco/downloads/val2017.zip").read_bytes() == (release / "val2017.zip").read_bytes()
    assert not (root / "coco/.prepare").exists()  # extraction leftovers removed once complete
    before = (root / "coco/annotations/coco_val.json").stat().st_mtime_ns
    shutil.rmtree(release)  # nothing is fetched again
    again = P.prepare("coco", root, None, options=DOWNLOAD, archives=table, expected=COCO_EXPECTED)
    assert again.ok and (root / "coco/annotations/coco_val.json").stat().st_mtime_ns == before


# ---------------------------------------------------------------------------------------------------
# CrowdPose (loose JSONs + an already extracted images/ folder) and OCHuman (images.tar.gz)


def test_crowdpose_merges_train_and_val_and_links_images(tmp_path):
    src, root = tmp_path / "crowdpose_release", tmp_path / "data"
    train = {100: "100.jpg", 101: "101.jpg"}
    val = {200: "200.jpg"}
    test = {300: "300.jpg", 301: "301.jpg"}
    (src / "json").mkdir(parents=True)
    for name, names, first in (("train", train, 1), ("val", val, 50), ("test", test, 80)):
        (src / "json" / f"crowdpose_{name}.json").write_text(
            json.dumps(_coco_json(names, 2, first_ann=first, k=14, crowd_index=True)))
    (src / "images").mkdir()
    for i, n in {**train, **val, **test}.items():
        (src / "images" / n).write_bytes(_jpeg_bytes(i))
    exp = {"trainval": P.Expected(3, 6), "test": P.Expected(2, 4)}
    report = P.prepare("crowdpose", root, src, expected=exp, options=QUIET)
    assert report.ok, report.problems
    tv = json.loads((root / "crowdpose/annotations/crowdpose_trainval.json").read_text())
    assert [im["id"] for im in tv["images"]] == [100, 101, 200]
    assert sorted(a["id"] for a in tv["annotations"]) == [1, 2, 3, 4, 50, 51]
    assert all(im["crowdIndex"] == 0.25 for im in tv["images"])
    assert (root / "crowdpose/images").is_symlink()
    assert (root / "crowdpose/images/300.jpg").read_bytes() == _jpeg_bytes(300)
    ds = KeypointDataset(root / "crowdpose", "crowdpose", split="test", train=False,
                         settings=SampleSettings(input_size=64))
    assert len(ds) == 2

    # verify: a lost crowdIndex and a lost image are both reported
    tv["images"][1].pop("crowdIndex")
    (root / "crowdpose/annotations/crowdpose_trainval.json").write_text(json.dumps(tv))
    (src / "images/200.jpg").unlink()
    rep = P.verify("crowdpose", root, expected=exp)
    assert sorted(rep.problems) == sorted([
        "crowdpose trainval: 1 images lack 'crowdIndex' (first: 101.jpg)",
        f"crowdpose trainval: 1 of 3 images missing in {root / 'crowdpose/images'}; first: 200.jpg",
    ])


def test_crowdpose_clashing_ids_are_refused(tmp_path):
    src, root = tmp_path / "src", tmp_path / "data"
    src.mkdir()
    (src / "crowdpose_train.json").write_text(json.dumps(_coco_json({7: "7.jpg"}, k=14, crowd_index=True)))
    (src / "crowdpose_val.json").write_text(json.dumps(_coco_json({7: "x.jpg"}, k=14, crowd_index=True,
                                                                  first_ann=9)))
    (src / "crowdpose_test.json").write_text(json.dumps(_coco_json({8: "8.jpg"}, k=14, crowd_index=True)))
    report = P.prepare("crowdpose", root, src, expected={}, options=QUIET)
    assert any("crowdpose_val.json: image id 7 also appears in" in p for p in report.problems), report.problems
    assert not (root / "crowdpose/annotations/crowdpose_trainval.json").exists()
    assert any(p.startswith("images.zip: not found") and P.ARCHIVES["crowdpose"][0].page in p
               for p in report.problems)


def test_ochuman_from_tar_gz(tmp_path):
    src, root = tmp_path / "src", tmp_path / "data"
    src.mkdir()
    val = {1: "000001.jpg", 2: "000002.jpg"}
    test = {3: "000003.jpg"}
    (src / "ochuman_coco_format_val_range_0.00_1.00.json").write_text(json.dumps(_coco_json(val)))
    (src / "ochuman_coco_format_test_range_0.00_1.00.json").write_text(json.dumps(_coco_json(test)))
    staging = tmp_path / "tar_content" / "images"
    staging.mkdir(parents=True)
    for i, n in {**val, **test}.items():
        (staging / n).write_bytes(_jpeg_bytes(i))
    with tarfile.open(src / "images.tar.gz", "w:gz") as t:
        t.add(staging, arcname="images")
    report = P.prepare("ochuman", root, src, expected={"val": P.Expected(2), "test": P.Expected(1)},
                       options=QUIET)
    assert report.ok, report.problems
    assert sorted(p.name for p in (root / "ochuman/images").iterdir()) == ["000001.jpg", "000002.jpg", "000003.jpg"]
    assert not (root / "ochuman/images").is_symlink()  # moved out of our own extraction
    assert (root / "ochuman/annotations/ochuman_test.json").read_text() == \
        (src / "ochuman_coco_format_test_range_0.00_1.00.json").read_text()


def test_extract_refuses_members_outside_the_folder(tmp_path):
    evil = _zip(tmp_path / "evil.zip", {"../outside.txt": b"x"})
    with pytest.raises(P.PrepareError, match="evil.zip: member '../outside.txt'"):
        P.extract(evil, tmp_path / "out", progress=False)
    assert not (tmp_path / "outside.txt").exists() and not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------------------
# the downloader: resume over a loopback HTTP server


class _RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves ``payload`` at any path; honours ``Range: bytes=N-`` unless ``ignore_range``."""

    payload = b""
    ignore_range = False
    seen: list = []

    def do_GET(self):  # noqa: N802
        rng = self.headers.get("Range")
        data, status = self.payload, 200
        type(self).seen.append(rng)
        if rng and not self.ignore_range:
            start = int(rng.removeprefix("bytes=").split("-")[0])
            data, status = self.payload[start:], 206
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        if status == 206:
            self.send_header("Content-Range", f"bytes {len(self.payload) - len(data)}-{len(self.payload) - 1}/"
                                              f"{len(self.payload)}")
        self.end_headers()
        type(self).sent = len(data)  # recorded before the client can see the end of the body
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server():
    """A loopback HTTP server in a thread, shut down after the test."""
    servers = []

    def start(payload: bytes, ignore_range: bool = False):
        handler = type("H", (_RangeHandler,), {"payload": payload, "ignore_range": ignore_range, "seen": []})
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        srv.timeout = 5
        th = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        th.start()
        servers.append((srv, th))
        return f"http://127.0.0.1:{srv.server_address[1]}/val2017.zip", handler

    yield start
    for srv, th in servers:
        srv.shutdown()
        srv.server_close()
        th.join(timeout=5)


def test_download_resumes_a_part_file_with_range(tmp_path, http_server):
    payload = np.random.default_rng(0).integers(0, 256, 300_000, dtype=np.uint8).tobytes()
    url, handler = http_server(payload)
    dest = tmp_path / "val2017.zip"
    (tmp_path / "val2017.zip.part").write_bytes(payload[:120_000])  # an interrupted earlier download
    out = P.download(url, dest, size=len(payload), md5=hashlib.md5(payload).hexdigest(),
                     sha256=hashlib.sha256(payload).hexdigest(), transfer=FAST)
    assert out == dest and dest.read_bytes() == payload
    assert not (tmp_path / "val2017.zip.part").exists()
    assert handler.seen == ["bytes=120000-"] and handler.sent == 180_000  # only the rest was sent


def test_download_restarts_when_the_server_ignores_range(tmp_path, http_server):
    payload = bytes(range(256)) * 400
    url, handler = http_server(payload, ignore_range=True)
    (tmp_path / "a.zip.part").write_bytes(b"garbage-" * 100)
    P.download(url, tmp_path / "a.zip", md5=hashlib.md5(payload).hexdigest(), transfer=FAST)
    assert (tmp_path / "a.zip").read_bytes() == payload and handler.seen == ["bytes=800-"]


def test_download_with_wrong_checksum_names_the_file_and_drops_the_part(tmp_path, http_server):
    url, _ = http_server(b"not the archive you want")
    with pytest.raises(P.ChecksumError, match=r"val2017\.zip: md5 [0-9a-f]{32}, expected 1{32}"):
        P.download(url, tmp_path / "val2017.zip", md5="1" * 32, transfer=FAST)
    assert not (tmp_path / "val2017.zip").exists() and not (tmp_path / "val2017.zip.part").exists()
