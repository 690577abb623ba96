"""Where things are: the kit's root folder, paths resolved against it, and the default weights.

Three kinds of files, found three ways:

* **package data** (the configs in ``boir_core/configs/``, the demo weights in ``boir_core/weights/``) ships
  inside the package, so a ``pip install``-ed wheel has it: found from the package's own location
  (:func:`boir_core.config.configs_dir`, :mod:`boir_core.model.demo_weights`), from any working folder;
* **the checkout** (``notebooks/``, ``data_scripts/``, the Makefile) exists only in a clone of the kit:
  :func:`repo_root` finds it, and :func:`checkout_root` says clearly, naming what needed it, when there is
  none (executing the notebooks, ``boir demo``, ``boir reproduce`` from an installed wheel);
* **user outputs and data**: the command line reads and writes relative paths (``runs/...``,
  ``data/synthcrowd``) from the working folder, never inside the installed package; ``make`` runs from the
  checkout's root, so there they land in ``<root>/runs`` and ``<root>/data``.

A notebook's kernel starts in ``notebooks/`` under JupyterLab and in the repository root under papermill or
the Makefile; the CLI runs wherever its user is. Notebooks therefore never use a bare relative path: every
default (``data/synthcrowd``, ``runs/...``) goes through :func:`resolve`, which reads a relative path as
relative to the kit's root (:func:`repo_root`), whatever the working folder. A path the user named and that
does not exist is an error naming it (:func:`existing`), never a silent fallback.

:func:`default_checkpoint` is the one place that decides which trained weights a notebook uses when the user
names none.
"""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Optional, Union

__all__ = ["repo_root", "checkout_root", "resolve", "existing", "default_checkpoint", "real_fixtures_dir",
           "package_dir", "inside_package", "DEMO_WEIGHTS", "PathNotFound", "NeedsCheckout"]

PathLike = Union[str, os.PathLike]
MARKER = "pyproject.toml"  # with configs/ beside it: the kit's root
ROOT_ENV = "BOIR_KIT_ROOT"
DEMO_WEIGHTS = "runs/demo/train/final.pt"  # what `make demo` trains (relative to the root)


class PathNotFound(FileNotFoundError):
    """A path the user named does not exist; the message names it (as given and as resolved)."""


class NeedsCheckout(PathNotFound):
    """What was asked for needs a checkout of the kit (its notebooks, its Makefile), and there is none: the
    package is installed (``pip install``) and the working folder is not inside a clone."""


def _is_root(d: Path) -> bool:
    return (d / MARKER).is_file() and (d / "configs").is_dir()


@lru_cache(maxsize=None)
def _find_root(env: Optional[str], cwd: str) -> Path:
    if env:
        d = Path(env).expanduser().resolve()
        if not _is_root(d):
            raise PathNotFound(f"{ROOT_ENV}={env} is not a BoIR Kit folder (no {MARKER} and configs/ in {d})")
        return d
    here = Path(__file__).resolve().parent.parent  # the checkout holding this package (editable install)
    if _is_root(here):
        return here
    for d in (Path(cwd), *Path(cwd).parents):  # an installed package: the checkout we are working in
        if _is_root(d) and (d / "boir_core").is_dir():
            return d
    raise PathNotFound(f"cannot find the BoIR Kit folder: boir_core is installed at {here} without {MARKER} and "
                       f"configs/ beside it, and neither {cwd} nor a folder above it is a checkout; set {ROOT_ENV}")


def package_dir() -> Path:
    """The folder of the ``boir_core`` package itself (inside site-packages for an installed wheel)."""
    return Path(__file__).resolve().parent


def inside_package(path: PathLike) -> bool:
    """Is ``path`` inside the ``boir_core`` package folder (where no output may be written)?"""
    return Path(path).resolve().is_relative_to(package_dir())


def checkout_root(purpose: str, hint: str = "") -> Path:
    """:func:`repo_root` for something that needs the checkout itself (``purpose``, e.g. "executing the
    notebooks"); without one, :class:`NeedsCheckout` naming ``purpose``, where the package is installed, the
    working folder, and what to do (``hint`` adds to it)."""
    try:
        return repo_root()
    except PathNotFound:
        here = package_dir()
        raise NeedsCheckout(
            f"{purpose} needs a checkout of BoIR Kit (a git clone: notebooks/ and the Makefile are not part of the "
            f"installed package). boir_core is installed at {here}, and neither {os.getcwd()} nor a folder above "
            f"it is a checkout: run it inside a clone of the kit, or set {ROOT_ENV}=<the clone>."
            + (f" {hint}" if hint else "")) from None


def repo_root() -> Path:
    """The kit's root folder (absolute): ``$BOIR_KIT_ROOT`` if set, else the checkout that holds this package
    (found from the package's location and the marker ``pyproject.toml`` + ``configs/``), else the checkout
    containing the working folder."""
    return _find_root(os.environ.get(ROOT_ENV) or None, os.getcwd())


def resolve(path: Optional[PathLike]) -> Optional[Path]:
    """``path`` as an absolute path: ``~`` expanded, a relative path read against :func:`repo_root` (not the
    working folder). ``None`` and ``""`` stay ``None`` (unset)."""
    if path is None or str(path) == "":
        return None
    p = Path(path).expanduser()
    return (p if p.is_absolute() else repo_root() / p).resolve()


def existing(path: PathLike, what: str = "path") -> Path:
    """:func:`resolve` ``path`` and require it to exist; otherwise :class:`PathNotFound` naming ``what``, the
    path as given and where it was looked for."""
    p = resolve(path)
    if p is None:
        raise PathNotFound(f"{what}: no path given")
    if not p.exists():
        given = str(path)
        where = "" if given == str(p) else f" (looked for {p}; relative paths are read from the kit's root)"
        raise PathNotFound(f"{what} not found: {given}{where}")
    return p


def default_checkpoint(arch: str = "boir") -> Optional[Path]:
    """The trained weights a notebook uses when the user names none, or ``None`` when there are none.

    The one place that chooses them: the demo weights shipped inside the package
    (``boir_core/weights/demo_{arch}.pt``, SHA-256 checked by
    :func:`boir_core.model.demo_weights.shipped_checkpoint`; a corrupted file is an error, not a fallback).
    Only when the package ships none (a trimmed install) does ``arch="boir"`` fall back to
    ``runs/demo/train/final.pt`` (what ``make demo`` trains). Callers that get ``None`` fall back to a
    briefly trained tiny model and say so, naming ``make demo``.
    """
    if arch not in ("boir", "cid"):
        raise ValueError(f"arch must be 'boir' or 'cid', got {arch!r}")
    # model sits above this module in the package's order: import it only when weights are asked for
    from .model.demo_weights import MANIFEST_NAME, WEIGHTS_DIR, shipped_checkpoint

    if (Path(WEIGHTS_DIR) / MANIFEST_NAME).is_file():
        return shipped_checkpoint(arch)
    if arch == "boir":
        try:
            p = resolve(DEMO_WEIGHTS)
        except PathNotFound:  # an installed package without weights and without a checkout: make demo trains none
            return None
        if p is not None and p.is_file():
            return p
    return None


def real_fixtures_dir() -> Optional[Path]:
    """The real COCO / CrowdPose / OCHuman fixture images: ``$BOIR_REAL_FIXTURES``, else
    ``<root>/../shared/fixtures/real``; ``None`` when absent."""
    env = os.environ.get("BOIR_REAL_FIXTURES")
    d = resolve(env) if env else (repo_root().parent / "shared" / "fixtures" / "real").resolve()
    return d if d is not None and (d / "coco").is_dir() else None
