"""make test's two pytest-xdist workers: which tests share a worker (tests/conftest.py's scheduler)."""
from __future__ import annotations

import re
from pathlib import Path

from boir_workers import NOTEBOOK_FILES, work_unit

REPO = Path(__file__).resolve().parents[1]
#: what executes a notebook in a test: papermill, the kit's execute_notebook, nbclient, JupyterLab
EXECUTES_NOTEBOOKS = re.compile(r"papermill\.execute_notebook|execute_notebook\(|nbclient|jupyterlab")


def test_a_file_is_one_work_unit_and_the_notebook_files_are_one():
    assert work_unit("tests/engine/test_cli.py::test_x[a::b]") == "tests/engine/test_cli.py"
    assert work_unit("tests/engine/test_cli.py::TestX::test_y") == "tests/engine/test_cli.py"
    for nodeid in ("notebooks/05_inference_and_evaluation.ipynb::Cell 3",
                   "tests/notebooks/test_browser.py::test_notebook_in_jupyterlab[01_data_and_targets]",
                   "tests/paper/test_reproduce.py::test_notebook_06_all_tables_demo"):
        assert work_unit(nodeid) == "notebooks", nodeid


def test_every_test_file_that_executes_notebooks_is_in_the_notebook_unit():
    """Two notebooks running at once on two workers would share runs/notebooks/ and data/synthcrowd."""
    found = [p.relative_to(REPO).as_posix() for p in sorted((REPO / "tests").rglob("test_*.py"))
             if EXECUTES_NOTEBOOKS.search(p.read_text()) and p.name != "test_workers.py"]
    assert found, "the pattern finds nothing: it has gone stale"
    outside = [f for f in found if not f.startswith(NOTEBOOK_FILES)]
    assert not outside, f"{outside} execute notebooks but run beside the notebook unit (NOTEBOOK_FILES)"
