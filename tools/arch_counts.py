"""The house's shape in numbers, read from the code with ``ast``: what docs/architecture.md reports.

    python tools/arch_counts.py            # the report
    python tools/arch_counts.py --check    # exit 1 when docs/architecture.md's block is not today's report
    python tools/arch_counts.py --write    # rewrite that block

Counted over ``boir_core/``:

* modules per room: the package each module sits in (``engine.training``, ``data.sources``; ``boir_core``: the
  top-level modules);
* functions longer than 60 and 80 lines (first to last line of the ``def``, decorators and docstring included);
  data tables (a function that only returns a literal) are not functions in this sense and are left out;
* functions with more than 6 *loose* parameters: every named parameter but ``self`` / ``cls`` (``*args`` /
  ``**kwargs`` not counted); network constructors (``__init__`` of an ``nn.Module`` in ``boir_core/model``)
  are listed apart, as the rule allows them;
* import circles between modules: module-level imports (the ones that run at import time) and, apart, those
  that close only through an import inside a function (deferred: they do not fail, but they are still a
  circle in the design).
"""
from __future__ import annotations

import argparse
import ast
import sys
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "boir_core"
DOC = REPO / "docs" / "architecture.md"
BEGIN = "<!-- arch-counts: written by tools/arch_counts.py --write -->"
END = "<!-- /arch-counts -->"
LONG, VERY_LONG, MAX_PARAMS = 60, 80, 6


def module_name(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py")) if "__pycache__" not in p.parts}


def _is_data_table(fn: ast.AST) -> bool:
    body = [s for s in fn.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
    return (len(body) == 1 and isinstance(body[0], ast.Return)
            and isinstance(body[0].value, (ast.Dict, ast.List, ast.Tuple, ast.Set)))


def _is_module_class(cls: ast.ClassDef) -> bool:
    names = {ast.unparse(b) for b in cls.bases}
    return any(n.endswith("Module") or n.endswith("Sequential") for n in names)


def functions(tree: ast.Module):
    """(qualified name, node, is a network constructor) for every function of a module."""
    out = []

    def walk(node, prefix, cls=None):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                ctor = cls is not None and child.name == "__init__" and _is_module_class(cls)
                out.append((f"{prefix}{child.name}", child, ctor))
                walk(child, f"{prefix}{child.name}.", None)
            elif isinstance(child, ast.ClassDef):
                walk(child, f"{prefix}{child.name}.", child)
    walk(tree, "")
    return out


def loose_parameters(fn) -> int:
    a = fn.args
    names = [p.arg for p in (*a.posonlyargs, *a.args, *a.kwonlyargs)]
    return len([n for n in names if n not in ("self", "cls")])


def _imports(mod: str, path: Path, tree: ast.Module, known: set[str]) -> tuple[set[str], set[str]]:
    """(module-level, deferred) imports of ``mod`` that name modules of the package."""
    top, deferred = set(), set()
    is_pkg = path.name == "__init__.py"

    def resolve(node: ast.ImportFrom) -> list[str]:
        if node.level:
            base = mod.split(".") if is_pkg else mod.split(".")[:-1]
            base = base[:len(base) - node.level + 1]
            stem = ".".join(base + ([node.module] if node.module else []))
        else:
            stem = node.module or ""
        found = []
        for alias in node.names:
            cand = f"{stem}.{alias.name}"
            found.append(cand if cand in known else stem)
        return found

    def visit(node, inside_function: bool):
        for child in ast.iter_child_nodes(node):
            names: list[str] = []
            if isinstance(child, ast.Import):
                names = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom):
                names = resolve(child)
            target = deferred if inside_function else top
            for n in names:
                while n and n not in known:
                    n = n.rpartition(".")[0]
                if n and n != mod:
                    target.add(n)
            if isinstance(child, ast.If) and ast.unparse(child.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
                continue  # typing-only imports run never
            visit(child, inside_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)))
    visit(tree, False)
    return top, deferred - top


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in sorted(graph):
        if v not in index:
            strong(v)
    return sorted(out)


