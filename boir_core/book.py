"""The book: the executed notebooks and the reference pages (``docs/*.md``) as one static HTML site.

``make book`` (``python -m boir_core book``) executes every notebook with its defaults
(:func:`execute_notebooks`) and builds the site (:func:`build_book`)::

    <out>/index.html                  the table of contents: the course (each notebook's question), the docs
    <out>/NN_topic.html               one page per executed notebook (nbconvert, JupyterLab's look), figures
                                      embedded, prev / contents / next at the top and the bottom
    <out>/docs/<page>.html            one page per docs/<page>.md (headings keep GitHub's anchors)
    <out>/README.html                 the kit's README (the notebooks point readers to it)
    <out>/static/mathjax/             the part of MathJax 2.7 the pages use (from jupyter-server-mathjax)
    <out>/static/css/                 the notebook style sheets, shared by the pages
    <out>/.nojekyll                   GitHub Pages serves the folder as it is

The site needs no network, to build or to read: equations are typeset by its own copy of MathJax, every
figure is in its page, and no page loads anything from elsewhere (the build refuses a page that would). Links
between the sources are rewritten to the pages (``01_data_and_targets.ipynb#glossary`` →
``01_data_and_targets.html#glossary``; ``docs/model.md#task-heads``, ``../docs/model.md#task-heads`` and,
inside docs/, ``model.md#task-heads`` → ``docs/model.html#task-heads``; ``../README.md`` → ``README.html``; a
folder, ``../docs/``, → its README's page); a citation written as plain text
(``(docs/data_format.md#targets)``) becomes a link too. Every link and image of every page is checked before
the site replaces the previous one: a broken one is an error that names the page and the link. The site is
built in a folder next to ``out`` and swapped in at the end, so a failed build leaves the previous book as it
was.

A code cell that JupyterLab shows collapsed (``jupyter.source_hidden``: an exercise's solution) is folded in
the book too, in a ``<details>`` element, its outputs with it; so is a section whose heading JupyterLab keeps
collapsed (``jp-MarkdownHeadingCollapsed``). Interactive explorers show their first drawing (an ordinary
output, :func:`boir_core.viz.explorers.place`) and a note in place of the live widget.
"""
from __future__ import annotations

import copy
import hashlib
import html
import os
import posixpath
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from .course import COURSE, Lesson
from .paths import checkout_root

__all__ = ["build_book", "execute_notebooks", "check_book_folder", "BookError", "github_anchor", "MATHJAX_CONFIG",
           "MARKER"]

#: The file that marks a folder as a book this module built: only such a folder (or an empty one) is replaced.
MARKER = ".boir-book"
#: MathJax's combined configuration (TeX input, HTML-CSS output), its Safe mode and the book's own settings.
MATHJAX_CONFIG = "TeX-AMS-MML_HTMLorMML-full,Safe,local/book"
#: What the pages need of jupyter-server-mathjax's MathJax 2.7 (paths below its ``static/``): the loader, the
#: combined configuration, the extensions it may load (TeX macros on demand, the menu, zoom), the TeX input,
#: the element tables, the HTML-CSS output with its STIX-Web font data and the woff fonts, English strings.
#: Left out: the SVG output, the TeX/otf fonts (never used: STIX-Web is the web font), the accessibility
#: explorer's speech rules (3.5 MB) and the other languages.
MATHJAX_FILES = ("MathJax.js", "LICENSE", "config/TeX-AMS-MML_HTMLorMML-full.js", "config/Safe.js",
                 "extensions/*.js", "extensions/TeX/**/*", "extensions/HTML-CSS/**/*", "extensions/MathML/**/*",
                 "jax/input/**/*", "jax/element/**/*", "jax/output/HTML-CSS/**/*", "fonts/HTML-CSS/STIX-Web/woff/*",
                 "localization/en/*")
