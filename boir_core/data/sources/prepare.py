"""Prepare the paper's real data sets (COCO 2017 keypoints, CrowdPose, OCHuman) in the layout the profiles read.

After ``prepare("coco", "data")`` (or ``boir prepare-data coco --root data``, also
``python data_scripts/prepare_data.py coco --root data``)::

    data/coco/annotations/coco_{train,val,test}.json      data/coco/images/{train,val,test}2017/
    data/crowdpose/annotations/crowdpose_{trainval,test}.json   data/crowdpose/images/
    data/ochuman/annotations/ochuman_{val,test}.json      data/ochuman/images/

Where the files come from is the table :data:`ARCHIVES` (file name, official URL or download page, size and
checksum where one is known). COCO is downloaded from ``images.cocodataset.org`` (``download_missing=True``: a
progress bar, resume of a ``.part`` file through HTTP ``Range``, size and md5 check); CrowdPose and OCHuman
are distributed through Google-Drive links on their project pages, so they are **manual** downloads: fetch
them by hand and pass the folder as ``source`` (``--from DIR``). ``source`` may hold the archives, or what
they extract to (folders and JSON files), in any sub-folder up to three levels deep.

Arranging: an archive is extracted into ``<dataset>/.prepare/`` (restartable: a half-extracted archive is
extracted again), the annotation files are written under the profile's names (through
:mod:`boir_core.io`, so never half-written) and the image folders are moved there from the extraction, or
symlinked (``link="symlink"``, the default) / copied (``link="copy"``) from a folder you supplied.
Two files are transformed on the way: CrowdPose's ``trainval`` is ``train`` + ``val`` merged (as DEKR and
CID did), and COCO's test-dev image list gets an empty ``annotations`` list (the loader expects the key).

Verification (:func:`verify`) checks every split: the annotation file loads, its image and annotation
counts match :data:`EXPECTED` (the real data sets' counts; tests pass their own), every image it lists is
on disk (missing ones are reported per split, with how many and the first few names), and CrowdPose images
carry ``crowdIndex``. Checksums are checked only where one is known; elsewhere the structure is the check.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from tqdm.auto import tqdm

from boir_core.data.profiles import REAL_DATASETS, get_profile
from boir_core.io import atomic_open, atomic_write_json, atomic_write_text

__all__ = [
    "Archive",
    "JsonTarget",
    "ImageTarget",
    "Recipe",
    "Expected",
    "ARCHIVES",
    "RECIPES",
    "EXPECTED",
    "DATASETS",
    "Report",
    "PrepareError",
    "ChecksumError",
    "Transfer",
    "download",
    "check_file",
    "extract",
    "PrepareOptions",
    "prepare",
    "verify",
    "run_command",
    "print_table",
]

DATASETS = REAL_DATASETS  # the data sets this module prepares: the registry's real ones
#: how many missing file names a report lists per split
SHOW_MISSING = 5
_STAGING = ".prepare"
_ARCHIVE_SUFFIXES = (".zip", ".tar.gz", ".tgz", ".tar")


class PrepareError(RuntimeError):
    """A preparation step failed; the message names the file concerned."""


class ChecksumError(PrepareError):
    """A downloaded or supplied archive has the wrong size or checksum."""


# ---------------------------------------------------------------------------------------------------
# the table of archives


@dataclass(frozen=True)
class Archive:
    """One file of a data set's release.

    ``url``: a direct download (None: manual download from ``page``). ``size`` in bytes, ``md5`` /
    ``sha256`` hex digests: None where no value is known ("unknown": the extracted structure is checked
    instead).
    """

    name: str
    url: str | None
    page: str
    size: int | None = None
    md5: str | None = None
    sha256: str | None = None
    note: str = ""

    @property
    def manual(self) -> bool:
        return self.url is None

    def describe_checksum(self) -> str:
        if self.sha256:
            return f"sha256 {self.sha256}"
        if self.md5:
            return f"md5 {self.md5}"
        return "unknown"


_COCO_PAGE = "https://cocodataset.org/#download"
_CROWDPOSE_PAGE = "https://github.com/Jeff-sjtu/CrowdPose"
_OCHUMAN_PAGE = "https://github.com/liruilong940607/OCHumanApi"
_COCO_SUMS = ("md5 as published by several independent COCO download tools; cocodataset.org itself "
              "publishes no checksum")

#: Every archive (or loose file) of the three releases. COCO's sizes and md5s are the values that many
#: independent download tools agree on; CrowdPose's and OCHuman's are unknown (Google-Drive downloads).
ARCHIVES: dict[str, tuple[Archive, ...]] = {
    "coco": (
        Archive("annotations_trainval2017.zip", "http://images.cocodataset.org/annotations/annotations_trainval2017.zip",
                _COCO_PAGE, size=252907541, md5="f4bbac642086de4f52a3fdda2de5fa2c", note=_COCO_SUMS),
        Archive("image_info_test2017.zip", "http://images.cocodataset.org/annotations/image_info_test2017.zip",
                _COCO_PAGE, md5="85da7065e5e600ebfee8af1edb634eb5", note=_COCO_SUMS + "; size unknown"),
        Archive("val2017.zip", "http://images.cocodataset.org/zips/val2017.zip", _COCO_PAGE,
                size=815585330, md5="442b8da7639aecaf257c1dceb8ba8c80", note=_COCO_SUMS),
        Archive("train2017.zip", "http://images.cocodataset.org/zips/train2017.zip", _COCO_PAGE,
                size=19336861798, md5="cced6f7f71b7629ddf16f17bbcfab6b2", note=_COCO_SUMS),
        Archive("test2017.zip", "http://images.cocodataset.org/zips/test2017.zip", _COCO_PAGE,
                size=6646970404, md5="77ad2c53ac5d0aea611d422c0938fb35", note=_COCO_SUMS),
    ),
    "crowdpose": (
        Archive("images.zip", None, _CROWDPOSE_PAGE, note="Google Drive link in the README; 20,000 images"),
        Archive("crowdpose_train.json", None, _CROWDPOSE_PAGE, note="Google Drive 'Annotations' (json/)"),
        Archive("crowdpose_val.json", None, _CROWDPOSE_PAGE, note="Google Drive 'Annotations' (json/)"),
        Archive("crowdpose_test.json", None, _CROWDPOSE_PAGE, note="Google Drive 'Annotations' (json/)"),
    ),
    "ochuman": (
        Archive("images.tar.gz", None, _OCHUMAN_PAGE, note="Google Drive link in the README"),
        Archive("ochuman_coco_format_val_range_0.00_1.00.json", None, _OCHUMAN_PAGE,
                note="Google Drive link in the README"),
        Archive("ochuman_coco_format_test_range_0.00_1.00.json", None, _OCHUMAN_PAGE,
                note="Google Drive link in the README"),
    ),
}


@dataclass(frozen=True)
class JsonTarget:
    """An annotation file of the prepared layout, made from ``sources`` (release file names, merged in order).

    ``archive``: the archive that holds the sources (None: they are loose files of the release).
    ``ensure_annotations``: add an empty ``annotations`` list when the source has none (image-info files).
    """

    split: str
    sources: tuple[str, ...]
    archive: str | None = None
    ensure_annotations: bool = False


@dataclass(frozen=True)
class ImageTarget:
    """An image folder of the prepared layout: the folder ``folder`` inside ``archive``, for ``splits``."""

    splits: tuple[str, ...]
    folder: str
    archive: str


@dataclass(frozen=True)
class Recipe:
    name: str
    annotations: tuple[JsonTarget, ...]
    images: tuple[ImageTarget, ...]

    @property
    def splits(self) -> tuple[str, ...]:
        return tuple(t.split for t in self.annotations)


RECIPES: dict[str, Recipe] = {
    "coco": Recipe("coco", annotations=(
        JsonTarget("train", ("person_keypoints_train2017.json",), "annotations_trainval2017.zip"),
        JsonTarget("val", ("person_keypoints_val2017.json",), "annotations_trainval2017.zip"),
        JsonTarget("test", ("image_info_test-dev2017.json",), "image_info_test2017.zip", ensure_annotations=True),
    ), images=(
        ImageTarget(("train",), "train2017", "train2017.zip"),
        ImageTarget(("val",), "val2017", "val2017.zip"),
        ImageTarget(("test",), "test2017", "test2017.zip"),
    )),
    "crowdpose": Recipe("crowdpose", annotations=(
        JsonTarget("trainval", ("crowdpose_train.json", "crowdpose_val.json")),
        JsonTarget("test", ("crowdpose_test.json",)),
    ), images=(ImageTarget(("trainval", "test"), "images", "images.zip"),)),
    "ochuman": Recipe("ochuman", annotations=(
        JsonTarget("val", ("ochuman_coco_format_val_range_0.00_1.00.json",)),
        JsonTarget("test", ("ochuman_coco_format_test_range_0.00_1.00.json",)),
    ), images=(ImageTarget(("val", "test"), "images", "images.tar.gz"),)),
}


@dataclass(frozen=True)
class Expected:
    """Known counts of one split's annotation file (None: not checked)."""

    images: int | None = None
    annotations: int | None = None


