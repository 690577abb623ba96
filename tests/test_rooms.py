"""The package's rooms (CONTRIBUTING.md): data flows one way, lower rooms never import higher ones
(config, ops, io → data → model → losses → engine → paper, viz), and a function-local import says why it is
local (an optional or slow dependency, or a genuine import circle) in a comment.

Read from the source with ``ast``, so imports inside functions count too.
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "boir_core"

#: rank of each room; an import may go to the same or a lower rank only
RANK = {"__init__": 0, "config": 0, "ops": 0, "io": 0, "studies": 0, "data": 1, "deploy": 1, "model": 2, "losses": 3,
        "engine": 4, "paths": 4, "paper": 5, "viz": 5, "course": 5, "book": 5, "__main__": 6}

#: what is not done yet, named exactly (the test fails when an entry is no longer needed)
KNOWN_UPWARD: set[tuple[str, str]] = set()
UNEXPLAINED_LOCAL_OK = {"__main__.py"}  # __main__: its lazy subcommands, said at its top


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def _room(parts: tuple[str, ...]) -> str:
    """Room of a module given as its path parts below boir_core (``("engine", "train")``)."""
    return parts[0] if parts else "__init__"


def _file_parts(path: Path) -> tuple[str, ...]:
    rel = path.relative_to(PACKAGE).with_suffix("")
    return tuple(p for p in rel.parts if p != "__init__")


def _targets(node: ast.AST, here: tuple[str, ...], is_package: bool) -> list[tuple[str, ...]]:
    """The boir_core modules an import statement reaches, as path parts below boir_core."""
    out = []
    if isinstance(node, ast.Import):
        for alias in node.names:
            parts = alias.name.split(".")
            if parts[0] == "boir_core":
                out.append(tuple(parts[1:]))
    elif isinstance(node, ast.ImportFrom):
        if node.level == 0:
            parts = (node.module or "").split(".")
            if parts[0] != "boir_core":
                return []
            base = tuple(parts[1:])
        else:
            package = here if is_package else here[:-1]
            base = package[: len(package) - (node.level - 1)] + tuple((node.module or "").split(".") if node.module
                                                                        else ())
        if node.module is None or not base:  # from . import x / from .. import losses: x names a module
            out += [base + (alias.name,) for alias in node.names]
        else:
            out.append(base)
    return out


def _imports(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    local = {id(sub) for fn in ast.walk(tree) if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
             for sub in ast.walk(fn) if isinstance(sub, (ast.Import, ast.ImportFrom))}
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, id(node) in local


def test_resolving_imports_works_on_known_cases():
    here = ("engine", "train")
    parse = lambda src: ast.parse(src).body[0]  # noqa: E731
    assert _targets(parse("from .. import losses as loss_fns"), here, False) == [("losses",)]
    assert _targets(parse("from ..data.profiles import X"), here, False) == [("data", "profiles")]
    assert _targets(parse("from . import backends"), here, False) == [("engine", "backends")]
    assert _targets(parse("from .runner import x"), here, False) == [("engine", "runner")]
    assert _targets(parse("from .config import x"), (), True) == [("config",)]
    assert _targets(parse("import boir_core.viz.draw as d"), here, False) == [("viz", "draw")]
    assert _targets(parse("import numpy as np"), here, False) == []


def test_lower_rooms_never_import_higher_ones():
    upward, seen_known = [], set()
    for path in _modules():
        here = _file_parts(path)
        rel = str(path.relative_to(PACKAGE))
        me = _room(here)
        assert me in RANK, f"{rel}: room {me!r} has no rank in this test"
        for node, _ in _imports(path):
            for target in _targets(node, here, path.name == "__init__.py"):
                other = _room(target)
                if other in RANK and RANK[other] > RANK[me]:
                    if (rel, other) in KNOWN_UPWARD:
                        seen_known.add((rel, other))
                    else:
                        upward.append(f"{rel}:{node.lineno}: {me} imports {'.'.join(target)}")
    assert not upward, "imports against the data flow:\n" + "\n".join(upward)
    assert seen_known == KNOWN_UPWARD, f"no longer needed, remove from KNOWN_UPWARD: {KNOWN_UPWARD - seen_known}"


def test_every_function_local_import_says_why():
    unexplained = []
    for path in _modules():
        rel = str(path.relative_to(PACKAGE))
        if rel in UNEXPLAINED_LOCAL_OK:
            continue
        lines = path.read_text(encoding="utf-8").splitlines()
        for node, local in _imports(path):
            if not local:
                continue
            i = node.lineno - 1
            explained = "#" in lines[i]
            while not explained and i > 0:  # a comment on the import block right above explains it too
                i -= 1
                text = lines[i].strip()
                if text.startswith("#") or "#" in text and text.startswith(("import ", "from ")):
                    explained = True
                elif not text.startswith(("import ", "from ")):
                    break
            if not explained:
                unexplained.append(f"{rel}:{node.lineno}: {ast.unparse(node)}")
    assert not unexplained, ("function-local imports without a comment saying why (optional or slow "
                             "dependency, or an import circle):\n" + "\n".join(unexplained))
