"""One training at a time per run folder: ``<run_dir>/train.lock``.

:func:`~boir_core.engine.training.train.train` holds the lock while it writes into a run folder (under DDP only rank 0
holds it), so a second training aimed at the same folder stops at once with :class:`RunLockedError`, naming the
process that holds it (pid, host, since when) and the lock file, instead of interleaving two runs in
``metrics.jsonl`` and overwriting the first run's ``config.yaml`` and ``final.pt``.

The lock is an exclusive ``flock`` on the lock file, which also records who holds it (JSON: pid, host, start
time, command). The operating system drops a ``flock`` when its process ends, however it ends (``kill -9``,
a crash), so a lock file left behind is recognised as stale and taken over, with a message. Where ``flock``
is not available (no ``fcntl``, or a file system that refuses it) the file itself is the lock (created with
``O_CREAT | O_EXCL``), and a lock file whose process no longer runs on this host is stale. The lock is released
(the file removed) when the training returns, fails or is interrupted.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

try:  # POSIX only; elsewhere the lock file itself is the lock (see the module docstring)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

__all__ = ["RunLock", "RunLockedError", "LOCK_NAME"]

#: The lock file's name inside the run folder.
LOCK_NAME = "train.lock"

_UNSUPPORTED = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}

#: Lock file descriptors this process holds. A forked child (a DataLoader worker) closes its copies: a flock
#: belongs to the open file, shared across fork, and a worker outliving a killed training must not keep it.
_HELD: set[int] = set()


def _close_held_in_child() -> None:
    for fd in list(_HELD):
        with contextlib.suppress(OSError):
            os.close(fd)
    _HELD.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_held_in_child)


class RunLockedError(RuntimeError):
    """Another process trains into this run folder."""


def _describe(info: dict[str, Any] | None) -> str:
    if not info:
        return "another process (its details are not written yet)"
    return (f"pid {info.get('pid', '?')} on {info.get('host', '?')}, running since {info.get('since', '?')}"
            + (f" ({info['command']})" if info.get("command") else ""))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    except OSError:
        return True
    return True


class RunLock:
    """The lock of one run folder; ``with RunLock(run_dir):`` or :meth:`acquire` / :meth:`release`.

    ``log`` receives the one message of a stale-lock takeover (default: print).
    """

    def __init__(self, run_dir: str | os.PathLike, log=None):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self.log = log or (lambda msg: print(msg, flush=True))
        self._fd: int | None = None
        self._exclusive_file = False  # fallback mode: the file itself is the lock
        self._made_dir = False

    # ---- who holds it
    def _info(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "host": socket.gethostname(),
                "since": time.strftime("%Y-%m-%d %H:%M:%S %z"), "command": " ".join(sys.argv)}

    def read(self) -> dict[str, Any] | None:
        """What the lock file says (None when absent, empty or unreadable)."""
        try:
            text = self.path.read_text()
            info = json.loads(text) if text.strip() else None
        except (OSError, ValueError):
            return None
        return info if isinstance(info, dict) else None

    def _locked_error(self, info: dict[str, Any] | None) -> RunLockedError:
        return RunLockedError(
            f"run folder {self.run_dir} is in use: another training writes into it ({_describe(info)}; lock file "
            f"{self.path}). Wait for it to finish or stop it, or train into another run folder (--run-dir). If "
            f"that process is not running any more, delete {self.path}.")

    def _stale_message(self, info: dict[str, Any] | None) -> None:
        if info is None:
            return
        gone = (" is no longer running" if info.get("host") == socket.gethostname()
                and isinstance(info.get("pid"), int) and not _pid_alive(info["pid"])
                else " no longer holds it")
        self.log(f"[train] taking over the stale lock {self.path}: its process ({_describe(info)}){gone} "
                 "(it ended without releasing it, e.g. killed)")

    # ---- acquire / release
    def acquire(self) -> RunLock:
        if self._fd is not None or self._exclusive_file:
            raise RuntimeError(f"{self.path} is already held by this RunLock")
        self._made_dir = not self.run_dir.exists()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if fcntl is not None:
            try:
                self._acquire_flock()
                return self
            except OSError as e:
                if e.errno not in _UNSUPPORTED:
                    raise
        self._acquire_exclusive_file()
        return self

    def _acquire_flock(self) -> None:
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                os.close(fd)
                if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise self._locked_error(self.read()) from None
                raise
            # the file we locked must still be the one at the path (a holder may have removed it meanwhile)
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        self._fd = fd
        _HELD.add(fd)
        self._stale_message(self.read())  # a record nobody holds: its process ended without releasing it
        data = (json.dumps(self._info()) + "\n").encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
        os.fsync(fd)

    def _acquire_exclusive_file(self) -> None:
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                info = self.read()
                stale = (info is not None and info.get("host") == socket.gethostname()
                         and isinstance(info.get("pid"), int) and not _pid_alive(info["pid"]))
                if not stale:
                    raise self._locked_error(info) from None
                self._stale_message(info)
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.path)
                continue
            with os.fdopen(fd, "w") as f:
                f.write(json.dumps(self._info()) + "\n")
            self._exclusive_file = True
            return
        raise self._locked_error(self.read())

    def release(self) -> None:
        """Remove the lock file and drop the lock (safe to call twice)."""
        if self._fd is not None:
            try:
                if os.stat(self.path).st_ino == os.fstat(self._fd).st_ino:
                    os.unlink(self.path)
            except FileNotFoundError:
                pass
            finally:
                _HELD.discard(self._fd)
                os.close(self._fd)
                self._fd = None
        elif self._exclusive_file:
            info = self.read()
            if info is not None and info.get("pid") == os.getpid():
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.path)
            self._exclusive_file = False
        else:
            return
        if self._made_dir:  # a run that failed before writing anything leaves no empty folder behind
            with contextlib.suppress(OSError):
                self.run_dir.rmdir()
            self._made_dir = False

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