#: The book's MathJax settings (``config/local/book.js``): STIX-Web as the only font (the one shipped), no fast
#: preview, and no request for a font file MathJax would try but that is not there (MathJax_Blank's
#: ``about:blank`` and the native-MathML TeX fonts become ``local()`` names, which read no file).
MATHJAX_LOCAL_CONFIG = """MathJax.Hub.Config({
  "HTML-CSS": {availableFonts: [], preferredFont: null, webFont: "STIX-Web", imageFont: null,
               linebreaks: {automatic: true}, styles: {"@font-face": {src: "local('MathJax_Blank')"}}},
  "fast-preview": {disabled: true},
  menuSettings: {CHTMLpreview: false},
  NativeMML: {styles: {
    "@font-face /*1*/": {src: "local('MathJax_Caligraphic')"},
    "@font-face /*2*/": {src: "local('MathJax_Caligraphic')"},
    "@font-face /*3*/": {src: "local('MathJax_AMS')"}, "@font-face /*4*/": {src: "local('MathJax_Script')"},
    "@font-face /*5*/": {src: "local('MathJax_Fraktur')"}, "@font-face /*6*/": {src: "local('MathJax_Fraktur')"}}}
});
MathJax.Ajax.loadComplete("[MathJax]/config/local/book.js");
"""

#: nbconvert's JupyterLab template without what it would load from the network: require.js, the widget
#: manager (the book shows an explorer's first drawing instead) and mermaid. Code cells are shown as pygments
#: highlights them (it escapes the code) without the template's bleach pass over that HTML, half of the
#: export's time.
TEMPLATE = """{%- extends 'index.html.j2' -%}
{% block html_head_js %}{% endblock html_head_js %}
{% block jupyter_widgets %}{% endblock jupyter_widgets %}
{% block html_head_js_mermaidjs %}{% endblock html_head_js_mermaidjs %}
{% block input %}
<div class="jp-CodeMirrorEditor jp-Editor jp-InputArea-editor" data-type="inline">
<div class="cm-editor cm-s-jupyter">
{{ cell.source | highlight_code(metadata=cell.metadata) }}
</div>
</div>
{%- endblock input %}
"""

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
WIDGET_NOTE = ('<p class="boir-book-widget"><i>The interactive explorer is here in JupyterLab (<code>make lab</code>): '
               'its controls need a live kernel. Its first drawing is above.</i></p>')
#: A plain-text citation of a docs page, ``docs/<page>.md`` or ``docs/<page>.md#anchor``.
CITATION = re.compile(r"(?<![\w./-])(?:\.\./)?docs/([\w-]+)\.md(?:#([\w-]+))?(?![\w/])")
#: What MathJax would read as TeX: ``$``, ``\(``, ``\[`` or ``\begin{`` (generous: a page with a dollar gets MathJax).
TEX_HINT = re.compile(r"\$|\\\(|\\\[|\\begin\{")
NOTEBOOK_NAME = re.compile(r"^\d\d_[\w-]+$")
#: Elements whose text is left as it is (no citation becomes a link inside them).
NO_LINKIFY = {"a", "code", "pre", "script", "style", "kbd", "samp", "textarea"}
#: Where a page loads something from on its own (not a link the reader follows).
LOADED = (("img", "src"), ("script", "src"), ("link", "href"), ("iframe", "src"), ("source", "src"),
          ("video", "src"), ("audio", "src"), ("embed", "src"), ("object", "data"))

CSS = """
nav.boir-book-nav { display: flex; justify-content: space-between; gap: 1em; margin: 0.5em 0 1.5em 0;
  padding: 0.5em 0.8em; border: 1px solid #d0d7de; border-radius: 6px; background: #f6f8fa;
  font-family: system-ui, sans-serif; font-size: 14px; }
nav.boir-book-nav a { text-decoration: none; color: #0969da; }
nav.boir-book-nav span.boir-book-nav-none { color: #8c959f; }
details.boir-book-folded { margin: 0.3em 0; }
details.boir-book-folded > summary { cursor: pointer; color: #0969da; font-family: system-ui, sans-serif;
  font-size: 14px; padding: 0.2em 0 0.2em 64px; }
"""
INDEX_CSS = """
body { font-family: system-ui, sans-serif; max-width: 52em; margin: 2em auto; padding: 0 1em; line-height: 1.5;
  color: #1f2328; }
a { color: #0969da; text-decoration: none; } a:hover { text-decoration: underline; }
ol.boir-book-course > li, ul.boir-book-docs > li { margin: 0.6em 0; }
.boir-book-question { display: block; color: #59636e; }
"""


class BookError(ValueError):
    """The book cannot be built: names the notebook, page, link or folder and what to do."""


