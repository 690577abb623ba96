"""The notebooks in a real JupyterLab, driven in a real Chromium, as a student opens them.

The test starts ``jupyter lab`` on a free loopback port with a token, on a folder whose ``notebooks/`` holds
each notebook (built from its jupytext source, with CI-sized parameters injected the way papermill injects
them). For each notebook it opens ``/lab/tree/notebooks/NN_topic.ipynb?reset`` (so the kernel starts in
``notebooks/``, not in the kit's root), runs all cells from the *Run* menu, waits for the kernel, saves from
the *File* menu and reads the saved notebook: every code cell ran, no error output, every figure is there.
The results are compared with a headless papermill run of the same notebook from the kit's root (the printed
text, digits masked, and the figures per cell). Each explorer (a widget tagged ``boir-explorer``) gets one
slider dragged with the mouse and one dropdown changed through the page, and its drawing (the image bytes)
must change. Screenshots of every notebook and of every explorer before and after go to ``runs/browser/``.
Last, the book (``make book``'s site) is built from the notebooks JupyterLab saved (none runs again) and walked
in Chromium from its index: every page, figure, link and anchor, its equations typeset, nothing from the network.

Chromium is Debian's ``chromium`` (installed here with apt-get when missing and running as root; otherwise
the test is skipped with the reason), driven by Playwright from PyPI through ``executable_path``.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from boir_skips import skip_or_fail_in_ci

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "runs" / "browser"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.py"))
# CI-sized parameters (the notebooks' own defaults are already CPU-sized; these trim the slowest parts). A
# notebook without any runs with its defaults, and nbval then leaves it to this test (runs_notebook_defaults):
# 02 and 07 cost the same at their defaults (02: the shipped demo weights, hrnet_w18_small at 128 px; 07 searches
# 8 images instead of 3), which saves nbval's run of them (43 s of make test on a 2-core AMD EPYC).
# Notebook 06 writes into the test's own results folder (emptied with runs/browser/ at the start), never into
# the user's runs/reproduce/results: what a user ran before (make demo) must not change what the test sees.
CI_PARAMETERS: dict[str, dict] = {
    "05_inference_and_evaluation": {"max_images": 4},
    "06_reproduce_tables": {"table": 3, "demo_images": 2, "demo_train_iters": 2, "overwrite": True,
                            "results_dir": str(OUT / "reproduce_results")},
}
NOTEBOOK_TIMEOUT_S = 900
REDRAW_TIMEOUT_S = 120

pytestmark = pytest.mark.slow


# ---------------------------------------------------------------- set-up: Chromium, Playwright, JupyterLab
def _ensure_chromium() -> Path:
    if CHROMIUM.is_file():
        return CHROMIUM
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        skip_or_fail_in_ci(f"{CHROMIUM} is missing and apt-get cannot install it (not root or no apt-get): "
                    "`apt-get install chromium` as root enables the browser test")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"],
                ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"]):
        r = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if r.returncode != 0:
            skip_or_fail_in_ci(f"`{' '.join(cmd)}` failed ({r.returncode}): {r.stderr.strip()[-300:]}")
    if not CHROMIUM.is_file():
        skip_or_fail_in_ci(f"apt-get installed chromium but {CHROMIUM} is not there")
    return CHROMIUM


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 30.0, tries: int = 4):
    """GET a JSON API; a busy server (2 shared cores, a kernel computing) gets a few patient retries."""
    for attempt in range(tries):
        try:
            with urllib.request.urlopen(url, timeout=timeout) as r:
                return json.loads(r.read().decode())
        except (TimeoutError, OSError) as e:
            if attempt == tries - 1 or (isinstance(e, urllib.error.HTTPError) and e.code < 500):
                raise
            time.sleep(2)


def _request(url: str, method: str) -> None:
    req = urllib.request.Request(url, method=method)
    with urllib.request.urlopen(req, timeout=30):
        pass


def _build(path: Path, dest: Path) -> Path:
    """``dest/NN_topic.ipynb`` from the jupytext source, with the CI parameters injected as papermill does."""
    import jupytext
    import nbformat
    import papermill

    dest.mkdir(parents=True, exist_ok=True)
    out = dest / f"{path.stem}.ipynb"
    nbformat.write(jupytext.read(path), out)
    params = CI_PARAMETERS.get(path.stem)
    if params:
        papermill.execute_notebook(str(out), str(out), parameters=params, prepare_only=True, kernel_name="python3",
                                   progress_bar=False)
    return out


class Lab:
    def __init__(self, root: Path):
        self.root = root
        self.port = _free_port()
        self.token = os.urandom(16).hex()
        self.base = f"http://127.0.0.1:{self.port}"
        settings = root.parent / "lab-settings"
        tracker = settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
        tracker.parent.mkdir(parents=True, exist_ok=True)
        tracker.write_text(json.dumps({"windowingMode": "none"}))  # render every cell (screenshots, widgets)
        news = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
        news.parent.mkdir(parents=True, exist_ok=True)
        news.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
        env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}  # as `make lab`: no forced backend
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), *[p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]])
        env["HF_HUB_OFFLINE"] = "1"
        env["JUPYTER_RUNTIME_DIR"] = str(root.parent / "lab-runtime")  # kernel files and cookie of this server only
        self.log = open(root.parent / "jupyterlab.log", "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", f"--ServerApp.root_dir={root}",
             "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
             f"--IdentityProvider.token={self.token}", f"--LabApp.user_settings_dir={settings}",
             f"--LabApp.workspaces_dir={root.parent / 'lab-workspaces'}", "--LabApp.news_url=",
             *(["--allow-root"] if os.geteuid() == 0 else [])],
            cwd=root, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 120
        while True:
            try:
                self.api("status")
                break
            except Exception:
                if self.proc.poll() is not None or time.time() > deadline:
                    self.close()
                    log = (root.parent / 'jupyterlab.log').read_text()[-2000:]
                    raise RuntimeError(f"jupyter lab did not start; log: {log}")
                time.sleep(0.5)

    def api(self, path: str, **query):
        q = "".join(f"&{k}={v}" for k, v in query.items())
        return _get(f"{self.base}/api/{path}?token={self.token}{q}")

    def saved(self, name: str, content: bool = True) -> dict:
        """The notebook as the server has it on disk (its contents API)."""
        return self.api(f"contents/notebooks/{name}.ipynb", content=int(content))

    def sessions(self, name: str) -> list[dict]:
        return [s for s in self.api("sessions") if s.get("path", "").endswith(f"notebooks/{name}.ipynb")]

    def shutdown_sessions(self) -> None:
        for s in self.api("sessions"):
            _request(f"{self.base}/api/sessions/{s['id']}?token={self.token}", "DELETE")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


@pytest.fixture(scope="module")
def lab():
    pytest.importorskip("playwright.sync_api", reason="Playwright (the dev extra) is not installed")
    _ensure_chromium()
    shutil.rmtree(OUT, ignore_errors=True)
    root = OUT / "lab"
    (root / "notebooks").mkdir(parents=True)
    for p in NOTEBOOKS:
        _build(p, root / "notebooks")
    lab = Lab(root)
    yield lab
    lab.close()


@pytest.fixture(scope="module")
def reference(lab):
    (OUT / "papermill").mkdir(parents=True, exist_ok=True)
    ref = Reference(OUT / "papermill")
    yield ref
    ref.close()


@pytest.fixture(scope="module")
def page(lab):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        pg = browser.new_page(viewport={"width": 1500, "height": 1100})
        yield pg
        browser.close()


# ---------------------------------------------------------------- running a notebook through the UI
def _menu(page, menu: str, command: str) -> None:
    page.locator("#jp-MainMenu .lm-MenuBar-itemLabel", has_text=re.compile(f"^{menu}$")).click()
    page.locator(f'.lm-Menu-item[data-command="{command}"]').first.click()


def _wait_kernel_idle(lab: Lab, name: str, timeout: float, settle: int = 3) -> dict:
    """Wait for the notebook's kernel to be idle ``settle`` polls in a row (1 s apart)."""
    deadline, calm = time.time() + timeout, 0
    while time.time() < deadline:
        ss = lab.sessions(name)
        state = ss[0]["kernel"].get("execution_state") if ss else None
        calm = calm + 1 if state == "idle" else 0
        if calm >= settle:
            return ss[0]
        time.sleep(1)
    raise AssertionError(f"{name}: kernel not idle after {timeout:.0f} s (last state {state!r})")


