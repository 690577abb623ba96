"""The repository explains itself: references point into docs/, and every docs/ anchor they name exists.

* No tracked file outside ``docs/`` cites the external release spec ("spec" followed by a section sign) or
  a bare section sign that is not the paper's ("paper §3.2", "appendix §6").
* Every ``docs/<page>.md#<anchor>`` in a tracked file, and every relative ``<page>.md#<anchor>`` link
  inside ``docs/``, names an existing page and a heading of it, with GitHub's anchor rule.
* Every config key the docs name (```loss.weighting```, ```data.flip_alignment=release```, a switch-table
  cell ```model.bbox_head_init`: `working` → `release```) exists, and every value named for it is accepted
  without a deprecation warning, so the docs cannot drift from the config's vocabulary.
"""
from __future__ import annotations

import re
import subprocess
import warnings
from pathlib import Path

import pytest

from boir_core.config import Config, ConfigError

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SECTION = "\u00a7"
TEXT_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".toml", ".txt", ".cfg", ".ini", ".sh", ".json", ""}

SPEC_REF = re.compile(r"(?i)\bspec\s+" + SECTION)
_NUM = r"\d+(?:\.\d+)?"
#: the paper's own sections, possibly chained: "paper §3.2", "appendix §6", "paper §3.2, §3.3"
PAPER_CHAIN = re.compile(
    rf"(?i)\b(?:paper|appendix)(?:'s)?\s+{SECTION}{_NUM}(?:(?:,\s*|\s+and\s+|[–-]){SECTION}?{_NUM})*")
DOC_REF = re.compile(r"\bdocs/([\w./-]+?\.md)(?:#([\w-]+))?")
LOCAL_LINK = re.compile(r"\]\((?!https?:)([\w./-]*?\.md)?(?:#([\w-]+))?\)")


def tracked_files() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True).stdout
        names = [n for n in out.decode().split("\0") if n]
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: every file but generated ones
        skip = {".git", ".venv", "data", "runs", "__pycache__", "node_modules"}
        names = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*")
                 if p.is_file() and not skip & set(p.relative_to(ROOT).parts)]
    files = []
    for n in names:
        p = ROOT / n
        if p.suffix in TEXT_SUFFIXES and p.is_file():
            files.append(p)
    return files


def read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return None


def github_anchor(heading: str, seen: dict[str, int]) -> str:
    """GitHub's heading id: lower case, markup and punctuation dropped, spaces to '-', '-1', '-2' for repeats."""
    text = re.sub(r"`([^`]*)`", r"\1", heading)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    slug = re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")
    n = seen.get(slug, 0)
    seen[slug] = n + 1
    return slug if n == 0 else f"{slug}-{n}"