@dataclass
class _Page:
    key: str  # "01_data_and_targets" or "docs/model"
    path: str  # where it goes in the site, "01_data_and_targets.html", "docs/model.html"
    title: str
    source: Path
    question: str = ""
    markdown: bool = False  # a Markdown page (docs/, the README), not a notebook
    ids: set[str] = field(default_factory=set)
    links: list[tuple[str, str]] = field(default_factory=list)  # (what, href) as written into the page


# ---------------------------------------------------------------- public API
def build_book(executed: dict[str, Path] | Path | str, out_dir: str | os.PathLike, docs_dir: str | os.PathLike
               | None = None) -> Path:
    """Build the book from executed notebooks and ``docs_dir``'s Markdown pages into ``out_dir``; return
    ``out_dir/index.html``.

    ``executed`` maps each notebook's name (``"01_data_and_targets"``) to its executed ``.ipynb``, or is a folder
    holding them (``NN_topic.ipynb``). The course's notebooks come in the course's order
    (:data:`boir_core.course.COURSE`), any other after them by name. ``docs_dir`` defaults to the checkout's
    ``docs/``; the README beside it (the kit's) is a page too. A notebook that was not executed (no outputs),
    that stopped at an error or that cannot be read, a link or an image that leads nowhere, and an ``out_dir``
    that holds something other than a book are errors (:class:`BookError`) that name it; the previous book is
    then left as it was.
    """
    out_dir = Path(out_dir)
    notebooks = _executed_notebooks(executed)
    docs_dir = Path(docs_dir) if docs_dir is not None else checkout_root("building the book") / "docs"
    if not docs_dir.is_dir():
        raise BookError(f"no docs folder {docs_dir}: the book's reference pages are docs/*.md")
    check_book_folder(out_dir)
    mathjax = _mathjax_source()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.building-", dir=out_dir.parent))
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(tmp, 0o777 & ~mask)  # mkdtemp's folder is private; the book is not
    try:
        _build_into(tmp, notebooks, docs_dir, mathjax)
        _swap(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir / "index.html"


def execute_notebooks(out_dir: str | os.PathLike, names: list[str] | None = None,
                      say=print) -> dict[str, Path]:
    """Execute the checkout's notebooks (all ``notebooks/NN_*.py``, or ``names``) with their defaults into
    ``out_dir`` (papermill, kernel started in ``notebooks/`` as JupyterLab starts it); return name → executed
    notebook. A notebook that fails is a :class:`BookError` naming it and the cell (papermill's message),
    with the partial run left in ``out_dir``."""
    from .engine.jobs.demo import execute_notebook  # local: pulls in torch and the engine, which the build needs not

    repo = checkout_root("executing the notebooks for the book")
    sources = sorted((repo / "notebooks").glob("[0-9][0-9]_*.py"))
    if names is not None:
        known = {p.stem for p in sources}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise BookError(f"no notebook {unknown} in {repo / 'notebooks'}; it has {sorted(known)}")
        sources = [p for p in sources if p.stem in names]
    if not sources:
        raise BookError(f"no notebook (NN_topic.py) in {repo / 'notebooks'}")
    out: dict[str, Path] = {}
    for i, src in enumerate(sources, 1):
        say(f"[book] {i}/{len(sources)} executing {src.stem} (its defaults)")
        t = time.time()
        try:
            out[src.stem] = execute_notebook(src.stem, out_dir, cwd=repo / "notebooks")
        except Exception as e:
            if type(e).__name__ != "PapermillExecutionError":
                raise
            raise BookError(f"notebook {src.stem} failed at In [{getattr(e, 'exec_count', '?')}]: "
                            f"{getattr(e, 'ename', '')}: {str(getattr(e, 'evalue', ''))[:400]} (the partial run: "
                            f"{Path(out_dir) / (src.stem + '.ipynb')})") from e
        say(f"[book]   done in {time.time() - t:.0f} s")
    return out


def github_anchor(heading: str, seen: dict[str, int]) -> str:
    """GitHub's id for a heading's text: lower case, punctuation dropped (``-`` and ``_`` kept), spaces to
    ``-``; a repeated heading gets ``-1``, ``-2``, ... (``seen`` counts them within one page)."""
    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
    n = seen.get(slug, 0)
    seen[slug] = n + 1
    return slug if n == 0 else f"{slug}-{n}"


# ---------------------------------------------------------------- inputs
def _executed_notebooks(executed) -> dict[str, Path]:
    if isinstance(executed, (str, os.PathLike)):
        folder = Path(executed)
        if not folder.is_dir():
            raise BookError(f"no folder of executed notebooks {folder}")
        found = {p.stem: p for p in sorted(folder.glob("[0-9][0-9]_*.ipynb")) if NOTEBOOK_NAME.match(p.stem)}
        if not found:
            raise BookError(f"no executed notebook (NN_topic.ipynb) in {folder}")
    else:
        found = {str(name): Path(path) for name, path in executed.items()}
        if not found:
            raise BookError("no notebook given to build the book from")
        for name, path in found.items():
            if not path.is_file():
                raise BookError(f"executed notebook {name}: no file {path}")
    order = {lesson.stem: i for i, lesson in enumerate(COURSE)}
    return dict(sorted(found.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))


def check_book_folder(out_dir: str | os.PathLike) -> None:
    """Can ``out_dir`` take the book? (It is missing, empty, or a book built before: the build replaces it.)"""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise BookError(f"{out_dir} is a file: the book needs a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / MARKER).is_file():
        raise BookError(f"{out_dir} holds files that are not a book built by boir_core.book (no {MARKER} file): "
                        "choose a new or empty folder, the build would replace it")


def _mathjax_source() -> Path:
    try:
        import jupyter_server_mathjax  # local: optional (the notebooks extra), only the book needs it
    except ImportError as e:
        raise BookError("the book's equations need MathJax from the package jupyter-server-mathjax: "
                        "pip install -e '.[notebooks]'") from e
    static = Path(jupyter_server_mathjax.__file__).parent / "static"
    if not (static / "MathJax.js").is_file():
        raise BookError(f"jupyter-server-mathjax has no MathJax.js in {static}: reinstall it")
    return static


def _read_notebook(name: str, path: Path):
    import nbformat  # local: optional (the notebooks extra), only the book and notebook runs need it

    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as e:
        raise BookError(f"notebook {name}: cannot read {path}: {e}") from e
    code = [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.source.strip()]
    ran = [c for _, c in code if c.get("execution_count") is not None or c.get("outputs")]
    if code and not ran:
        raise BookError(f"notebook {name} has no outputs ({path} was never executed): the book shows executed "
                        "notebooks; `python -m boir_core book` executes them")
    for i, c in code:
        for o in c.get("outputs", []):
            if o.get("output_type") == "error" and "raises-exception" not in c.metadata.get("tags", []):
                raise BookError(f"notebook {name} failed ({path}): cell {i} raised {o.get('ename')}: "
                                f"{str(o.get('evalue'))[:300]}")
    missing = [i for i, c in code if c.get("execution_count") is None and not c.get("outputs")]
    if missing:
        raise BookError(f"notebook {name} stopped before the end ({path}): cell {missing[0]} and "
                        f"{len(missing) - 1} more never ran")
    return nb


# ---------------------------------------------------------------- building
def _build_into(site: Path, notebooks: dict[str, Path], docs_dir: Path, mathjax: Path) -> None:
    from bs4 import BeautifulSoup  # local: optional (nbconvert's dependency), only the book needs it

    lessons = {lesson.stem: lesson for lesson in COURSE}
    nbs = {name: _read_notebook(name, path) for name, path in notebooks.items()}
    pages: list[_Page] = []
    for name, nb in nbs.items():
        pages.append(_Page(name, f"{name}.html", _notebook_title(name, nb, lessons.get(name)), notebooks[name],
                           lessons[name].question if name in lessons else ""))
    docs = _docs_pages(docs_dir)
    for stem, path, title in docs:
        pages.append(_Page(f"docs/{stem}", f"docs/{stem}.html", title, path, markdown=True))
    repo = docs_dir.parent
    if (repo / "README.md").is_file():  # the kit's README: the notebooks and docs link to it
        pages.append(_Page("README", "README.html", "The kit: README", repo / "README.md", markdown=True))
    index_page = _Page("index", "index.html", "Contents", site / "index.html")
    by_key = {p.key: p for p in [*pages, index_page]}
    exporter = _exporter()
    for k, page in enumerate(pages):
        prev_page, next_page = (pages[k - 1] if k else None), (pages[k + 1] if k + 1 < len(pages) else None)
        if page.markdown:
            nb, where = _docs_notebook(page.source.read_text(encoding="utf-8")), page.source.parent
        else:
            nb, where = _prepare(nbs[page.key]), repo / "notebooks"
        nb.metadata["title"] = f"{page.title} · BoIR Kit"
        depth = page.path.count("/")
        exporter.mathjax_url = "../" * depth + f"static/mathjax/MathJax.js?config={MATHJAX_CONFIG}"
        try:
            body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": page.key,
                                                                              "path": str(where)}})
        except Exception as e:
            raise BookError(f"{page.key}: nbconvert could not render {page.source}: {type(e).__name__}: {e}") from e
        soup = BeautifulSoup(body, "html.parser")
        if page.markdown:
            _github_heading_ids(soup)
        else:
            _fold(soup, nb)
        _linkify_citations(soup, by_key, page)
        _rewrite_links(soup, page, by_key, repo, where)
        _add_nav(soup, page, prev_page, next_page)
        _share_styles(soup, site, page)
        if not _has_tex(nb):
            _drop_mathjax(soup)
        page.ids = ({t["id"] for t in soup.find_all(id=True)}
                    | {t["name"] for t in soup.find_all("a", attrs={"name": True})})
        target = site / page.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(str(soup), encoding="utf-8")
    index = _index_html(pages)
    (site / "index.html").write_text(index, encoding="utf-8")
    index_soup = BeautifulSoup(index, "html.parser")
    index_page.links = [("a", a["href"]) for a in index_soup.find_all("a", href=True)]
    index_page.ids = {t["id"] for t in index_soup.find_all(id=True)}
    _copy_mathjax(mathjax, site / "static" / "mathjax")
    _check_site(site, [index_page, *pages])
    (site / MARKER).write_text("A book built by boir_core.book (make book); the next build replaces this folder.\n")
    (site / ".nojekyll").write_text("")  # GitHub Pages from a branch: serve the files as they are