def _code_cells(nb: dict) -> list[dict]:
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def _errors(nb: dict) -> list[str]:
    return [f"{o.get('ename')}: {o.get('evalue')}" for c in _code_cells(nb) for o in c.get("outputs", [])
            if o.get("output_type") == "error"]


def run_in_lab(page, lab: Lab, name: str) -> dict:
    """Open, run all, wait, save; return the saved notebook (JSON)."""
    page.goto(f"{lab.base}/lab/tree/notebooks/{name}.ipynb?reset&token={lab.token}")
    # the first page load builds JupyterLab's whole front end: minutes on a starved 2-core machine
    page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell").first.wait_for(timeout=600_000)
    _wait_kernel_idle(lab, name, 180, settle=2)
    session = lab.sessions(name)[0]
    assert session["path"] == f"notebooks/{name}.ipynb"
    _menu(page, "Run", "runmenu:run-all")
    deadline = time.time() + NOTEBOOK_TIMEOUT_S
    while True:
        _wait_kernel_idle(lab, name, max(1.0, deadline - time.time()))
        before = lab.saved(name, content=False)["last_modified"]
        _menu(page, "File", "docmanager:save")
        t = time.time()
        while lab.saved(name, content=False)["last_modified"] == before and time.time() - t < 60:
            time.sleep(0.3)
        time.sleep(0.5)
        nb = lab.saved(name)["content"]
        if _errors(nb) or all(c.get("execution_count") for c in _code_cells(nb)):
            return nb
        if time.time() > deadline:
            missing = sum(not c.get("execution_count") for c in _code_cells(nb))
            raise AssertionError(f"{name}: {missing} code cells never ran in JupyterLab")