#: The real counts (images and person annotations listed in each prepared JSON).
EXPECTED: dict[str, dict[str, Expected]] = {
    "coco": {"train": Expected(118287, 262465), "val": Expected(5000, 11004), "test": Expected(20288, None)},
    "crowdpose": {"trainval": Expected(12000, None), "test": Expected(8000, None)},
    "ochuman": {"val": Expected(2500, None), "test": Expected(2231, None)},
}


def _archive(dataset: str, name: str, archives: Mapping[str, Sequence[Archive]]) -> Archive:
    for a in archives.get(dataset, ()):
        if a.name == name:
            return a
    return Archive(name, None, "(not in the archive table)")


# ---------------------------------------------------------------------------------------------------
# report


@dataclass
class SplitStatus:
    split: str
    ann_file: str
    image_dir: str
    images: int = 0
    annotations: int = 0
    missing: list[str] = field(default_factory=list)


@dataclass
class Report:
    """What :func:`prepare` / :func:`verify` found. ``ok``: nothing missing or wrong."""

    dataset: str
    root: str
    splits: dict[str, SplitStatus] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def returncode(self) -> int:
        return 0 if self.ok else 1

    def format(self) -> str:
        lines = [f"{self.dataset} ({self.root}): {'COMPLETE' if self.ok else 'INCOMPLETE'}"]
        lines += [f"  done: {a}" for a in self.actions]
        for s in self.splits.values():
            lines.append(f"  {s.split}: {s.images} images, {s.annotations} annotations in {s.ann_file}; "
                         f"{s.images - len(s.missing)} of {s.images} images present in {s.image_dir}")
        lines += [f"  PROBLEM: {p}" for p in self.problems]
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------
# download, checksum, extraction