def _notebook_title(name: str, nb, lesson: Lesson | None) -> str:
    if lesson is not None:
        return f"{lesson.number} · {lesson.title}"
    for c in nb.cells:
        if c.cell_type == "markdown":
            m = re.search(r"^#\s+(.+)$", c.source, re.M)
            if m:
                return m.group(1).strip()
    return name


def _docs_pages(docs_dir: Path) -> list[tuple[str, Path, str]]:
    """(stem, path, title) of every docs page: README first, then in the order README links them, then the
    others by name."""
    found = {p.stem: p for p in sorted(docs_dir.glob("*.md"))}
    order: list[str] = []
    if "README" in found:
        order.append("README")
        for m in re.finditer(r"\]\(([\w-]+)\.md[)#]", found["README"].read_text(encoding="utf-8")):
            if m.group(1) in found and m.group(1) not in order:
                order.append(m.group(1))
    order += [s for s in found if s not in order]
    out = []
    for stem in order:
        text = found[stem].read_text(encoding="utf-8")
        m = re.search(r"^#\s+(.+?)\s*#*\s*$", text, re.M)
        title = re.sub(r"[`*_]", "", m.group(1)) if m else stem
        out.append((stem, found[stem], title))
    return out


def _docs_notebook(text: str):
    import nbformat  # local: optional (the notebooks extra)

    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(text)])


