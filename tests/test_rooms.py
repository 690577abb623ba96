"""The package's rooms (CONTRIBUTING.md, docs/architecture.md#the-rooms): data flows one way, lower rooms never
import higher ones (config, ops, io → data → model → losses → engine → paper, viz); inside ``engine`` training and
inference never import each other, evaluation builds on inference and the jobs on all three; inside ``data`` the
pipeline never imports the sources; there is no import circle, not even one closed by an import inside a function;
and a function-local import says why it is local (an optional or slow dependency) in a comment.

Read from the source with ``ast``, so imports inside functions count too.
"""
from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "boir_core"

#: rank of each room; an import may go to the same or a lower rank only
RANK = {"__init__": 0, "config": 0, "ops": 0, "io": 0, "studies": 0, "data": 1, "deploy": 1, "model": 2, "losses": 3,
        "engine": 4, "paths": 4, "paper": 5, "viz": 5, "course": 5, "book": 5, "__main__": 6}

#: what is not done yet, named exactly (the test fails when an entry is no longer needed)
KNOWN_UPWARD: set[tuple[str, str]] = set()
UNEXPLAINED_LOCAL_OK = {"__main__.py"}  # __main__: its lazy subcommands, said at its top

#: rooms inside a room: for each, the inner rooms it may import besides its own (a package's ``__init__``, which
#: holds only its docstring, may be imported from anywhere), and the inner room of a module not named (None: every
#: module must sit in a named one)
INNER_ROOMS: dict[str, tuple[dict[str, set[str]], str | None]] = {
    "engine": ({"distributed": set(),
                "training": {"distributed"},
                "inference": {"distributed"},
                "evaluation": {"distributed", "inference"},
                "jobs": {"distributed", "training", "inference", "evaluation"}}, None),
    "data": ({"pipeline": set(), "sources": {"pipeline"}}, "pipeline"),
}


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def _room(parts: tuple[str, ...]) -> str:
    """Room of a module given as its path parts below boir_core (``("engine", "train")``)."""
    return parts[0] if parts else "__init__"


def _file_parts(path: Path) -> tuple[str, ...]:
    rel = path.relative_to(PACKAGE).with_suffix("")
    return tuple(p for p in rel.parts if p != "__init__")


def _is_module(parts: tuple[str, ...]) -> bool:
    where = PACKAGE.joinpath(*parts)
    return bool(parts) and (where.with_suffix(".py").is_file() or (where / "__init__.py").is_file())


def _targets(node: ast.AST, here: tuple[str, ...], is_package: bool) -> list[tuple[str, ...]]:
    """The boir_core modules an import statement reaches, as path parts below boir_core (``from pkg import mod``
    reaches ``pkg.mod`` when that is a module of the package)."""
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
            out += sorted({base + (a.name,) if _is_module(base + (a.name,)) else base for a in node.names})
    return out


