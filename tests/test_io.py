"""Atomic writes: the target appears only complete; a failure keeps the old file and leaves no temp file."""
import json

import pytest

from boir_core.io import atomic_open, atomic_write_json, atomic_write_text


def test_write_and_replace(tmp_path):
    p = atomic_write_text(tmp_path / "a" / "x.txt", "one")
    assert p.read_text() == "one"
    atomic_write_json(p, {"k": [1, 2]})
    assert json.loads(p.read_text()) == {"k": [1, 2]}
    assert [f.name for f in p.parent.iterdir()] == ["x.txt"]


def test_failure_keeps_the_old_file_and_no_temp(tmp_path):
    p = atomic_write_text(tmp_path / "x.txt", "old")
    with pytest.raises(RuntimeError):
        with atomic_open(p) as f:
            f.write("half")
            raise RuntimeError("killed")
    assert p.read_text() == "old" and [f.name for f in tmp_path.iterdir()] == ["x.txt"]
    with pytest.raises(ValueError):  # NaN is not JSON
        atomic_write_json(p, {"v": float("nan")})
    assert p.read_text() == "old" and len(list(tmp_path.iterdir())) == 1
    with pytest.raises(ValueError, match="mode"):
        with atomic_open(p, "a"):
            pass


def test_files_get_the_usual_permissions(tmp_path):
    import os

    mask = os.umask(0o022)
    try:
        p = atomic_write_text(tmp_path / "x.txt", "data")
    finally:
        os.umask(mask)
    assert (p.stat().st_mode & 0o777) == 0o644

