"""A data set of one's own: ``data.dataset: custom``, described by its COCO-format file and the config's
``data.keypoints`` block (docs/custom_keypoints.md), with no code change for a new keypoint set.

:func:`profile_for` is the one way from a config to its :class:`~boir_core.data.profiles.DatasetProfile`: the
registry's profile for ``coco``, ``crowdpose``, ..., and for ``custom`` one built here by
:func:`custom_profile`:

* **names** (and so K) and **skeleton** from the annotation file's ``categories`` (COCO's ``keypoints`` list and
  its 1-based ``skeleton``), unless ``data.keypoints.names`` / ``skeleton`` give them (the skeleton as pairs
  of names);
* **flip pairs** from ``data.keypoints.flip_pairs`` (pairs of names; ``[]``: no pairs), else inferred from
  the names by :func:`infer_flip_pairs` (left/right words, l/r letters: the rules are in its docstring);
* **OKS sigmas** from ``data.keypoints.sigmas``, else :data:`DEFAULT_SIGMA` for every keypoint;
* the files: ``<root>/<data.keypoints.annotations>`` and ``<root>/<data.keypoints.images>`` with ``{split}``
  filled in;
* COCO's rules (a training image needs a person with a labelled keypoint, people under 32² input px² get no
  center, crowd regions and unlabelled people form the ignore mask) and COCO's evaluation protocol.

Every error is a :class:`~boir_core.data.errors.DataError` that names the file or the config key and what is
missing: no ``categories``, a count of names that disagrees with the annotations, flip pairs that do not pair
or name unknown keypoints.
"""
from __future__ import annotations

import functools
import math
import os
import re
from pathlib import Path
from typing import Any, Sequence

from ..config import CUSTOM, Config, KeypointsConfig
from .annotations import read_json_object
from .errors import DataError
from .profiles import COCO_SIGMAS, DatasetProfile, get_profile

__all__ = ["DEFAULT_SIGMA", "infer_flip_pairs", "flip_index_from_pairs", "read_keypoint_category",
           "custom_profile", "profile_for"]

#: The OKS sigma of every keypoint when ``data.keypoints.sigmas`` is not given: the mean of COCO's 17 sigmas
#: (about 0.0669), a middle-sized tolerance between COCO's face points (0.025) and hips (0.107).
DEFAULT_SIGMA: float = sum(COCO_SIGMAS) / len(COCO_SIGMAS)

_WORDS = {"left": "right", "right": "left", "Left": "Right", "Right": "Left", "LEFT": "RIGHT", "RIGHT": "LEFT"}
_LETTERS = {"l": "r", "r": "l", "L": "R", "R": "L"}
# a word: not inside a longer lower-case word ("cleft", "lefty" are not sides); "frontLeftPaw" is (camelCase)
_WORD_RE = re.compile(r"(?:(?<![A-Za-z])|(?<=[a-z])(?=[LR]))(left|right|Left|Right|LEFT|RIGHT)(?![a-z])")
# a letter: alone between separators or ends ("l_eye", "eye_r", "l eye"), or before a capital ("LEye", "RKnee")
_LETTER_RE = re.compile(r"(?<![A-Za-z])([lrLR])(?![a-z])")


def _swap(name: str, pattern: re.Pattern, table: dict[str, str]) -> str | None:
    """``name`` with every side token of ``pattern`` swapped, or None when it has none."""
    if not pattern.search(name):
        return None
    return pattern.sub(lambda m: table[m.group(1)], name)


def infer_flip_pairs(names: Sequence[str], source: str = "the keypoint names") -> list[tuple[int, int]]:
    """The left/right pairs among ``names`` (0-based index pairs, left member first in name order).

    Rules (case kept: ``Left`` ↔ ``Right``, ``LEFT`` ↔ ``RIGHT``):

    * **words** ``left`` / ``right`` as a whole word: ``left_eye`` ↔ ``right_eye``, ``eye_left``,
      ``front-left-paw``, ``leftEye``, ``frontLeftPaw``, ``Left Ear``; not inside a word (``cleft``,
      ``lefty``). A name with such a word **must** have its mirror among the names, else an error;
    * **letters** ``l`` / ``r`` as a whole token: ``l_eye`` ↔ ``r_eye``, ``eye_L``, ``l eye``, or ``L`` / ``R``
      before a capital: ``LEye`` ↔ ``REye``. A letter is paired only when the mirrored name exists (``LIP``
      is not a left ``IP`` when there is no ``RIP``): such a name is otherwise a center keypoint;
    * every other name is a center keypoint (it stays itself when the image is mirrored).

    Raises :class:`DataError` naming ``source`` for duplicate names and for a side word without its mirror.
    """
    names = list(names)
    index = {n: i for i, n in enumerate(names)}
    if len(index) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise DataError(f"{source}: keypoint names must be unique, {dup} appear more than once")
    partner = list(range(len(names)))
    for i, n in enumerate(names):
        word = _swap(n, _WORD_RE, _WORDS)
        letter = _swap(n, _LETTER_RE, _LETTERS)
        if word is not None and word != n:
            if word not in index:
                raise DataError(f"{source}: keypoint {n!r} names a side but {word!r} is not a keypoint, so the "
                                "flip pairs cannot be inferred; give them as data.keypoints.flip_pairs (pairs of "
                                "names, [] for none) or rename the keypoint")
            partner[i] = index[word]
        elif letter is not None and letter != n and letter in index:
            partner[i] = index[letter]
    for i, j in enumerate(partner):
        if partner[j] != i:  # cannot happen with the rules above; a guard for the flip index's contract
            raise DataError(f"{source}: inferred flip pairs do not pair: {names[i]!r} -> {names[j]!r} -> "
                            f"{names[partner[j]]!r}; give data.keypoints.flip_pairs")
    return [(i, j) for i, j in enumerate(partner) if i < j]


