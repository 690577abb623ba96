"""boir_core.book: the executed notebooks and docs/ as one static HTML site (``make book``).

The notebooks here are tiny ones written with nbformat, "executed" by hand (outputs written in), so no kernel
runs. Pages are read back with the standard library's HTML parser, not with the module's own (bs4).
The real notebooks' book is walked in Chromium at the end of tests/notebooks/test_browser.py.
"""
from __future__ import annotations

import base64
import posixpath
import re
import struct
import zlib
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from boir_core.__main__ import main
from boir_core.book import BookError, build_book
from boir_core.course import COURSE

REPO = Path(__file__).resolve().parents[1]


def png_bytes(w: int = 3, h: int = 2) -> bytes:
    """A valid w x h red PNG, written by hand."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + b"\xff\x00\x00" * w for _ in range(h))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


PNG = png_bytes()
STEMS = [c.stem for c in COURSE[:3]]  # 01_data_and_targets, 02_backbone_aspp_heads, 03_bbox_mask_loss


def figure(n: int = 1) -> dict:
    return new_output("display_data", data={"image/png": base64.b64encode(PNG).decode(), "text/plain": "<Figure>"})


def tiny_notebooks(folder: Path) -> dict[str, Path]:
    """Three executed notebooks that link to each other and to docs pages, with a figure, math, a folded
    solution and an explorer's widget."""
    one, two, three = STEMS
    cells = {
        one: [new_markdown_cell(f"# 01 · Data\n\nThe [glossary](#glossary); the network: "
                                f"[02]({two}.ipynb#the-network); cited as plain text: docs/model.md#task-heads; "
                                "as a link: "
                                "[targets](../docs/data_format.md#targets)."),
              new_code_cell("plot()", execution_count=1, outputs=[figure()]),
              new_markdown_cell('<a id="glossary"></a>\n## Glossary\n\n- **p**: the embedding'),
              new_code_cell("w = explorer()", execution_count=2, outputs=[new_output(
                  "display_data", data={"application/vnd.jupyter.widget-view+json": {
                      "model_id": "abc", "version_major": 2, "version_minor": 0}, "text/plain": "VBox()"})])],
        two: [new_markdown_cell(f'# 02 · Net\n\n<a id="the-network"></a>\n## The network\n\n$$a^2$$ and back to the '
                                f"[glossary]({one}.ipynb#glossary), see docs/data_format.md."),
              new_code_cell("print(1)", execution_count=1, outputs=[new_output("stream", name="stdout", text="1\n")])],
        three: [new_markdown_cell("# 03 · Loss\n\nThe [README](../README.md) and [the docs](../docs/).\n\n"
                                  "## Exercise\nWhat is 6 × 7?"),
                new_code_cell("answer = 6 * 7\nassert answer == 42", execution_count=1, outputs=[],
                              metadata={"tags": ["solution"], "jupyter": {"source_hidden": True}}),
                new_code_cell("plot()", execution_count=2, outputs=[figure()]),
                new_markdown_cell("## Going deeper", metadata={"jp-MarkdownHeadingCollapsed": True}),
                new_code_cell("deep()", execution_count=3, outputs=[new_output("stream", name="stdout",
                                                                               text="release detail\n")]),
                new_markdown_cell("### A sub-section\nstill inside"),
                new_markdown_cell("## Recap\nOpen for everyone.")],
    }
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, cs in cells.items():
        nb = new_notebook(cells=cs)
        nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}, "version_major": 2,
                                                                               "version_minor": 0}}
        out[name] = folder / f"{name}.ipynb"
        nbformat.write(nb, out[name])
    return out