def _prepare(nb):
    """A copy of the notebook without what needs a live kernel: widget state, and each widget view replaced by
    a note (the explorer's first drawing is an ordinary output above it)."""
    nb = copy.deepcopy(nb)
    nb.metadata.pop("widgets", None)
    for c in nb.cells:
        if c.cell_type != "code":
            continue
        for o in c.get("outputs", []):
            data = o.get("data", {})
            if WIDGET_MIME in data:
                o["data"] = {"text/html": WIDGET_NOTE}
                o["metadata"] = {}
    return nb


def _exporter():
    from jinja2 import DictLoader  # local: optional (nbconvert's dependency), only the book needs it
    from nbconvert import HTMLExporter

    return HTMLExporter(template_name="lab", extra_loaders=[DictLoader({"boir_book.html.j2": TEMPLATE})],
                        template_file="boir_book.html.j2", embed_images=True)


def _github_heading_ids(soup) -> None:
    """The docs' headings get GitHub's ids (what ``docs/<page>.md#<anchor>`` citations name)."""
    seen: dict[str, int] = {}
    for h in soup.find_all(re.compile(r"^h[1-6]$")):
        anchor = h.find("a", class_="anchor-link")
        if anchor is not None:
            anchor.extract()
        slug = github_anchor(h.get_text(), seen)
        h["id"] = slug
        if anchor is not None:
            anchor["href"] = f"#{slug}"
            h.append(anchor)