def _digest(path: Path, algo: str, chunk: int = 1 << 22) -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def check_file(path: str | os.PathLike, size: int | None = None, md5: str | None = None,
               sha256: str | None = None, name: str | None = None) -> None:
    """Raise :class:`ChecksumError` (naming the file, the expected and the found value) on a mismatch.

    ``name``: the file name to report (default: ``path``'s; a download reports its final name).
    """
    path = Path(path)
    name = name or path.name
    if size is not None and path.stat().st_size != size:
        raise ChecksumError(f"{name}: size {path.stat().st_size} bytes, expected {size} ({path})")
    for algo, want in (("sha256", sha256), ("md5", md5)):
        if want:
            got = _digest(path, algo)
            if got.lower() != want.lower():
                raise ChecksumError(f"{name}: {algo} {got}, expected {want} ({path})")


def _progress(total: int | None, initial: int, desc: str, enabled: bool):
    return tqdm(total=total, initial=initial, desc=desc, unit="B", unit_scale=True, unit_divisor=1024,
                disable=not enabled, leave=False)


@dataclass(frozen=True)
class Transfer:
    """How :func:`download` moves the bytes: the network ``timeout`` in seconds, the ``chunk`` size in bytes read
    at a time, and whether to show a ``progress`` bar."""

    timeout: float = 60.0
    chunk: int = 1 << 20
    progress: bool = True


def download(url: str, dest: str | os.PathLike, *, size: int | None = None, md5: str | None = None,
             sha256: str | None = None, transfer: Transfer = Transfer()) -> Path:
    """Download ``url`` to ``dest``, resuming ``dest.part`` with an HTTP ``Range`` request (``transfer``: timeout,
    chunk size, progress bar).

    The bytes go to ``<dest>.part`` and are renamed onto ``dest`` once complete and checked (size, md5,
    sha256 where given). A server that ignores ``Range`` (status 200) restarts the file from zero. A file
    that fails its check is deleted and :class:`ChecksumError` raised. ``file://`` URLs are read directly.
    An existing ``dest`` is checked and kept.
    """
    dest = Path(dest)
    if dest.is_file():
        check_file(dest, size, md5, sha256)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    offset = part.stat().st_size if part.is_file() else 0
    if size is not None and offset > size:
        part.unlink()
        offset = 0
    parsed = urllib.parse.urlparse(url)
    if size is None or offset < size:
        if parsed.scheme == "file":
            src = Path(urllib.request.url2pathname(parsed.path))
            if not src.is_file():
                raise PrepareError(f"{dest.name}: source {src} not found")
            total = src.stat().st_size
            if offset > total:
                offset = 0
            with open(src, "rb") as fin, open(part, "ab" if offset else "wb") as fout, \
                    _progress(total, offset, dest.name, transfer.progress) as bar:
                fin.seek(offset)
                while block := fin.read(transfer.chunk):
                    fout.write(block)
                    bar.update(len(block))
        else:
            _http_download(url, part, offset, dest.name, transfer)
    try:
        check_file(part, size, md5, sha256, name=dest.name)
    except ChecksumError as e:
        part.unlink()
        raise ChecksumError(f"{e} [downloaded from {url}; the partial file was deleted]") from None
    os.replace(part, dest)
    return dest