def tiny_docs(folder: Path) -> Path:
    """docs/ of three pages, and the kit's README beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder.parent / "README.md").write_text("# The kit\n\n## Set-up\n\nThe heads: [docs](docs/model.md#task-heads); "
                                             f"the [course](notebooks/{STEMS[0]}.ipynb).\n")
    (folder / "README.md").write_text("# Reference pages\n\n- [The model](model.md)\n- [Data](data_format.md)\n")
    (folder / "model.md").write_text("# The model\n\n## Task heads\n\nTargets: [here](data_format.md#targets).\n"
                                     "\n## Task heads\n\nA second heading of that name.\n")
    (folder / "data_format.md").write_text("# Data format\n\n## Targets\n\nThe [heads](model.md#task-heads-1), "
                                           "notebook [01](../notebooks/01_data_and_targets.ipynb).\n")
    return folder


class Page(HTMLParser):
    """What a page links to, loads and names: hrefs of <a>, every src / stylesheet, every id."""

    def __init__(self, path: Path):
        super().__init__()
        self.links, self.loads, self.ids, self.scripts, self.text = [], [], set(), [], []
        self.feed(path.read_text(encoding="utf-8"))

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "a" and "href" in a:
            self.links.append(a["href"])
        if tag in ("img", "script", "iframe") and "src" in a:
            self.loads.append(a["src"])
        if tag == "link" and "href" in a:
            self.loads.append(a["href"])
        if tag == "script":
            self.scripts.append(a)

    def handle_data(self, data):
        self.text.append(data)


def resolve(site: Path, page: str, href: str) -> tuple[str, set[str]]:
    """The page a link leads to and the ids its fragment may name (a browser tries it decoded, then as written)."""
    parts = urlsplit(href)
    target = posixpath.normpath(posixpath.join(posixpath.dirname(page), unquote(parts.path))) if parts.path else page
    return target, {unquote(parts.fragment), parts.fragment} if parts.fragment else set()


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    root = tmp_path_factory.mktemp("book")
    notebooks = tiny_notebooks(root / "executed")
    docs = tiny_docs(root / "docs")
    index = build_book(root / "executed", root / "site", docs_dir=docs)
    return index.parent, notebooks, docs


def test_the_book_has_a_page_per_notebook_and_docs_page_and_a_table_of_contents(book):
    site, _, _ = book
    pages = sorted(p.relative_to(site).as_posix() for p in site.rglob("*.html") if "static" not in p.parts)
    assert pages == sorted(["index.html", *(f"{s}.html" for s in STEMS), "docs/README.html", "docs/model.html",
                            "docs/data_format.html", "README.html"])
    index = Page(site / "index.html")
    # the course in its order, each with its question, then the docs pages (README first, then as it lists them)
    assert index.links == [*(f"{s}.html" for s in STEMS), "docs/README.html", "docs/model.html",
                           "docs/data_format.html", "README.html"]
    text = " ".join(index.text)
    for lesson in COURSE[:3]:
        assert lesson.title in text and lesson.question in text
    assert COURSE[3].title not in text  # only the notebooks given
    assert (site / ".nojekyll").is_file()  # GitHub Pages from a branch serves it as it is


def test_every_link_leads_to_a_page_and_an_anchor_that_exist(book):
    site, _, _ = book
    pages = {p.relative_to(site).as_posix(): Page(p) for p in site.rglob("*.html") if "static" not in p.parts}
    checked = 0
    for name, page in pages.items():
        for href in page.links + page.loads:
            if href.startswith("data:"):
                continue
            assert not urlsplit(href).scheme, f"{name}: {href} leaves the book"
            target, anchors = resolve(site, name, href)
            assert (site / target).is_file(), f"{name}: {href} -> no {target}"
            if anchors and target in pages:
                assert anchors & pages[target].ids, f"{name}: {href} -> {target} has no #{anchors}"
            checked += 1
    assert checked > 30
    one, two, three = (pages[f"{s}.html"] for s in STEMS)
    assert {f"{STEMS[1]}.html#the-network", "docs/model.html#task-heads", "docs/data_format.html#targets",
            "#glossary"} <= set(one.links)
    assert f"{STEMS[0]}.html#glossary" in two.links and "docs/data_format.html" in two.links
    assert {"data_format.html#targets"} <= set(pages["docs/model.html"].links)
    assert {"model.html#task-heads-1", f"../{STEMS[0]}.html"} <= set(pages["docs/data_format.html"].links)
    assert {"task-heads", "task-heads-1"} <= pages["docs/model.html"].ids  # GitHub's ids, repeats numbered
    assert not [h for p in pages.values() for h in p.links if h.split("#")[0].endswith((".ipynb", ".md"))]
    # prev / contents / next
    assert {f"{STEMS[0]}.html", "index.html", f"{STEMS[2]}.html"} <= set(two.links)
    assert {f"{STEMS[1]}.html", "index.html", "docs/README.html"} <= set(three.links)
    # the kit's README is a page too (a notebook links it), and a link to docs/ leads to the docs' README
    assert {"README.html", "docs/README.html"} <= set(three.links)
    assert {"docs/model.html#task-heads", f"{STEMS[0]}.html"} <= set(pages["README.html"].links)
    assert "set-up" in pages["README.html"].ids


def test_figures_are_embedded_and_math_is_typeset_from_the_books_own_mathjax(book):
    site, _, _ = book
    one, two = Page(site / f"{STEMS[0]}.html"), Page(site / f"{STEMS[1]}.html")
    images = [src for src in one.loads if src.startswith("data:image/png;base64,")]
    assert len(images) == 1 and base64.b64decode(images[0].split(",", 1)[1]) == PNG
    mathjax = [s["src"] for s in two.scripts if "MathJax.js" in s.get("src", "")]
    assert len(mathjax) == 1
    src = urlsplit(mathjax[0])
    static = site / src.path.rsplit("/", 1)[0]
    assert (site / src.path).is_file()
    for name in parse_qs(src.query)["config"][0].split(","):  # every configuration the page asks for
        assert (static / "config" / f"{name}.js").is_file(), name
    assert (static / "jax/output/HTML-CSS/fonts/STIX-Web/fontdata.js").is_file()
    assert (static / "fonts/HTML-CSS/STIX-Web/woff/STIXMathJax_Main-Regular.woff").is_file()
    assert "$$a^2$$" in " ".join(two.text)
    assert not [s for s in one.scripts if "MathJax.js" in s.get("src", "")]  # no TeX, no MathJax


def test_solutions_and_collapsed_sections_stay_folded_and_widgets_leave_a_note(book):
    site, _, _ = book
    html = (site / f"{STEMS[2]}.html").read_text()
    folded = re.findall(r"<details.*?</details>", html, re.S)
    assert len(folded) == 2
    assert "Show the solution" in folded[0] and "answer" in folded[0] and "42" in folded[0]
    assert "Show this section" in folded[1] and "release detail" in folded[1] and "A sub-section" in folded[1]
    assert "Going deeper" not in folded[1]  # the heading stays visible, its section folds
    assert "Recap" in html and not any("Recap" in f for f in folded)
    one = (site / f"{STEMS[0]}.html").read_text()
    assert "widget-view+json" not in one and "live kernel" in one


def test_a_failed_build_names_the_notebook_and_keeps_the_previous_book(tmp_path):
    notebooks = tiny_notebooks(tmp_path / "executed")
    docs = tiny_docs(tmp_path / "docs")
    site = tmp_path / "site"
    build_book(notebooks, site, docs_dir=docs)
    before = {p: p.read_bytes() for p in site.rglob("*") if p.is_file()}
    nb = nbformat.read(notebooks[STEMS[1]], as_version=4)
    nb.cells[1].outputs = [new_output("error", ename="ValueError", evalue="bad radius", traceback=[])]
    nbformat.write(nb, notebooks[STEMS[1]])
    with pytest.raises(BookError, match=f"notebook {STEMS[1]} failed.*cell 1 raised ValueError: bad radius"):
        build_book(notebooks, site, docs_dir=docs)
    assert {p: p.read_bytes() for p in site.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md", "docs", "executed", "site"]  # nothing half-built


def test_a_notebook_without_outputs_is_named(tmp_path):
    notebooks = tiny_notebooks(tmp_path / "executed")
    nb = nbformat.read(notebooks[STEMS[0]], as_version=4)
    for c in nb.cells:
        if c.cell_type == "code":
            c.outputs, c.execution_count = [], None
    nbformat.write(nb, notebooks[STEMS[0]])
    with pytest.raises(BookError, match=f"notebook {STEMS[0]} has no outputs"):
        build_book(notebooks, tmp_path / "site", docs_dir=tiny_docs(tmp_path / "docs"))
    assert not (tmp_path / "site").exists()


@pytest.mark.parametrize("markdown, message", [
    ("[gone](05_inference_and_evaluation.ipynb)", "'05_inference_and_evaluation.ipynb' leads to "
                                                  "'05_inference_and_evaluation', which is not a page"),
    ("[code](../boir_core/book.py)", "leads to '../boir_core/book.py', which is not a page"),
    ("[no anchor](02_backbone_aspp_heads.ipynb#nowhere)", "has no anchor #nowhere"),
    ("![remote](https://example.org/a.png)", "would load from the network"),
])
def test_a_broken_link_or_a_remote_file_is_named(tmp_path, markdown, message):
    notebooks = tiny_notebooks(tmp_path / "executed")
    nb = nbformat.read(notebooks[STEMS[2]], as_version=4)
    nb.cells[0].source += "\n\n" + markdown
    nbformat.write(nb, notebooks[STEMS[2]])
    with pytest.raises(BookError, match=STEMS[2]) as e:
        build_book(notebooks, tmp_path / "site", docs_dir=tiny_docs(tmp_path / "docs"))
    assert message in str(e.value)


def test_a_folder_that_is_not_a_book_is_never_replaced(tmp_path):
    notebooks = tiny_notebooks(tmp_path / "executed")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(BookError, match="not a book built by boir_core.book"):
        build_book(notebooks, mine, docs_dir=tiny_docs(tmp_path / "docs"))
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]


def test_the_kits_docs_build_without_a_broken_link_and_the_cli_builds_a_book(tmp_path, capsys):
    """The real docs/ (their GitHub anchors, links between pages) and a notebook citing them, via the CLI."""
    nb = new_notebook(cells=[new_markdown_cell("# 01\n\nSee docs/release_vs_paper.md#switches and "
                                               "[the targets](../docs/data_format.md#targets)."),
                             new_code_cell("1", execution_count=1, outputs=[])])
    (tmp_path / "executed").mkdir()
    nbformat.write(nb, tmp_path / "executed" / "01_data_and_targets.ipynb")
    out = tmp_path / "html"
    assert main(["book", "--executed", str(tmp_path / "executed"), "--out", str(out)]) == 0
    assert f"[book] {out / 'index.html'}" in capsys.readouterr().out
    docs = sorted(p.stem for p in (REPO / "docs").glob("*.md"))
    assert sorted(p.stem for p in (out / "docs").glob("*.html")) == docs
    links = set(Page(out / "01_data_and_targets.html").links)
    assert {"docs/release_vs_paper.html#switches", "docs/data_format.html#targets"} <= links
    # a folder of notebooks that never ran: one error line naming the notebook, exit status 2
    nb.cells[1].execution_count = None
    nbformat.write(nb, tmp_path / "executed" / "01_data_and_targets.ipynb")
    assert main(["book", "--executed", str(tmp_path / "executed"), "--out", str(out)]) == 2
    assert "error: notebook 01_data_and_targets has no outputs" in capsys.readouterr().err
    assert (out / "index.html").is_file()