def _heading_level(source: str) -> int | None:
    m = re.match(r"\s*(?:<a [^>]*></a>\s*)*(#{1,6})\s", source)
    return len(m.group(1)) if m else None


def _fold(soup, nb) -> None:
    """Fold what JupyterLab shows folded: a code cell with ``jupyter.source_hidden`` (with its outputs), and the
    cells under a heading collapsed in JupyterLab (``jp-MarkdownHeadingCollapsed``)."""
    cells = {f"cell-id={c.get('id')}": c for c in nb.cells if c.get("id")}
    divs = [d for d in soup.find_all("div", id=True) if d["id"] in cells and "jp-Cell" in d.get("class", [])]
    for k, div in enumerate(divs):
        cell = cells[div["id"]]
        meta = cell.metadata
        if cell.cell_type == "markdown" and meta.get("jp-MarkdownHeadingCollapsed"):
            level = _heading_level(cell.source) or 6
            section = []
            for later in divs[k + 1:]:
                other = cells[later["id"]]
                lv = _heading_level(other.source) if other.cell_type == "markdown" else None
                if lv is not None and lv <= level:
                    break
                section.append(later)
            if section:
                _wrap(soup, section, "Show this section")
        elif cell.cell_type == "code" and meta.get("jupyter", {}).get("source_hidden"):
            what = "the solution" if "solution" in meta.get("tags", []) else "the code"
            _wrap(soup, [div], f"Show {what}")


def _wrap(soup, divs, summary: str) -> None:
    """Put ``divs`` (cells, in page order) into one folded ``<details>`` where the first of them was."""
    details = soup.new_tag("details", attrs={"class": "boir-book-folded"})
    s = soup.new_tag("summary")
    s.string = summary
    details.append(s)
    divs[0].insert_before(details)
    for d in divs:
        details.append(d.extract())


def _linkify_citations(soup, by_key: dict[str, _Page], page: _Page) -> None:
    """A plain-text ``docs/<page>.md#anchor`` citation becomes a link (in prose, not in code)."""
    from bs4 import NavigableString  # local: optional (see _build_into)

    for text in list(soup.find_all(string=CITATION)):
        if type(text) is not NavigableString:
            continue  # a comment, a script's text, ...
        if any(p.name in NO_LINKIFY for p in text.parents):
            continue
        pieces, last = [], 0
        for m in CITATION.finditer(text):
            key = f"docs/{m.group(1)}"
            if key not in by_key:
                continue
            pieces.append(str(text[last:m.start()]))
            href = _relative(page.path, by_key[key].path) + (f"#{m.group(2)}" if m.group(2) else "")
            a = soup.new_tag("a", href=href)
            a.string = m.group(0)
            pieces.append(a)
            last = m.end()
        if not pieces:
            continue
        pieces.append(str(text[last:]))
        for piece in pieces:
            text.insert_before(piece)
        text.extract()


def _relative(src: str, dst: str) -> str:
    """``dst``'s path as a link from page ``src`` (both site paths)."""
    return posixpath.relpath(dst, posixpath.dirname(src) or ".")