def _without_package_edges(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """Drop a package's imports of its own submodules (``__init__`` re-exporting its room is not a circle)."""
    return {m: {n for n in deps if not n.startswith(m + ".")} for m, deps in graph.items()}


def measure() -> dict:
    mods = modules()
    known = set(mods)
    rooms: dict[str, int] = defaultdict(int)
    long_fns, very_long, many_params, ctor_params = [], [], [], []
    top_graph, all_graph = {}, {}
    for mod, path in mods.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        room = mod if path.name == "__init__.py" else mod.rpartition(".")[0]  # the package it sits in
        rooms[room] += 1
        for qual, fn, ctor in functions(tree):
            n_lines = fn.end_lineno - min([fn.lineno, *(d.lineno for d in fn.decorator_list)]) + 1
            where = f"{mod}.{qual}"
            if n_lines > LONG and not _is_data_table(fn):
                long_fns.append((n_lines, where))
                if n_lines > VERY_LONG:
                    very_long.append((n_lines, where))
            n_params = loose_parameters(fn)
            if n_params > MAX_PARAMS:
                (ctor_params if ctor and mod.startswith("boir_core.model") else many_params).append((n_params, where))
        top, deferred = _imports(mod, path, tree, known)
        top_graph[mod] = top
        all_graph[mod] = top | deferred
    top_cycles = _cycles(_without_package_edges(top_graph))
    all_cycles = _cycles(_without_package_edges(all_graph))
    return {
        "modules": len(mods), "rooms": dict(sorted(rooms.items())),
        "functions_over_60": sorted(long_fns, reverse=True), "functions_over_80": sorted(very_long, reverse=True),
        "over_6_parameters": sorted(many_params, reverse=True),
        "network_constructors_over_6": sorted(ctor_params, reverse=True),
        "import_circles": top_cycles, "deferred_import_circles": [c for c in all_cycles if c not in top_cycles],
    }


def report(m: dict | None = None) -> str:
    m = m or measure()
    lines = [f"modules in boir_core: {m['modules']}; per room: "
             + ", ".join(f"{k.removeprefix('boir_core.') or 'top'} {v}" for k, v in m["rooms"].items())]

    def listing(title, items):
        lines.append(f"{title}: {len(items)}")
        lines.extend(f"  {n:4d}  {where}" for n, where in items)

    listing(f"functions over {VERY_LONG} lines (data tables aside)", m["functions_over_80"])
    listing(f"functions over {LONG} lines (data tables aside)", m["functions_over_60"])
    listing(f"functions with more than {MAX_PARAMS} loose parameters (network constructors aside)",
            m["over_6_parameters"])
    listing(f"network constructors with more than {MAX_PARAMS} parameters", m["network_constructors_over_6"])
    lines.append(f"import circles (module-level imports): {len(m['import_circles'])}")
    lines.extend("  " + " -> ".join(c) for c in m["import_circles"])
    lines.append(f"import circles closed only by an import inside a function: {len(m['deferred_import_circles'])}")
    lines.extend("  " + " -> ".join(c) for c in m["deferred_import_circles"])
    return "\n".join(lines)


def block(text: str) -> str:
    return f"{BEGIN}\n```text\n{text}\n```\n{END}"


def doc_block(doc: Path = DOC) -> str:
    s = doc.read_text()
    if BEGIN not in s or END not in s:
        raise SystemExit(f"{doc}: no arch-counts block (the lines {BEGIN!r} ... {END!r})")
    return s[s.index(BEGIN):s.index(END) + len(END)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="exit 1 when docs/architecture.md's block is stale")
    ap.add_argument("--write", action="store_true", help="rewrite docs/architecture.md's block")
    args = ap.parse_args(argv)
    text = report()
    if args.write:
        old = doc_block()
        DOC.write_text(DOC.read_text().replace(old, block(text)))
    elif args.check:
        if doc_block() != block(text):
            print(f"{DOC} is stale: run python tools/arch_counts.py --write", file=sys.stderr)
            return 1
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