def flip_index_from_pairs(k: int, pairs: Sequence[tuple[int, int]]) -> tuple[int, ...]:
    """The flip index of ``k`` keypoints with the 0-based ``pairs`` swapped (the others stay)."""
    idx = list(range(k))
    for a, b in pairs:
        idx[a], idx[b] = b, a
    return tuple(idx)


def _pairs_by_name(names: Sequence[str], pairs: Sequence[Sequence[Any]], key: str, *,
                   disjoint: bool) -> list[tuple[int, int]]:
    """Pairs of names from the config (``key``) as 0-based index pairs; ``disjoint``: each name in one pair at
    most (flip pairs). Errors name the key, the pair and the known names."""
    index = {n: i for i, n in enumerate(names)}
    used: dict[str, int] = {}
    out = []
    for p, pair in enumerate(pairs):
        if len(pair) != 2:
            raise DataError(f"{key}[{p}] = {list(pair)} is not a pair: each entry is [name, name]")
        unknown = [n for n in pair if n not in index]
        if unknown:
            raise DataError(f"{key}[{p}] = {list(pair)} names unknown keypoint(s) {unknown}; the keypoints are "
                            f"{list(names)}")
        a, b = pair
        if a == b:
            raise DataError(f"{key}[{p}] = {list(pair)} pairs a keypoint with itself (a center keypoint needs no "
                            "pair: leave it out)")
        if disjoint:
            for n in (a, b):
                if n in used:
                    raise DataError(f"{key}[{p}] = {list(pair)}: {n!r} is already paired in {key}[{used[n]}] = "
                                    f"{list(pairs[used[n]])}; flip pairs do not pair when a keypoint has two mirrors")
                used[n] = p
        out.append((index[a], index[b]))
    return out


@functools.lru_cache(maxsize=8)
def _read_category(path: str, mtime_ns: int, size: int) -> dict[str, Any]:
    d = read_json_object(path, ("images", "annotations", "categories"))
    hint = ("the keypoint names of data.dataset=custom come from the file's categories (COCO format: "
            "{\"categories\": [{\"id\": 1, \"name\": ..., \"keypoints\": [names], \"skeleton\": [[1, 2], ...]}]}); "
            "add them, or give data.keypoints.names")
    cats = d.get("categories")
    if not isinstance(cats, list) or not cats:
        raise DataError(f"{path}: no 'categories' list ({hint})")
    with_kp = [c for c in cats if isinstance(c, dict) and "keypoints" in c]
    if not with_kp:
        raise DataError(f"{path}: no category has a 'keypoints' list ({hint})")
    first = with_kp[0]
    names = first["keypoints"]
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
        raise DataError(f"{path}: category {first.get('id')}: 'keypoints' must be a non-empty list of names, "
                        f"got {names!r}")
    for c in with_kp[1:]:
        if c["keypoints"] != names:
            raise DataError(f"{path}: categories {first.get('id')} and {c.get('id')} have different keypoint lists; "
                            "the kit trains one keypoint set: keep one category's")
    k = len(names)
    skeleton = []
    for e, edge in enumerate(first.get("skeleton") or []):
        if (not isinstance(edge, list) or len(edge) != 2 or not all(isinstance(v, int) and 1 <= v <= k for v in edge)):
            raise DataError(f"{path}: category {first.get('id')}: skeleton[{e}] = {edge!r} is not a pair of 1-based "
                            f"keypoint numbers in 1..{k} (COCO's skeleton counts from 1)")
        skeleton.append((edge[0] - 1, edge[1] - 1))
    sample = None
    for a in d.get("annotations") or []:
        if isinstance(a, dict) and isinstance(a.get("keypoints"), list):
            sample = (a.get("id"), len(a["keypoints"]))
            break
    return {"names": tuple(names), "skeleton": tuple(skeleton), "sample": sample}


