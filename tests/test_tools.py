"""tools/hand_mutations.py cannot go stale silently: every mutation still finds the exact source text it
replaces (once, in the file it names), and the tests it runs against the bug still exist.

Fast: reads the sources only, runs no mutation (``python tools/hand_mutations.py --core --copy`` does that).
"""
from __future__ import annotations

import ast
import importlib.util
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _hand_mutations():
    spec = importlib.util.spec_from_file_location("hand_mutations", ROOT / "tools" / "hand_mutations.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up while the class is built
    try:
        spec.loader.exec_module(mod)
    finally:
        del sys.modules[spec.name]
    return mod


HM = _hand_mutations()


def _test_files_and_keywords(tests: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """The test files (path part of each node id) and the words of a ``-k`` expression."""
    files, words, args = [], [], list(tests)
    while args:
        a = args.pop(0)
        if a == "-k":
            expr = args.pop(0)
            words += [w for w in re.findall(r"\w+", expr) if w not in ("and", "or", "not")]
        elif not a.startswith("-"):
            files.append(a.split("::")[0])
    return files, words


def _test_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
            and n.name.startswith("test")}


def test_the_six_core_mutations_are_marked():
    assert [m.name for m in HM.MUTATIONS if m.core] == ["quarter_sign", "flip_perm", "dummy_box", "corner_clip",
                                                        "clip_inf", "kernel3"]
    assert len(HM.BY_NAME) == len(HM.MUTATIONS), "two mutations share a name"


@pytest.mark.parametrize("m", HM.MUTATIONS, ids=lambda m: m.name)
def test_mutation_finds_its_text_exactly_once(m):
    path = ROOT / m.path
    assert path.is_file(), f"{m.name}: {m.path} does not exist (update MUTATIONS in tools/hand_mutations.py)"
    found = path.read_text().count(m.old)
    assert found == 1, (f"{m.name}: the text to mutate occurs {found} times in {m.path} (expected once): {m.old!r}; "
                        "find where that behaviour lives now and update MUTATIONS in tools/hand_mutations.py")
    assert m.new != m.old


@pytest.mark.parametrize("m", HM.MUTATIONS, ids=lambda m: m.name)
def test_mutation_tests_exist(m):
    files, words = _test_files_and_keywords(m.tests)
    assert files, f"{m.name}: no test file to run"
    names: set[str] = set()
    for f in files:
        assert (ROOT / f).is_file(), f"{m.name}: test file {f} does not exist"
        names |= _test_names(ROOT / f)
    for w in words:  # each word of -k still selects at least one test of those files
        assert any(w.lower() in n.lower() for n in names), f"{m.name}: -k {w!r} matches no test in {files}"
