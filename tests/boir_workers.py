"""make test's two pytest-xdist workers: what one worker runs as a whole (tests/conftest.py's scheduler).

A module of its own, not in conftest.py: ``from conftest import ...`` finds whichever conftest.py comes first on
``sys.path`` (tests/model/ has one too)."""
from __future__ import annotations

#: Test files that execute notebooks (JupyterLab, papermill, nbval): under pytest-xdist they run one after the
#: other on one worker, as without xdist, since the notebooks share folders of the checkout (runs/notebooks/,
#: data/synthcrowd) and the browser test's two runs of a notebook compare their outputs.
NOTEBOOK_FILES = ("tests/notebooks/", "tests/paper/test_reproduce.py", "notebooks/")


def work_unit(nodeid: str) -> str:
    """What one pytest-xdist worker runs as a whole: a test's file (its module fixtures are built once), or
    ``notebooks`` for every file that executes notebooks."""
    path = nodeid.split("::", 1)[0]
    return "notebooks" if path.startswith(NOTEBOOK_FILES) else path
