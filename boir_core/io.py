"""Atomic file writes: nothing the kit writes is ever left half-written.

Every file goes to a temporary name in the destination folder and is renamed onto the target with
``os.replace`` only once it is complete; an error (or a kill) leaves the previous file, if any, untouched
and removes the temporary file where it can.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Iterator

__all__ = ["atomic_open", "atomic_write_text", "atomic_write_json", "check_writable_folder", "read_jsonl"]


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` for writing; on success it replaces ``path``."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes whole files: mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:  # named by the file asked for, not by its temporary name
        raise _named(e, path) from None
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.errno is not None and e.filename in (None, tmp):
            raise _named(e, path) from None  # a full disk (write, fsync) names the file being written
        raise


def _named(e: OSError, path: Path) -> OSError:
    """``e`` (same errno, hence the same subclass: PermissionError, ...) naming ``path``."""
    return OSError(e.errno, e.strerror, str(path))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_open(path, "w") as f:
        f.write(text)
    return Path(path)


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int | None = None) -> Path:
    """Write ``obj`` as JSON (NaN/Inf refused) followed by a newline."""
    with atomic_open(path, "w") as f:
        json.dump(obj, f, indent=indent, allow_nan=False)
        f.write("\n")
    return Path(path)


def check_writable_folder(folder: str | os.PathLike) -> Path:
    """Make sure files can be written into ``folder`` before any work is done: create it (and its parents)
    and write, sync and remove a small probe file. An ``OSError`` naming ``folder`` otherwise (no
    permission, a read-only or full file system, a file in the way)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".boir-write-test.", suffix=".tmp")
    except FileExistsError as e:
        raise NotADirectoryError(errno.ENOTDIR, "exists and is not a folder", e.filename or str(folder)) from None
    except OSError as e:
        raise _named(e, folder) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(b"boir")
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        raise _named(e, folder) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(probe)
    return folder


def read_jsonl(path: str | os.PathLike, what: str = "a record") -> list[dict[str, Any]]:
    """The JSON objects of a JSON-lines file, one a line, in order; blank lines are skipped. A line that is not
    JSON, or not an object, is a ``ValueError`` naming the file and the line (``what`` names the line's kind)."""
    path = Path(path)
    records = []
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}, line {n}: not valid JSON ({e.msg})") from None
        if not isinstance(rec, dict):
            raise ValueError(f"{path}, line {n}: {what} must be a JSON object, got {type(rec).__name__}")
        records.append(rec)
    return records