def _rewrite_links(soup, page: _Page, by_key: dict[str, _Page], repo: Path, source_dir: Path) -> None:
    """Links to notebooks and docs pages lead to their pages in the book; what a page loads must be inside it."""
    for a in soup.find_all(["a", "area"], href=True):
        a["href"] = _target(a["href"], page, by_key, repo, source_dir, "link")
        page.links.append(("a", a["href"]))
    for tag, attr in LOADED:
        for t in soup.find_all(tag, attrs={attr: True}):
            value = t[attr]
            if value.startswith("data:"):
                continue
            if tag == "link" and "stylesheet" not in t.get("rel", []) and "icon" not in t.get("rel", []):
                continue
            parts = urlsplit(value)
            if parts.scheme or value.startswith("//"):
                raise BookError(f"{page.key} ({page.source}): <{tag} {attr}={value!r}> would load from the network; "
                                "the book reads offline (embed it, or drop it)")
            page.links.append((tag, value))


def _target(href: str, page: _Page, by_key: dict[str, _Page], repo: Path, source_dir: Path, what: str) -> str:
    parts = urlsplit(href)
    if parts.scheme or href.startswith("//") or not parts.path:
        return href  # another site, mailto:, or an anchor of this page (checked with the others)
    path = unquote(parts.path)
    fragment = f"#{parts.fragment}" if parts.fragment else ""
    key = _source_key(path, repo, source_dir)
    if key is None or key not in by_key:
        shown = key if key is not None else path
        raise BookError(f"{page.key} ({page.source}): the {what} {href!r} leads to {shown!r}, which is not a page of "
                        f"the book (its pages: the executed notebooks and docs/*.md)")
    return _relative(page.path, by_key[key].path) + fragment


#: A link to one of the kit's folders leads to the page that stands for it (GitHub shows a folder's README).
FOLDER_PAGES = {".": "README", "docs": "docs/README", "notebooks": "index"}


def _source_key(path: str, repo: Path, source_dir: Path) -> str | None:
    """The page key a link's path names, read as the sources are laid out (``notebooks/``, ``docs/``, the
    README at the root)."""
    stem, suffix = posixpath.splitext(posixpath.basename(path.rstrip("/")))
    rel_source = source_dir.relative_to(repo).as_posix()
    for base in (rel_source, ""):  # relative to the page's source, then (a citation) to the kit's root
        norm = posixpath.normpath(posixpath.join(base, path))
        if path.endswith("/") or norm in FOLDER_PAGES:
            if norm in FOLDER_PAGES:
                return FOLDER_PAGES[norm]
            continue
        folder = posixpath.dirname(norm)
        if folder == "notebooks" and suffix in (".ipynb", ".py", ".html"):
            return stem
        if folder == "docs" and suffix in (".md", ".html"):
            return f"docs/{stem}"
        if folder == "" and norm in ("README.md", "README.html"):
            return "README"
    return None


def _has_tex(nb) -> bool:
    """Might the page hold TeX (MathJax's delimiters) where MathJax looks: Markdown cells, and Markdown, LaTeX
    and HTML outputs (not printed text, which the page shows in ``<pre>``)?"""
    texts = [c.source for c in nb.cells if c.cell_type == "markdown"]
    texts += ["".join(o.get("data", {}).get(mime, "")) for c in nb.cells if c.cell_type == "code"
              for o in c.get("outputs", []) for mime in ("text/markdown", "text/latex", "text/html")]
    return any(TEX_HINT.search(t) for t in texts)


def _drop_mathjax(soup) -> None:
    """A page without TeX loads no MathJax (it would only cost the reader's browser time)."""
    for script in soup.find_all("script"):
        if "MathJax.js" in script.get("src", "") or script.get("type") == "text/x-mathjax-config":
            script.decompose()


def _share_styles(soup, site: Path, page: _Page) -> None:
    """The template's large style sheets (the same in every page) go to ``static/css/<hash>.css``, linked."""
    for style in soup.find_all("style"):
        text = style.string or ""
        if len(text) < 4096:
            continue
        name = f"static/css/{hashlib.sha256(text.encode()).hexdigest()[:16]}.css"
        out = site / name
        if not out.is_file():
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text, encoding="utf-8")
        href = _relative(page.path, name)
        style.replace_with(soup.new_tag("link", rel="stylesheet", href=href))
        page.links.append(("link", href))