def _imports(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    local = {id(sub) for fn in ast.walk(tree) if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
             for sub in ast.walk(fn) if isinstance(sub, (ast.Import, ast.ImportFrom))}
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, id(node) in local


def _inner_room(parts: tuple[str, ...]) -> str | None:
    """The inner room of a module (``("engine", "training", "job")`` → ``"training"``); None outside the rooms
    that have inner ones. The room's package itself sits in the default inner room (``data/__init__.py``
    re-exports the pipeline), or is ``"__init__"`` where there is none."""
    if not parts or parts[0] not in INNER_ROOMS:
        return None
    names, default = INNER_ROOMS[parts[0]]
    if len(parts) == 1:
        return default or "__init__"
    return parts[1] if parts[1] in names else default


def _inner_violation(here: tuple[str, ...], target: tuple[str, ...]) -> str | None:
    """Why the import of ``target`` from ``here`` breaks the order inside a room (None: it does not)."""
    if not here or not target or here[0] != target[0] or here[0] not in INNER_ROOMS:
        return None
    names, _ = INNER_ROOMS[here[0]]
    mine, theirs = _inner_room(here), _inner_room(target)
    if mine is None:
        return f"{'.'.join(here)} sits in no inner room of {here[0]} (one of {sorted(names)})"
    if theirs is None:
        return f"{'.'.join(target)} sits in no inner room of {here[0]} (one of {sorted(names)})"
    if mine == "__init__" and len(target) > 1:
        return f"{here[0]}/__init__.py imports {'.'.join(target)}: the room's package holds only its docstring"
    if theirs in ("__init__", mine) or mine == "__init__" or theirs in names[mine]:
        return None
    return f"{here[0]}.{mine} imports {'.'.join(target)} ({here[0]}.{theirs})"


def test_resolving_imports_works_on_known_cases():
    here = ("engine", "training", "train")
    parse = lambda src: ast.parse(src).body[0]  # noqa: E731
    assert _targets(parse("from ... import losses as loss_fns"), here, False) == [("losses",)]
    assert _targets(parse("from ...data.profiles import X"), here, False) == [("data", "profiles")]
    assert _targets(parse("from . import job"), here, False) == [("engine", "training", "job")]
    assert _targets(parse("from ..inference.predictor import x"), here, False) == [("engine", "inference", "predictor")]
    assert _targets(parse("from ..training import train as t"), ("engine", "jobs", "demo"), False) == [
        ("engine", "training", "train")]  # a module named in the import list is what is reached
    assert _targets(parse("from ...data import KeypointDataset"), here, False) == [("data",)]
    assert _targets(parse("from .config import x"), (), True) == [("config",)]
    assert _targets(parse("import boir_core.viz.draw as d"), here, False) == [("viz", "draw")]
    assert _targets(parse("import numpy as np"), here, False) == []


def test_the_inner_order_is_judged_on_known_cases():
    ok = [(("engine", "jobs", "demo"), ("engine", "training", "train")),
          (("engine", "evaluation", "runner"), ("engine", "inference", "predictor")),
          (("engine", "inference", "predictor"), ("engine", "distributed")),
          (("engine", "training", "job"), ("engine", "training", "budget")),
          (("data", "sources", "synthetic"), ("data", "profiles")),
          (("data", "dataset"), ("data", "transforms")),
          (("data",), ("data", "dataset")),
          (("data", "sources", "layout"), ("data",)),
          (("paper", "reproduce"), ("engine", "training", "train"))]  # between rooms: the other test's concern
    bad = [(("engine", "inference", "weights"), ("engine", "training", "checkpointing")),
           (("engine", "training", "train"), ("engine", "inference", "decode")),
           (("engine", "inference", "decode"), ("engine", "evaluation", "evaluate")),
           (("engine", "evaluation", "runner"), ("engine", "jobs", "demo")),
           (("engine", "distributed"), ("engine", "training", "job")),
           (("engine", "newthing"), ("engine", "distributed")),
           (("engine",), ("engine", "training", "train")),
           (("data", "dataset"), ("data", "sources", "synthetic")),
           (("data",), ("data", "sources", "prepare"))]
    assert [pair for pair in ok if _inner_violation(*pair)] == []
    assert [pair for pair in bad if not _inner_violation(*pair)] == []
    assert "engine.inference imports engine.training.checkpointing" in _inner_violation(*bad[0])
    assert "engine.newthing sits in no inner room of engine" in _inner_violation(*bad[5])


def test_inner_rooms_keep_their_order():
    """engine: distributed → training, inference → evaluation (on inference) → jobs; data: pipeline → sources."""
    wrong = []
    for path in _modules():
        here = _file_parts(path)
        if not here or here[0] not in INNER_ROOMS:
            continue
        rel = str(path.relative_to(PACKAGE))
        if len(here) > 1 and _inner_room(here) is None:
            wrong.append(f"{rel}: in no inner room of {here[0]} ({sorted(INNER_ROOMS[here[0]][0])})")
            continue
        for node, _ in _imports(path):
            for target in _targets(node, here, path.name == "__init__.py"):
                why = _inner_violation(here, target)
                if why:
                    wrong.append(f"{rel}:{node.lineno}: {why}")
    assert not wrong, "imports against the order inside a room:\n" + "\n".join(wrong)


def test_no_import_circles():
    """No circle among module-level imports, and none closed by an import inside a function either (such an
    import does not fail, but the two modules still lean on each other: the shared piece belongs below both)."""
    spec = importlib.util.spec_from_file_location("arch_counts", PACKAGE.parent / "tools" / "arch_counts.py")
    arch_counts = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(arch_counts)
    measured = arch_counts.measure()
    assert measured["import_circles"] == [], f"import circles: {measured['import_circles']}"
    assert measured["deferred_import_circles"] == [], (
        "import circles closed by a function-local import (move what both modules need into the lower one, or "
        f"a module below both): {measured['deferred_import_circles']}")


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