def read_keypoint_category(path: str | os.PathLike) -> dict[str, Any]:
    """The keypoint set of a COCO-format file: ``names`` (its category's ``keypoints``), ``skeleton`` (0-based
    index pairs) and ``sample`` ((annotation id, length of its keypoint list) of the first annotation with
    keypoints, or None). Read once per file version (cached on path, modification time and size)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: annotation file not found")
    st = p.stat()
    return _read_category(str(p), st.st_mtime_ns, st.st_size)


def custom_profile(spec: KeypointsConfig, root: str | os.PathLike, splits: Sequence[str] = ("train", "val")
                   ) -> DatasetProfile:
    """The profile of a custom data set: ``spec`` (``data.keypoints``) completed from the first annotation file
    of ``splits`` that exists under ``root`` (module docstring)."""
    ann_pattern, image_pattern = spec.annotations, spec.images
    for key, pat in (("data.keypoints.annotations", ann_pattern), ("data.keypoints.images", image_pattern)):
        try:
            pat.format(split="x")
        except (KeyError, IndexError, ValueError) as e:
            raise DataError(f"{key}={pat!r}: only {{split}} may be filled in ({e!r})") from None
    files = [Path(root) / ann_pattern.format(split=s) for s in dict.fromkeys(splits)]
    found = next((f for f in files if f.is_file()), None)
    cat = read_keypoint_category(found) if found is not None else None
    if spec.names is not None:
        names = tuple(spec.names)
        if not names:
            raise DataError("data.keypoints.names is empty: give the keypoint names, or leave it out to read them "
                            "from the annotation file's categories")
        if cat is not None and len(cat["names"]) != len(names):
            raise DataError(f"data.keypoints.names has {len(names)} names but {found} lists {len(cat['names'])} "
                            f"keypoints in its categories ({list(cat['names'])})")
        source = "data.keypoints.names"
    elif cat is not None:
        names, source = cat["names"], f"{found} (categories)"
    else:
        raise DataError(f"data.dataset=custom: no annotation file to read the keypoints from (looked for "
                        f"{', '.join(str(f) for f in files)}; data.root={root}, data.keypoints.annotations="
                        f"{ann_pattern!r}); give data.keypoints.names or fix the paths")
    k = len(names)
    if cat is not None and cat["sample"] is not None and cat["sample"][1] != 3 * k:
        ann_id, n = cat["sample"]
        raise DataError(f"{found}: annotation id {ann_id} has {n} keypoint numbers, expected 3 x {k} = {3 * k} for "
                        f"the {k} keypoints of {source}")
    if spec.flip_pairs is not None:
        pairs = _pairs_by_name(names, spec.flip_pairs, "data.keypoints.flip_pairs", disjoint=True)
    else:
        pairs = infer_flip_pairs(names, source)
    if spec.skeleton is not None:
        skeleton = tuple(_pairs_by_name(names, spec.skeleton, "data.keypoints.skeleton", disjoint=False))
    else:
        skeleton = cat["skeleton"] if cat is not None else ()
    if spec.sigmas is not None:
        sigmas = tuple(float(s) for s in spec.sigmas)
        if len(sigmas) != k:
            raise DataError(f"data.keypoints.sigmas has {len(sigmas)} values for the {k} keypoints of {source}")
        bad = [s for s in sigmas if not (math.isfinite(s) and s > 0)]
        if bad:
            raise DataError(f"data.keypoints.sigmas must be positive numbers, got {bad}")
    else:
        sigmas = (DEFAULT_SIGMA,) * k
    return DatasetProfile(
        name=CUSTOM, keypoints=names, skeleton=skeleton, flip_index=flip_index_from_pairs(k, pairs), sigmas=sigmas,
        ann_pattern=ann_pattern, image_pattern=image_pattern, train_filter="coco", small_person_no_center=True,
        crowd_ignore_mask=True, has_crowd_index=False, title="custom")


def profile_for(cfg: Config) -> DatasetProfile:
    """The data-set profile of ``cfg``: the registry's for a named data set, built by :func:`custom_profile`
    from ``data.keypoints`` and the annotation files (train split first) for ``data.dataset=custom``."""
    d = cfg.data
    if d.dataset != CUSTOM:
        return get_profile(d.dataset)
    return custom_profile(d.keypoints, d.root, (d.train_split, d.test_split))
