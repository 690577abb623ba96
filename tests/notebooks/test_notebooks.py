"""Every numbered notebook is built from its jupytext .py file and executed headless with papermill.

The committed form of a notebook is the percent-format .py file; this test builds the .ipynb (as
`make notebooks` does), checks the conventions (one `parameters` cell, kernel python3, no sys.path
patching) and executes it with its CPU defaults, exactly as a researcher's papermill run would.
"""
from __future__ import annotations

import re
from pathlib import Path

import jupytext
import nbformat
import papermill
import pytest

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.py"))

# Extra papermill parameters for CI (smaller than the notebooks' own CPU defaults where useful).
CI_PARAMETERS: dict[str, dict] = {}


def _load(path: Path) -> nbformat.NotebookNode:
    return jupytext.read(path)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_conventions(path):
    nb = _load(path)
    tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: exactly one cell must be tagged 'parameters' (found {len(tagged)})"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", f"{path.name}: kernel must be python3"
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert not re.search(r"sys\.path\.(insert|append)", code), f"{path.name} patches sys.path"
    assert re.match(r"\d\d_[a-z0-9_]+$", path.stem), f"{path.name}: notebooks are named NN_topic"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes(path, tmp_path):
    nb = _load(path)
    src = tmp_path / f"{path.stem}.ipynb"
    nbformat.write(nb, src)
    out = tmp_path / f"{path.stem}.out.ipynb"
    papermill.execute_notebook(str(src), str(out), parameters=CI_PARAMETERS.get(path.stem, {}),
                               kernel_name="python3", cwd=str(REPO), progress_bar=False)
    executed = nbformat.read(out, as_version=4)
    errors = [o for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors, f"{path.name}: {errors[0].get('ename')}: {errors[0].get('evalue')}"
    n_code = sum(c.cell_type == "code" for c in executed.cells)
    n_run = sum(c.cell_type == "code" and c.get("execution_count") is not None for c in executed.cells)
    assert n_run >= n_code - 1, f"{path.name}: only {n_run} of {n_code} code cells ran"