def anchors_of(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    anchors: set[str] = set()
    fence = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("```"):
            fence = not fence
            continue
        m = re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if m and not fence:
            anchors.add(github_anchor(m.group(2), seen))
    return anchors


def test_github_anchor_rule():
    seen: dict[str, int] = {}
    assert github_anchor("Test-time resize arithmetic", seen) == "test-time-resize-arithmetic"
    assert github_anchor("Backbone: HRNet", seen) == "backbone-hrnet"
    assert github_anchor("Where `p` is read", seen) == "where-p-is-read"
    assert github_anchor("Transfer (COCO to CrowdPose)", seen) == "transfer-coco-to-crowdpose"
    assert github_anchor("Backbone: HRNet", seen) == "backbone-hrnet-1"


def test_docs_pages_exist():
    for page in ("README.md", "release_vs_paper.md", "data_format.md", "inference.md", "training.md", "model.md",
                 "architecture.md", "custom_keypoints.md"):
        assert (DOCS / page).is_file(), f"docs/{page} is missing"


def test_no_reference_to_the_external_spec():
    offenders = []
    for path in tracked_files():
        rel = path.relative_to(ROOT)
        if rel.parts[0] == "docs":
            continue
        text = read_text(path)
        if text is None or SECTION not in text:
            continue
        for no, line in enumerate(text.splitlines(), 1):
            if SPEC_REF.search(line):
                offenders.append(f"{rel}:{no}: {line.strip()}")
                continue
            if SECTION in PAPER_CHAIN.sub("", line):
                offenders.append(f"{rel}:{no}: bare section sign (write docs/<page>.md#<anchor>, or 'paper "
                                 f"{SECTION}N' for the paper): {line.strip()}")
    assert not offenders, "references outside the repository:\n" + "\n".join(offenders)


def test_every_docs_reference_resolves():
    anchors = {p.name: anchors_of(p) for p in DOCS.glob("*.md")}
    broken = []
    for path in tracked_files():
        text = read_text(path)
        if text is None:
            continue
        rel = path.relative_to(ROOT)
        in_docs = rel.parts[0] == "docs"
        for no, line in enumerate(text.splitlines(), 1):
            refs = [(m.group(1), m.group(2)) for m in DOC_REF.finditer(line)]
            if in_docs:  # relative links between the pages: [text](page.md#anchor) or [text](#anchor)
                refs += [(m.group(1) or rel.name, m.group(2)) for m in LOCAL_LINK.finditer(line)
                         if m.group(1) or m.group(2)]
            for page, anchor in refs:
                name = Path(page).name
                if name not in anchors or (Path(page).parent not in (Path("."), Path("docs"))):
                    broken.append(f"{rel}:{no}: no page docs/{page}")
                elif anchor and anchor not in anchors[name]:
                    broken.append(f"{rel}:{no}: docs/{name} has no heading with anchor #{anchor}")
    assert not broken, "broken docs references:\n" + "\n".join(broken)


@pytest.mark.parametrize("doc", ["README.md", "CONTRIBUTING.md"])
def test_readme_and_contributing_point_to_docs(doc):
    assert "docs/" in (ROOT / doc).read_text(encoding="utf-8"), f"{doc} should point to docs/"


CONFIG_SECTIONS = ("data", "model", "loss", "train", "test")
#: `section.key` or `section.key=value`
CONFIG_REF = re.compile(rf"`((?:{'|'.join(CONFIG_SECTIONS)})\.[a-z_]+)(?:=([^`\s]+))?`")
#: a switch cell: `section.key`: `a` → `b` / `c`
SWITCH_CELL = re.compile(rf"`((?:{'|'.join(CONFIG_SECTIONS)})\.[a-z_]+)`:\s*((?:`[^`]+`(?:\s*(?:→|/)\s*)?)+)")


def _value_problem(key: str, value: str) -> str | None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            Config().override(f"{key}={value}")
        except ConfigError as e:
            return str(e)
    deprecated = [str(w.message) for w in caught if "deprecat" in str(w.message).lower()]
    return f"{key}={value} is deprecated: {deprecated[0]}" if deprecated else None


def test_docs_name_real_config_keys_and_values():
    problems = []
    for page in sorted(DOCS.glob("*.md")):
        for no, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
            pairs = [(m.group(1), m.group(2)) for m in CONFIG_REF.finditer(line)]
            for m in SWITCH_CELL.finditer(line):
                pairs += [(m.group(1), v) for v in re.findall(r"`([^`]+)`", m.group(2))]
            for key, value in pairs:
                section, name = key.split(".")
                if not hasattr(getattr(Config(), section), name):
                    problems.append(f"docs/{page.name}:{no}: no config key {key}")
                elif value is not None:
                    problem = _value_problem(key, value)
                    if problem:
                        problems.append(f"docs/{page.name}:{no}: {problem}")
    assert not problems, "docs name config keys or values the config does not accept:\n" + "\n".join(problems)


def _arch_counts():
    import importlib.util

    spec = importlib.util.spec_from_file_location("arch_counts", ROOT / "tools" / "arch_counts.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_architecture_page_quotes_todays_counts():
    """docs/architecture.md's numbers are what tools/arch_counts.py measures in the code now (else: run
    ``python tools/arch_counts.py --write``)."""
    ac = _arch_counts()
    assert ac.doc_block() == ac.block(ac.report()), "docs/architecture.md is stale: python tools/arch_counts.py --write"


def test_arch_counts_measures_lengths_parameters_and_circles(tmp_path, monkeypatch):
    """The counter on a made-up package: a long function, one with 7 loose parameters (self not counted), a
    network constructor apart, a data table left out, an import circle closed only inside a function, and the
    modules counted by the package they sit in (a sub-package a room of its own)."""
    ac = _arch_counts()
    pkg = tmp_path / "boir_core"
    (pkg / "model").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "model" / "__init__.py").write_text("")
    long_body = "\n".join(f"    x{i} = {i}" for i in range(85))
    (pkg / "a.py").write_text(
        "from boir_core import b\n\n"
        f"def long():\n{long_body}\n    return 0\n\n"
        "class K:\n    def many(self, a, b, c, d, e, f, g, *args, **kw):\n        return a\n\n"
        "def table():\n    return {\n" + "".join(f"        {i}: {i},\n" for i in range(90)) + "    }\n")
    (pkg / "b.py").write_text("def f():\n    from boir_core import a\n    return a\n")
    (pkg / "model" / "net.py").write_text(
        "import torch.nn as nn\n\nclass Net(nn.Module):\n    def __init__(self, a, b, c, d, e, f, g):\n"
        "        super().__init__()\n")
    (pkg / "model" / "parts").mkdir()
    (pkg / "model" / "parts" / "__init__.py").write_text("")
    (pkg / "model" / "parts" / "head.py").write_text("X = 1\n")
    monkeypatch.setattr(ac, "REPO", tmp_path)
    monkeypatch.setattr(ac, "PACKAGE", pkg)
    m = ac.measure()
    assert [w for _, w in m["functions_over_80"]] == ["boir_core.a.long"]
    assert m["over_6_parameters"] == [(7, "boir_core.a.K.many")]
    assert m["network_constructors_over_6"] == [(7, "boir_core.model.net.Net.__init__")]
    assert m["import_circles"] == [] and m["deferred_import_circles"] == [["boir_core.a", "boir_core.b"]]
    assert m["rooms"] == {"boir_core": 3, "boir_core.model": 2, "boir_core.model.parts": 2}  # by the package
