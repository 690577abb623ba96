"""Is a real data set laid out as the kit reads it? Checked before a long job starts, with what was expected where.

``data_scripts/prepare_data.py`` (:mod:`boir_core.data.sources.prepare`) lays out ``<root>/<dataset>`` as the
profiles read it (``annotations/coco_val.json`` + ``images/val2017/``, ...). A folder arranged some other way
(the release's own file names, images beside the annotations, a missing image folder) makes every run of that
data set fail, or worse, be skipped as "no data". :func:`check_layout` tells the three cases apart for each
split:

* **present**: the annotation file and the image folder are where the profile expects them;
* **absent**: neither is there and nothing under the folder looks like that split (not downloaded: fine,
  the runs that need it are skipped);
* **laid out differently**: :class:`DataLayoutError`, naming the expected path, what was found instead and
  the command that arranges it.

CrowdPose files must carry ``crowdIndex`` on every image (the AP easy / medium / hard split needs it): a
file without it is an error naming the file and its first images.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from ..profiles import get_profile
from .prepare import RECIPES, PrepareError, load_coco_json

__all__ = ["DataLayoutError", "check_layout"]

_DEPTH = 3  # how deep a misplaced file is looked for
_SHOW = 5


class DataLayoutError(ValueError):
    """A data set folder is not laid out as the kit reads it; the message says what was expected where."""


def _prepare_hint(dataset: str, root: Path) -> str:
    return (f"arrange it with `python data_scripts/prepare_data.py {dataset} --root {root.parent} --from DIR` "
            f"(DIR: the downloaded archives or their extracted files)")


def _walk(base: Path, depth: int = _DEPTH) -> tuple[dict[str, list[Path]], dict[str, list[Path]]]:
    """Files and folders under ``base`` by name (``depth`` levels), hidden entries skipped."""
    files: dict[str, list[Path]] = {}
    dirs: dict[str, list[Path]] = {}
    stack = [(base, 0)]
    while stack:
        d, level = stack.pop()
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name)
        except OSError:
            continue
        for e in entries:
            if e.name.startswith("."):
                continue
            if e.is_dir():
                dirs.setdefault(e.name, []).append(Path(e.path))
                if level + 1 < depth:
                    stack.append((Path(e.path), level + 1))
            elif e.name.endswith(".json"):
                files.setdefault(e.name, []).append(Path(e.path))
    return files, dirs


def _release_names(dataset: str, split: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The release's annotation file names and image folder names that make ``split`` (prepare's recipes)."""
    recipe = RECIPES[dataset]
    anns = tuple(s for t in recipe.annotations if t.split == split for s in t.sources)
    folders = tuple(t.folder for t in recipe.images if split in t.splits)
    return anns, folders


def _check_crowd_index(ann: Path) -> None:
    try:
        images = load_coco_json(ann)["images"]
    except PrepareError as e:  # unreadable, or not COCO format: named as a layout problem
        raise DataLayoutError(str(e)) from None
    lacking = [str(im.get("file_name", im.get("id"))) for im in images if "crowdIndex" not in im]
    if lacking:
        raise DataLayoutError(
            f"{ann}: {len(lacking)} of {len(images)} images lack 'crowdIndex' (first: "
            f"{', '.join(lacking[:_SHOW])}); CrowdPose's AP easy / medium / hard need it on every image: use the "
            f"CrowdPose release's crowdpose_*.json files, which carry it")


def check_layout(data_root: str | os.PathLike, dataset: str, splits: Iterable[str]) -> dict[str, bool]:
    """``{split: present}`` for ``<data_root>/<dataset>``; raises :class:`DataLayoutError` where the folder
    is laid out differently (see the module docstring). A missing ``<data_root>/<dataset>`` is absent data,
    not an error. Files that need ``crowdIndex`` (CrowdPose) are read and checked."""
    prof = get_profile(dataset)
    root = Path(data_root) / dataset
    splits = list(dict.fromkeys(splits))
    out = {s: False for s in splits}
    if not root.is_dir():
        return out
    problems: list[str] = []
    walked: tuple[dict[str, list[Path]], dict[str, list[Path]]] | None = None
    for split in splits:
        ann, img = prof.ann_file(root, split), prof.image_dir(root, split)
        if ann.is_file() and img.is_dir():
            if prof.has_crowd_index:
                _check_crowd_index(ann)
            out[split] = True
            continue
        if ann.is_file():
            problems.append(f"{dataset} {split}: {ann} is there but its image folder {img} is not "
                            f"(file_name in the annotation file is read relative to it)")
            continue
        if walked is None:
            walked = _walk(root)
        files, dirs = walked
        rel_anns, rel_dirs = _release_names(dataset, split)
        found = [p for n in rel_anns for p in files.get(n, [])]
        if found:
            problems.append(f"{dataset} {split}: expected the annotation file {ann}, found the release's "
                            f"{', '.join(str(p) for p in found[:_SHOW])} instead")
            continue
        stray = [p for n in rel_dirs for p in dirs.get(n, []) if p != img and n != "images"]
        if stray and not img.is_dir():
            problems.append(f"{dataset} {split}: expected the image folder {img} and the annotation file "
                            f"{ann}, found the image folder {stray[0]} instead")
    if not any(out.values()) and not problems:
        files, dirs = walked if walked is not None else _walk(root)
        jsons = [p for ps in files.values() for p in ps]
        if jsons:  # annotation files, none under an expected name
            expected = ", ".join(str(prof.ann_file(root, s)) for s in splits)
            problems.append(f"{dataset}: expected {expected} (and the image folders beside them), found "
                            f"{', '.join(str(p) for p in jsons[:_SHOW])} instead")
    if problems:
        raise DataLayoutError(f"{root} is not laid out as the kit reads it:\n  " + "\n  ".join(problems)
                              + f"\n  {_prepare_hint(dataset, root)}")
    return out