# The JupyterLab run and the reference run share the kit's run folders (runs/notebooks/..., runs/reproduce/...):
# the second of them finds the first's finished run (same config) and says it resumed it. That line tells the
# order the two ran in, nothing about the results, which must still match line for line.
RUN_ORDER_LINE = re.compile(r"^\[train\] resumed from .*\n?", re.M)


def _signature(nb: dict) -> list[tuple[int, str, int]]:
    """Per code cell: its printed text with digits masked (times differ) and its number of figures."""
    sig = []
    for i, c in enumerate(_code_cells(nb)):
        text = "".join("".join(o.get("text", "")) for o in c.get("outputs", [])
                       if o.get("output_type") == "stream" and o.get("name") == "stdout")
        text = RUN_ORDER_LINE.sub("", text)
        figures = sum("image/png" in o.get("data", {}) for o in c.get("outputs", []))
        sig.append((i, re.sub(r"\d+", "#", text), figures))
    return sig


REFERENCE_SCRIPT = """
import sys, papermill
papermill.execute_notebook(sys.argv[1], sys.argv[2], kernel_name="python3", cwd=sys.argv[3], progress_bar=False)
"""


class Reference:
    """Headless papermill runs of the same notebooks from the kit's root. Notebook N is submitted once its
    JupyterLab run is over (so the two never write the same run folder at once) and runs in the background
    while the browser works on notebook N+1; ``test_same_results_as_from_the_kits_root`` collects them."""

    def __init__(self, out: Path):
        import queue
        import threading

        self.out = out
        self.status: dict[str, str] = {}
        self.todo: "queue.Queue[str | None]" = queue.Queue()
        self.proc = None
        self.worker = threading.Thread(target=self._work, daemon=True)
        self.worker.start()

    def _work(self) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
        while (name := self.todo.get()) is not None:
            src = _build(REPO / "notebooks" / f"{name}.py", self.out / "input")
            with open(self.out / f"{name}.log", "w") as log:
                self.proc = subprocess.Popen([sys.executable, "-c", REFERENCE_SCRIPT, str(src),
                                              str(self.out / f"{name}.ipynb"), str(REPO)],
                                             cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
                rc = self.proc.wait()
            self.status[name] = ("ok" if rc == 0
                                 else f"papermill exited {rc}: {(self.out / f'{name}.log').read_text()[-1500:]}")

    def submit(self, name: str) -> None:
        self.todo.put(name)

    def result(self, name: str, timeout: float = NOTEBOOK_TIMEOUT_S) -> dict:
        deadline = time.time() + timeout
        while name not in self.status:
            if time.time() > deadline:
                raise AssertionError(f"no papermill reference run of {name} after {timeout:.0f} s")
            time.sleep(1)
        assert self.status[name] == "ok", f"{name} from the kit's root: {self.status[name]}"
        return json.loads((self.out / f"{name}.ipynb").read_text())

    def close(self) -> None:
        self.todo.put(None)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.worker.join(30)


# ---------------------------------------------------------------- explorers
DIGEST_JS = """async img => {
    const data = await (await fetch(img.src)).arrayBuffer();
    const d = await crypto.subtle.digest("SHA-256", data);
    return data.byteLength + ":" + Array.from(new Uint8Array(d)).map(b => b.toString(16).padStart(2, "0")).join("");
}"""


def _image_src(explorer) -> str:
    """SHA-256 of the bytes of the explorer's drawing (its Image widget), as the page has them."""
    img = explorer.locator("img.widget-image").last
    img.wait_for(timeout=60_000)
    return img.evaluate(DIGEST_JS)


def _wait_changed(explorer, before: str, what: str) -> str:
    deadline = time.time() + REDRAW_TIMEOUT_S
    while time.time() < deadline:
        now = _image_src(explorer)
        if now and now != before:
            return now
        time.sleep(0.5)
    raise AssertionError(f"the drawing did not change after {what}")


def drive_explorers(page, name: str) -> int:
    explorers = page.locator(".boir-explorer")
    n = explorers.count()
    for k in range(n):
        ex = explorers.nth(k)
        ex.scroll_into_view_if_needed()
        tag = f"{name}_explorer{k}"
        ex.screenshot(path=str(OUT / f"{tag}_0_before.png"))
        src = _image_src(ex)
        # drag the first slider's handle a quarter of the track to the right, as a hand would
        slider = ex.locator(".widget-slider").first
        handle = slider.locator(".noUi-handle").first
        track = slider.locator(".noUi-target").first
        handle.scroll_into_view_if_needed()  # a tall explorer: its top is in view, its sliders may not be
        time.sleep(0.3)
        hb, tb = handle.bounding_box(), track.bounding_box()
        x0, y0 = hb["x"] + hb["width"] / 2, hb["y"] + hb["height"] / 2
        x1 = x0 + tb["width"] / 4 if x0 + tb["width"] / 4 < tb["x"] + tb["width"] else x0 - tb["width"] / 4
        page.mouse.move(x0, y0)
        page.mouse.down()
        page.mouse.move(x1, y0, steps=8)
        page.mouse.up()
        src = _wait_changed(ex, src, f"dragging the first slider of explorer {k} in {name}")
        ex.screenshot(path=str(OUT / f"{tag}_1_slider.png"))
        # change the first dropdown to another option
        select = ex.locator(".widget-dropdown select").first
        options = select.locator("option").all_inner_texts()
        current = select.input_value()
        values = [o.get_attribute("value") for o in select.locator("option").all()]
        other = next(v for v in values if v != current)
        select.select_option(value=other)
        _wait_changed(ex, src, f"choosing {other!r} (of {options}) in explorer {k} of {name}")
        ex.screenshot(path=str(OUT / f"{tag}_2_dropdown.png"))
    return n


# ---------------------------------------------------------------- the test
EXPLORERS = {"01_data_and_targets": 2, "03_bbox_mask_loss": 4, "05_inference_and_evaluation": 2,
             "07_representations": 1}


# A notebook run here with no CI parameters is run with its defaults, kernel in notebooks/: nbval leaves it to
# this test (tests/conftest.py) rather than executing it once more.
@pytest.mark.parametrize("path", [p if p.stem in CI_PARAMETERS else
                                  pytest.param(p, marks=pytest.mark.runs_notebook_defaults(p.stem))
                                  for p in NOTEBOOKS], ids=lambda p: p.stem)
def test_notebook_in_jupyterlab(path, lab, page, reference):
    name = path.stem
    t0 = time.time()
    try:
        nb = run_in_lab(page, lab, name)
        page.screenshot(path=str(OUT / f"{name}.png"), full_page=True)
        errors = _errors(nb)
        assert not errors, f"{name} in JupyterLab: {errors[0]}"
        t_run = time.time() - t0
        # the figures are ordinary outputs of the saved notebook (static renders show them)
        figures = sum(s[2] for s in _signature(nb))
        assert figures > 0 or name == "06_reproduce_tables", f"{name}: no figure in the saved notebook"
        n = drive_explorers(page, name)
        assert n == EXPLORERS.get(name, 0), f"{name}: {n} explorers on the page, expected {EXPLORERS.get(name, 0)}"
        t_explore = time.time() - t0 - t_run
    finally:
        lab.shutdown_sessions()
    # nothing was written next to the notebooks: every path resolved against the kit's root
    stray = sorted(p.name for p in (lab.root / "notebooks").iterdir()
                   if not p.name.endswith(".ipynb") and p.name != ".ipynb_checkpoints")
    assert not stray, f"{name} wrote {stray} into notebooks/ (a path relative to the working folder)"
    LAB_RESULTS[name] = nb
    reference.submit(name)
    with open(OUT / "timings.jsonl", "a") as f:
        f.write(json.dumps({"notebook": name, "lab_run_s": round(t_run, 1), "explorers_s": round(t_explore, 1)}) + "\n")


LAB_RESULTS: dict[str, dict] = {}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_same_results_as_from_the_kits_root(path, reference):
    """The notebook run in JupyterLab (kernel in notebooks/) prints the same things (digits masked: times
    differ) and draws the same number of figures per cell as papermill from the kit's root."""
    name = path.stem
    if name not in LAB_RESULTS:
        pytest.fail(f"{name} did not complete in JupyterLab (see test_notebook_in_jupyterlab)")
    t = time.time()
    ref = reference.result(name)
    assert not _errors(ref), f"{name} from the kit's root: {_errors(ref)[0]}"
    lab_sig, ref_sig = _signature(LAB_RESULTS[name]), _signature(ref)
    assert len(lab_sig) == len(ref_sig)
    for lab_cell, root_cell in zip(lab_sig, ref_sig):
        assert lab_cell == root_cell, f"{name}: cell {lab_cell[0]} differs between JupyterLab and the kit's root"
    with open(OUT / "timings.jsonl", "a") as f:
        f.write(json.dumps({"notebook": name, "waited_for_papermill_s": round(time.time() - t, 1)}) + "\n")


# ---------------------------------------------------------------- the book, from the notebooks run above
# make book's site (boir_core.book) built from the notebooks JupyterLab ran and saved above: no notebook runs
# again. Chromium walks it from its index page to every page it links, from file:// as a reader would open it.
BOOK = OUT / "book"
BOOK_TIMEOUT_MS = 60_000
#: TeX in a page's rendered Markdown (what MathJax typesets): $$...$$, \(, \[, \begin{, or $...$ on one line
TEX = re.compile(r"\$\$.+?\$\$|\\\(|\\\[|\\begin\{|(?<![\\$\w])\$(?=\S)[^$\n]+?(?<=\S)\$", re.S)
LOCAL_SCHEMES = ("file", "data", "about", "blob")
BOOK_PAGE_JS = """() => ({
    images: Array.from(document.images).map(i => ({src: i.src.slice(0, 100), loaded: i.complete && i.naturalWidth > 0,
                                                    png: i.src.startsWith("data:image/png")})),
    links: Array.from(document.querySelectorAll("a[href]")).map(a => a.href),
    ids: Array.from(document.querySelectorAll("[id]")).map(e => e.id)
           .concat(Array.from(document.querySelectorAll("a[name]")).map(e => e.name)),
    math: window.MathJax && MathJax.Hub ? {
        ready: !!MathJax.isReady, jax: MathJax.Hub.getAllJax().length,
        typeset: document.querySelectorAll(".MathJax, .MathJax_Display").length,
        errors: document.querySelectorAll(".MathJax_Error, .merror").length,
        font: MathJax.OutputJax["HTML-CSS"] ? MathJax.OutputJax["HTML-CSS"].fontInUse : null} : null,
})"""
#: MathJax (where a page loads it) has started and typeset everything it found
MATHJAX_DONE_JS = """() => !window.MathJax || (MathJax.isReady === true && MathJax.Hub.queue.pending === 0
                                                && !MathJax.Hub.queue.running)"""


def _tex_in(path: Path) -> int:
    """How many TeX formulas the page holds where MathJax looks (rendered Markdown and HTML, not code)."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")
    for t in soup.find_all(["code", "pre", "script", "style"]):
        t.decompose()
    return sum(len(TEX.findall(d.get_text())) for d in soup.select(".jp-RenderedMarkdown, .jp-RenderedHTMLCommon"))


def walk_book(page, index: Path) -> dict:
    """Visit every page reachable from ``index``; return what each showed and every request the browser made."""
    from urllib.parse import unquote, urlsplit

    requests, failed = [], []
    on_request = lambda r: requests.append(r.url)  # noqa: E731
    on_failed = lambda r: failed.append(f"{r.url} ({r.failure})")  # noqa: E731
    page.on("request", on_request)
    page.on("requestfailed", on_failed)
    seen: dict[str, dict] = {}
    todo = [index.resolve().as_uri()]
    try:
        while todo:
            url = todo.pop(0)
            page.goto(url, wait_until="load", timeout=BOOK_TIMEOUT_MS)
            page.wait_for_function(MATHJAX_DONE_JS, timeout=BOOK_TIMEOUT_MS)
            seen[url] = page.evaluate(BOOK_PAGE_JS)
            for link in seen[url]["links"]:
                parts = urlsplit(link)
                target = parts._replace(fragment="").geturl()
                if (parts.scheme == "file" and target.endswith(".html") and target not in seen and target not in todo
                        and Path(unquote(parts.path)).is_file()):  # a missing page: book_problems names it
                    todo.append(target)
    finally:
        page.remove_listener("request", on_request)
        page.remove_listener("requestfailed", on_failed)
    return {"pages": seen, "requests": requests, "failed": failed}


def book_problems(index: Path, walk: dict) -> list[str]:
    """Images not loaded, links to a missing file or #anchor, TeX not typeset, requests off the machine."""
    from urllib.parse import unquote, urlsplit

    problems = []
    site = index.parent.resolve()
    ids = {url: set(state["ids"]) for url, state in walk["pages"].items()}
    for url, state in walk["pages"].items():
        path = Path(unquote(urlsplit(url).path))
        name = path.relative_to(site).as_posix()
        problems += [f"{name}: image not loaded: {i['src']}" for i in state["images"] if not i["loaded"]]
        for link in state["links"]:
            parts = urlsplit(link)
            if parts.scheme != "file":
                continue
            target = parts._replace(fragment="").geturl()
            if not Path(unquote(parts.path)).is_file():
                problems.append(f"{name}: link to a missing file {link}")
            elif parts.fragment and target in ids and not {parts.fragment, unquote(parts.fragment)} & ids[target]:
                problems.append(f"{name}: link to a missing anchor {link}")
        tex, math = _tex_in(path), state["math"]
        if tex and math is None:
            problems.append(f"{name}: {tex} TeX formulas but no MathJax")
        elif tex and not (math["ready"] and math["jax"] >= 1 and math["typeset"] >= math["jax"] and not math["errors"]
                          and math["font"] == "STIX-Web"):
            problems.append(f"{name}: {tex} TeX formulas, MathJax: {math}")
    problems += [f"request left the machine: {u}" for u in walk["requests"]
                 if urlsplit(u).scheme not in LOCAL_SCHEMES]
    problems += [f"request failed: {u}" for u in walk["failed"]]
    return problems


def test_the_book_of_the_executed_notebooks_reads_offline_in_chromium(lab, page):
    """The book of the notebooks saved by JupyterLab above, walked from its index: every page visited, every
    figure loaded (each notebook's PNG outputs all on its page), every local link's file and #anchor there,
    MathJax typesetting each page whose Markdown holds TeX, and no request leaving the machine."""
    from boir_core.book import build_book

    missing = [p.stem for p in NOTEBOOKS if p.stem not in LAB_RESULTS]
    if missing:
        pytest.fail(f"{missing} did not complete in JupyterLab (test_notebook_in_jupyterlab): no book without them")
    t0 = time.time()
    index = build_book({name: lab.root / "notebooks" / f"{name}.ipynb" for name in LAB_RESULTS}, BOOK)
    t_build = time.time() - t0
    # a page of its own (the fixture's page has JupyterLab's): only the book's requests, no JupyterLab state
    reader = page.context.browser.new_page(viewport={"width": 1500, "height": 1100})
    try:
        walk = walk_book(reader, index)
        reader.goto(index.resolve().as_uri())
        reader.screenshot(path=str(OUT / "book_index.png"), full_page=True)
    finally:
        reader.close()
    docs = sorted((REPO / "docs").glob("*.md"))
    expected = {index.resolve().as_uri(), *((BOOK / f"{p.stem}.html").resolve().as_uri() for p in NOTEBOOKS),
                *((BOOK / "docs" / f"{p.stem}.html").resolve().as_uri() for p in docs),
                (BOOK / "README.html").resolve().as_uri()}
    assert set(walk["pages"]) == expected, f"pages visited from the index: {sorted(walk['pages'])}"
    problems = book_problems(index, walk)
    assert not problems, f"{len(problems)} problem(s) in the book: " + "; ".join(problems[:10])
    for name, nb in LAB_RESULTS.items():
        figures = sum("image/png" in o.get("data", {}) for c in _code_cells(nb) for o in c.get("outputs", []))
        shown = sum(i["png"] for i in walk["pages"][(BOOK / f"{name}.html").resolve().as_uri()]["images"])
        assert shown >= figures, f"{name}: {figures} figures in the notebook, {shown} on its page of the book"
    with open(OUT / "timings.jsonl", "a") as f:
        f.write(json.dumps({"book_build_s": round(t_build, 1), "book_walk_s": round(time.time() - t0 - t_build, 1),
                            "book_pages": len(walk["pages"])}) + "\n")