def _http_download(url: str, part: Path, offset: int, name: str, transfer: Transfer) -> None:
    headers = {"User-Agent": "boir-kit-prepare/1"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    req = urllib.request.Request(url, headers=headers)
    try:
        resp = urllib.request.urlopen(req, timeout=transfer.timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:  # nothing left to fetch: the part file is complete
            return
        raise PrepareError(f"{name}: HTTP {e.code} {e.reason} for {url}") from None
    except urllib.error.URLError as e:
        raise PrepareError(f"{name}: cannot reach {url} ({e.reason})") from None
    with resp:
        status = getattr(resp, "status", 200)
        if offset and status != 206:  # the server ignored Range: start again
            offset = 0
        length = resp.headers.get("Content-Length")
        total = offset + int(length) if length is not None else None
        with open(part, "ab" if offset else "wb") as fout, _progress(total, offset, name, transfer.progress) as bar:
            while block := resp.read(transfer.chunk):
                fout.write(block)
                bar.update(len(block))


def _archive_stem(name: str) -> str:
    for suf in _ARCHIVE_SUFFIXES:
        if name.endswith(suf):
            return name[: -len(suf)]
    return name


def _is_archive(name: str) -> bool:
    return name.endswith(_ARCHIVE_SUFFIXES)


def extract(archive: str | os.PathLike, out_dir: str | os.PathLike, progress: bool = True) -> Path:
    """Extract a zip / tar(.gz) archive into ``out_dir`` (created whole: a ``.tmp`` folder renamed at the end).

    Members that would land outside ``out_dir`` are refused. An existing ``out_dir`` is returned as is.
    """
    archive, out_dir = Path(archive), Path(out_dir)
    if out_dir.is_dir():
        return out_dir
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    base = tmp.resolve()
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:
                for info in tqdm(z.infolist(), desc=f"extract {archive.name}", disable=not progress, leave=False):
                    target = (tmp / info.filename).resolve()
                    if base != target and base not in target.parents:
                        raise PrepareError(f"{archive.name}: member {info.filename!r} would leave {out_dir}")
                    z.extract(info, tmp)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as t:
                members = t.getmembers()
                for m in tqdm(members, desc=f"extract {archive.name}", disable=not progress, leave=False):
                    if hasattr(tarfile, "data_filter"):  # Python >= 3.10.12 / 3.11.4: refuse unsafe members
                        t.extract(m, tmp, filter="data")
                    else:
                        target = (tmp / m.name).resolve()
                        if (base != target and base not in target.parents) or m.issym() or m.islnk():
                            raise PrepareError(f"{archive.name}: member {m.name!r} would leave {out_dir}")
                        t.extract(m, tmp)
        else:
            raise PrepareError(f"{archive}: not a zip or tar archive")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise PrepareError(f"{archive.name}: cannot extract ({e}); is the file complete? ({archive})") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    os.replace(tmp, out_dir)
    return out_dir


# ---------------------------------------------------------------------------------------------------
# finding files in a source tree


class _Tree:
    """Archives, JSON files and folders under ``base`` (three levels deep), excluding ``exclude``."""

    def __init__(self, base: Path, exclude: Iterable[Path] = (), max_depth: int = 3, owned: bool = False):
        self.base = base
        self.owned = owned  # True: extracted by us, so folders are moved rather than linked
        self.files: dict[str, list[Path]] = {}
        self.dirs: dict[str, list[Path]] = {}
        excl = {p.resolve() for p in exclude if p.exists()}
        stack = [(base, 0)]
        while stack:
            d, depth = stack.pop()
            try:
                entries = list(os.scandir(d))
            except OSError:
                continue
            for e in sorted(entries, key=lambda e: e.name):
                if e.is_dir():
                    p = Path(e.path)
                    if p.resolve() in excl or e.name.startswith(".") and e.name != _STAGING:
                        continue
                    self.dirs.setdefault(e.name, []).append(p)
                    if depth < max_depth:
                        stack.append((p, depth + 1))
                elif e.name.endswith(".json") or _is_archive(e.name):
                    self.files.setdefault(e.name, []).append(Path(e.path))


def _find_file(trees: Sequence[_Tree], name: str) -> Path | None:
    for t in trees:
        if name in t.files:
            return t.files[name][0]
    return None


def _find_dir(trees: Sequence[_Tree], name: str, wanted: Sequence[str]) -> tuple[Path, _Tree] | None:
    """The folder called ``name`` holding most of the ``wanted`` file names (a sample is checked)."""
    sample = list(wanted[:50])
    best, best_score = None, -1
    for t in trees:
        for p in t.dirs.get(name, []):
            score = sum((p / f).is_file() for f in sample) if sample else int(any(p.iterdir()))
            if score > best_score:
                best, best_score = (p, t), score
    if best is None or best_score <= 0:
        return None
    return best


# ---------------------------------------------------------------------------------------------------
# preparing one data set


def load_coco_json(path: Path) -> dict:
    """A COCO-format JSON file (a dict with an ``images`` list); :class:`PrepareError` names the file otherwise."""
    try:
        with open(path) as f:
            d = json.load(f)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise PrepareError(f"{path}: cannot read JSON ({e})") from None
    if not isinstance(d, dict) or not isinstance(d.get("images"), list):
        raise PrepareError(f"{path}: not a COCO-format file (no 'images' list)")
    return d


def _merge(paths: Sequence[Path], ensure_annotations: bool) -> dict:
    """One COCO-format dict from several (images and annotations concatenated; ids must not clash)."""
    out: dict[str, Any] | None = None
    image_ids: dict[Any, Path] = {}
    ann_ids: dict[Any, Path] = {}
    for p in paths:
        d = load_coco_json(p)
        if "annotations" not in d:
            if not ensure_annotations:
                raise PrepareError(f"{p}: missing top-level key 'annotations'")
            d["annotations"] = []
        for im in d["images"]:
            if im.get("id") in image_ids:
                raise PrepareError(f"{p}: image id {im.get('id')} also appears in {image_ids[im.get('id')]}")
            image_ids[im.get("id")] = p
        for a in d["annotations"]:
            if a.get("id") in ann_ids:
                raise PrepareError(f"{p}: annotation id {a.get('id')} also appears in {ann_ids[a.get('id')]}")
            ann_ids[a.get("id")] = p
        if out is None:
            out = d
        else:
            out["images"] += d["images"]
            out["annotations"] += d["annotations"]
    assert out is not None
    return out


def _write_json_target(sources: Sequence[Path], target: Path, ensure_annotations: bool) -> None:
    if len(sources) == 1 and not ensure_annotations:
        d = load_coco_json(sources[0])  # check it before copying it byte for byte
        if "annotations" not in d:
            raise PrepareError(f"{sources[0]}: missing top-level key 'annotations'")
        with open(sources[0], "rb") as fin, atomic_open(target, "wb") as fout:
            shutil.copyfileobj(fin, fout, 1 << 22)
    else:
        atomic_write_json(target, _merge(sources, ensure_annotations))


def _place_dir(src: Path, dst: Path, move: bool, link: str) -> str:
    """Put folder ``src`` at ``dst`` (move it, or symlink / copy it); merge file by file into an existing one."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.is_symlink() and not dst.exists():
        dst.unlink()  # a dangling link from an earlier run
    if not dst.exists():
        if move:
            os.replace(src, dst)
            return f"moved {src} -> {dst}"
        if link == "symlink":
            dst.symlink_to(src.resolve(), target_is_directory=True)
            return f"linked {dst} -> {src.resolve()}"
        tmp = dst.with_name(dst.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(src, tmp)
        os.replace(tmp, dst)
        return f"copied {src} -> {dst}"
    n = 0
    for e in os.scandir(src):
        if e.is_file() and not (dst / e.name).exists():
            if move:
                os.replace(e.path, dst / e.name)
            elif link == "symlink":
                (dst / e.name).symlink_to(Path(e.path).resolve())
            else:
                shutil.copy2(e.path, dst / e.name)
            n += 1
    return f"added {n} files from {src} to {dst}"


def _listed_files(ann_paths: Iterable[Path]) -> list[str]:
    names: list[str] = []
    for p in ann_paths:
        if p.is_file():
            try:
                names += [im["file_name"] for im in load_coco_json(p)["images"] if "file_name" in im]
            except PrepareError:
                pass
    return names


@dataclass(frozen=True)
class PrepareOptions:
    """How :func:`prepare` works (``boir prepare-data``'s switches).

    ``download_missing``: fetch the archives with a URL that are needed and not found (into ``download_dir``,
    default the ``source`` folder or ``root/<dataset>/downloads``). ``check``: verify size / checksum where the
    table knows them. ``link``: how supplied (not extracted) image folders are placed: "symlink" or "copy".
    ``progress``: progress bars for downloads and extraction.
    """

    download_missing: bool = False
    check: bool = True
    link: str = "symlink"
    progress: bool = True
    download_dir: str | os.PathLike | None = None


def prepare(dataset: str, root: str | os.PathLike = "data", source: str | os.PathLike | None = None, *,
            options: PrepareOptions = PrepareOptions(), archives: Mapping[str, Sequence[Archive]] | None = None,
            expected: Mapping[str, Expected] | None = None) -> Report:
    """Prepare ``dataset`` under ``root/<dataset>`` and verify it; returns the :class:`Report`.

    ``source``: a folder with the downloaded archives or their extracted contents. ``options``: downloading,
    checking, how image folders are placed (:class:`PrepareOptions`). ``archives`` / ``expected`` replace
    :data:`ARCHIVES` / :data:`EXPECTED` (tests use small fakes). Targets already in place are kept; delete them
    to prepare again.
    """
    if dataset not in RECIPES:
        raise KeyError(f"unknown data set {dataset!r}; known: {', '.join(RECIPES)}")
    if options.link not in ("symlink", "copy"):
        raise ValueError(f"link must be 'symlink' or 'copy', got {options.link!r}")
    ds_dir = Path(root) / dataset
    dl_dir = (Path(options.download_dir) if options.download_dir
              else (Path(source) if source else ds_dir / "downloads"))
    run = _Preparation(dataset, ds_dir, Path(source) if source else None, dl_dir, options,
                       ARCHIVES if archives is None else archives)
    run.annotations()  # first: the image folders are recognised by the file names they list
    run.images()
    report = verify(dataset, root, expected=expected)
    report.actions = run.actions + report.actions
    report.problems = run.problems + report.problems
    if report.ok and run.staging.is_dir():
        shutil.rmtree(run.staging, ignore_errors=True)  # what is left of the extraction is not needed
    return report


class _Preparation:
    """One :func:`prepare` call: the trees searched (the staging folder, then the sources), what was done and
    what went wrong."""

    def __init__(self, dataset: str, ds_dir: Path, source: Path | None, dl_dir: Path, options: PrepareOptions,
                 archives: Mapping[str, Sequence[Archive]]):
        self.dataset, self.ds_dir, self.source, self.dl_dir = dataset, ds_dir, source, dl_dir
        self.settings, self.archives = options, archives
        self.recipe, self.profile = RECIPES[dataset], get_profile(dataset)
        self.staging = ds_dir / _STAGING
        self.actions: list[str] = []
        self.problems: list[str] = []
        self.trees: list[_Tree] = []
        if self.staging.is_dir():
            self.trees.append(_Tree(self.staging, owned=True, max_depth=4))
        self.src_trees = [_Tree(base, exclude=[ds_dir])
                          for base in dict.fromkeys(p for p in (source, dl_dir) if p and p.is_dir())]
        self.trees += self.src_trees
        self.extracted: set[str] = set()

    def _where(self) -> str:
        return f" in {self.source}" if self.source else ""

    def _fetch(self, archive_name: str, arc: Archive) -> Path | None:
        """The archive downloaded (allowed and possible), else None with the problem noted."""
        st = self.settings
        if arc.manual:
            self.problems.append(f"{archive_name}: not found{self._where()}; manual download from {arc.page} "
                                 f"({arc.note or 'see the page'}), then pass its folder with --from DIR")
            return None
        if not st.download_missing:
            self.problems.append(f"{archive_name}: not found{self._where()}; run with --download to fetch "
                                 f"{arc.url}, or download it and pass --from DIR")
            return None
        try:
            path = download(arc.url, self.dl_dir / archive_name, size=arc.size if st.check else None,
                            md5=arc.md5 if st.check else None, sha256=arc.sha256 if st.check else None,
                            transfer=Transfer(progress=st.progress))
        except PrepareError as e:
            self.problems.append(str(e))
            return None
        self.actions.append(f"downloaded {archive_name} from {arc.url}")
        return path

    def obtain(self, archive_name: str) -> bool:
        """Make ``archive_name``'s contents findable (extract it, downloading first if allowed)."""
        if archive_name in self.extracted:
            return False
        self.extracted.add(archive_name)
        arc = _archive(self.dataset, archive_name, self.archives)
        path = _find_file(self.src_trees, archive_name) or (
            self.dl_dir / archive_name if (self.dl_dir / archive_name).is_file() else None)
        if path is None:
            path = self._fetch(archive_name, arc)
            if path is None:
                return False
        elif self.settings.check and (arc.size or arc.md5 or arc.sha256):
            try:
                _checked(path, arc, self.staging)
            except ChecksumError as e:
                self.problems.append(str(e))
                return False
        if not _is_archive(archive_name):
            return False  # a loose file: found directly
        try:
            out = extract(path, self.staging / _archive_stem(archive_name), progress=self.settings.progress)
        except PrepareError as e:
            self.problems.append(str(e))
            return False
        self.actions.append(f"extracted {path.name} into {out}")
        self.trees.insert(0, _Tree(out, owned=True, max_depth=4))
        return True

    def annotations(self) -> None:
        for t in self.recipe.annotations:
            target = self.profile.ann_file(self.ds_dir, t.split)
            if not target.is_file():
                self._annotation(t, target)

    def _annotation(self, t, target: Path) -> None:
        for s in t.sources:
            if _find_file(self.trees, s) is None:
                self.obtain(t.archive or s)
        found = [_find_file(self.trees, s) for s in t.sources]
        missing = [s for s, f in zip(t.sources, found) if f is None]
        if missing:
            named = [t.archive] if t.archive else missing
            if not all(any(n in p for p in self.problems) for n in named):  # not yet explained
                self.problems.append(f"{self.dataset} {t.split}: {', '.join(missing)} not found"
                                     f"{' in ' + t.archive if t.archive else ''}")
            return
        for s, f in zip(t.sources, found):
            arc = _archive(self.dataset, s, self.archives)
            if self.settings.check and not _is_archive(s) and (arc.size or arc.md5 or arc.sha256) and t.archive is None:
                try:
                    _checked(f, arc, self.staging)
                except ChecksumError as e:
                    self.problems.append(str(e))
                    return
        try:
            _write_json_target(found, target, t.ensure_annotations)
            self.actions.append(f"wrote {target} from {', '.join(str(f) for f in found)}")
        except PrepareError as e:
            self.problems.append(str(e))

    def images(self) -> None:
        for it in self.recipe.images:
            target = self.profile.image_dir(self.ds_dir, it.splits[0])
            if target.is_dir() and any(target.iterdir()):
                continue
            wanted = _listed_files(self.profile.ann_file(self.ds_dir, s) for s in it.splits)
            hit = _find_dir(self.trees, it.folder, wanted)
            if hit is None and self.obtain(it.archive):
                hit = _find_dir(self.trees, it.folder, wanted)
            if hit is None:
                if not any(it.archive in p for p in self.problems):
                    self.problems.append(f"{self.dataset} {'/'.join(it.splits)}: image folder '{it.folder}' not "
                                         f"found (expected from {it.archive})")
                continue
            src, tree = hit
            self.actions.append(_place_dir(src, target, move=tree.owned, link=self.settings.link))


def _checked(path: Path, arc: Archive, memo_dir: Path) -> None:
    """Check ``path`` against ``arc`` once; a record in ``memo_dir`` (the staging folder) remembers a pass."""
    stamp = f"{path.resolve()}:{path.stat().st_size}:{path.stat().st_mtime_ns}:{arc.size}:{arc.md5}:{arc.sha256}"
    memo = memo_dir / f"{path.name}.checked"
    try:
        if memo.read_text() == stamp:
            return
    except OSError:
        pass
    check_file(path, arc.size, arc.md5, arc.sha256)
    atomic_write_text(memo, stamp)


# ---------------------------------------------------------------------------------------------------
# verification


def verify(dataset: str, root: str | os.PathLike = "data",
           expected: Mapping[str, Expected] | None = None) -> Report:
    """Re-check a prepared ``root/<dataset>``: files, counts, every listed image on disk."""
    if dataset not in RECIPES:
        raise KeyError(f"unknown data set {dataset!r}; known: {', '.join(RECIPES)}")
    expected = EXPECTED[dataset] if expected is None else expected
    profile = get_profile(dataset)
    ds_dir = Path(root) / dataset
    report = Report(dataset, str(ds_dir))
    for split in RECIPES[dataset].splits:
        ann = profile.ann_file(ds_dir, split)
        img_dir = profile.image_dir(ds_dir, split)
        if not ann.is_file():
            report.problems.append(f"{dataset} {split}: annotation file {ann} missing")
            continue
        try:
            d = load_coco_json(ann)
        except PrepareError as e:
            report.problems.append(f"{dataset} {split}: {e}")
            continue
        if not isinstance(d.get("annotations"), list):
            report.problems.append(f"{dataset} {split}: {ann} has no 'annotations' list")
        images, anns = d["images"], d.get("annotations") or []
        st = SplitStatus(split, str(ann), str(img_dir), len(images), len(anns))
        report.splits[split] = st
        exp = expected.get(split, Expected())
        if exp.images is not None and len(images) != exp.images:
            report.problems.append(f"{dataset} {split}: {ann.name} lists {len(images)} images, "
                                   f"expected {exp.images}")
        if exp.annotations is not None and len(anns) != exp.annotations:
            report.problems.append(f"{dataset} {split}: {ann.name} has {len(anns)} annotations, "
                                   f"expected {exp.annotations}")
        if profile.has_crowd_index:
            lacking = [im.get("file_name", im.get("id")) for im in images if "crowdIndex" not in im]
            if lacking:
                report.problems.append(f"{dataset} {split}: {len(lacking)} images lack 'crowdIndex' "
                                       f"(first: {', '.join(map(str, lacking[:SHOW_MISSING]))})")
        on_disk: set[str] = set()
        if img_dir.is_dir():
            on_disk = {e.name for e in os.scandir(img_dir) if e.is_file()}
        for im in images:
            name = im.get("file_name")
            if name is None:
                st.missing.append(f"<image id {im.get('id')} has no file_name>")
            elif name not in on_disk and not (img_dir / name).is_file():
                st.missing.append(name)
        if st.missing:
            where = img_dir if img_dir.is_dir() else f"{img_dir} (folder missing)"
            report.problems.append(
                f"{dataset} {split}: {len(st.missing)} of {len(images)} images missing in {where}; first: "
                f"{', '.join(st.missing[:SHOW_MISSING])}")
    return report


# ---------------------------------------------------------------------------------------------------
# command line


def print_table(datasets: Sequence[str]) -> None:
    """The archive table of ``datasets``: names, URLs (or the manual page), sizes, checksums."""
    for ds in datasets:
        print(f"{ds}:")
        for a in ARCHIVES[ds]:
            size = f"{a.size} bytes" if a.size else "size unknown"
            print(f"  {a.name:48s} {a.url or 'MANUAL: ' + a.page}  ({size}, checksum {a.describe_checksum()})")




def run_command(command: str, datasets: Sequence[str] | None = None, *, root: str | os.PathLike = "data",
                source: str | os.PathLike | None = None, options: Mapping[str, Any] | None = None) -> int:
    """What ``boir prepare-data COMMAND`` does (the command line is :mod:`boir_core.__main__`'s): ``list`` prints
    the archive table, ``verify`` re-checks prepared data sets, a data-set name prepares it. ``options``: the
    fields of :class:`PrepareOptions` (``download_missing``, ``check``, ``link``, ``progress``,
    ``download_dir``) and ``subset``. Exit status 0 = complete, 1 = incomplete (the report says what)."""
    options = dict(options or {})
    if command == "list":
        print_table([d for d in (datasets or DATASETS) if d in ARCHIVES])
        return 0
    expected = {} if options.pop("subset", False) else None  # a subset: every listed image, no release counts
    if command == "verify":
        reports = [verify(ds, root, expected=expected) for ds in (datasets or DATASETS)]
    else:
        if source and not Path(source).is_dir():
            print(f"--from {source}: not a folder", file=sys.stderr)
            return 1
        reports = [prepare(command, root, source, options=PrepareOptions(**options), expected=expected)]
    for r in reports:
        print(r.format())
    return 0 if all(r.ok for r in reports) else 1