def _add_nav(soup, page: _Page, prev_page: _Page | None, next_page: _Page | None) -> None:
    style = soup.new_tag("style")
    style.string = CSS
    (soup.head or soup).append(style)
    main = soup.find("main") or soup.body
    for where in ("top", "bottom"):
        nav = soup.new_tag("nav", attrs={"class": "boir-book-nav", "id": f"boir-book-nav-{where}"})
        for kind, other, label in (("prev", prev_page, "← "), ("index", None, ""), ("next", next_page, "")):
            if kind == "index":
                link = soup.new_tag("a", href=_relative(page.path, "index.html"), rel="index")
                link.string = "Contents"
            elif other is None:
                link = soup.new_tag("span", attrs={"class": "boir-book-nav-none"})
                link.string = ""
            else:
                link = soup.new_tag("a", href=_relative(page.path, other.path), rel=kind)
                link.string = f"← {other.title}" if kind == "prev" else f"{other.title} →"
            nav.append(link)
        if where == "top":
            main.insert(0, nav)
        else:
            main.append(nav)
        page.links += [("a", a["href"]) for a in nav.find_all("a")]


def _index_html(pages: list[_Page]) -> str:
    notebooks = [p for p in pages if not p.markdown]
    docs = [p for p in pages if p.key.startswith("docs/")]
    kit = [p for p in pages if p.markdown and not p.key.startswith("docs/")]
    esc = html.escape
    items = "\n".join(f'<li><a href="{esc(p.path)}">{esc(p.title)}</a>'
                      + (f'<span class="boir-book-question">{esc(p.question)}</span>' if p.question else "")
                      + "</li>" for p in notebooks)
    refs = "\n".join(f'<li><a href="{esc(p.path)}">{esc(p.title)}</a></li>' for p in docs + kit)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>BoIR Kit · the book</title>
<style>{INDEX_CSS}</style>
</head>
<body>
<main>
<h1 id="boir-kit">BoIR Kit</h1>
<p>A course on BoIR (box-supervised instance representation for multi-person pose estimation, BMVC 2023): the kit's
notebooks, executed, and its reference pages. Every figure was drawn by the run of the notebook shown; to change a
parameter or move an explorer's controls, open the notebooks in JupyterLab (<code>make lab</code>).</p>
<h2 id="the-course">The course</h2>
<ol class="boir-book-course">
{items}
</ol>
<h2 id="reference">Reference</h2>
<ul class="boir-book-docs">
{refs}
</ul>
</main>
</body>
</html>
"""


def _copy_mathjax(static: Path, dest: Path) -> None:
    for pattern in MATHJAX_FILES:
        matches = [p for p in static.glob(pattern) if p.is_file()]
        if not matches:
            raise BookError(f"jupyter-server-mathjax's MathJax has no {pattern} in {static}: reinstall it")
        for src in matches:
            out = dest / src.relative_to(static)
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, out)
    local = dest / "config" / "local" / "book.js"
    local.parent.mkdir(parents=True, exist_ok=True)
    local.write_text(MATHJAX_LOCAL_CONFIG, encoding="utf-8")


def _check_site(site: Path, pages: list[_Page]) -> None:
    """Every link and every loaded file of every page exists in the site, and so does every #anchor."""
    by_path = {p.path: p for p in pages}
    broken = []
    for page in pages:
        for what, href in page.links:
            parts = urlsplit(href)
            if parts.scheme or href.startswith("//"):
                continue
            target = posixpath.normpath(posixpath.join(posixpath.dirname(page.path), unquote(parts.path))) \
                if parts.path else page.path
            if target.startswith("../") or not (site / target).is_file():
                broken.append(f"{page.path}: <{what}> {href!r}: no file {target} in the book")
            elif (parts.fragment and what == "a" and target in by_path
                  and not {parts.fragment, unquote(parts.fragment)} & by_path[target].ids):
                broken.append(f"{page.path}: <{what}> {href!r}: {target} has no anchor #{parts.fragment}")
    if broken:
        raise BookError(f"{len(broken)} broken link(s) in the book: " + "; ".join(broken[:10]))


def _swap(tmp: Path, out_dir: Path) -> None:
    """Put the built site at ``out_dir``, the previous book (if any) kept until the new one is in place."""
    old = None
    if out_dir.exists():
        old = out_dir.parent / f".{out_dir.name}.previous-{os.getpid()}"
        shutil.rmtree(old, ignore_errors=True)
        os.replace(out_dir, old)
    try:
        os.replace(tmp, out_dir)
    except BaseException:
        if old is not None:
            os.replace(old, out_dir)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
