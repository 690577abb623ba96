"""boir_core.course: the notebooks' order and the map each one opens with."""
from __future__ import annotations

from pathlib import Path

import pytest

from boir_core.course import COURSE, course_map, lesson

REPO = Path(__file__).resolve().parent.parent


def test_the_course_lists_every_notebook_once_in_order():
    on_disk = sorted(p.stem for p in (REPO / "notebooks").glob("[0-9][0-9]_*.py"))
    assert [c.stem for c in COURSE] == on_disk
    assert [c.number for c in COURSE] == [s[:2] for s in on_disk]


def test_the_map_marks_the_current_notebook_and_links_the_others():
    text = course_map("3")
    here = [ln for ln in text.splitlines() if "you are here" in ln]
    assert len(here) == 1 and "03 · The Bbox Mask Loss" in here[0] and "](" not in here[0]
    links = [ln for ln in text.splitlines() if "](" in ln]
    assert len(links) == len(COURSE) - 1
    assert "(01_data_and_targets.ipynb)" in text and "(03_bbox_mask_loss.ipynb)" not in text
    with pytest.raises(KeyError, match="no notebook '08'"):
        lesson("08")


# Every notebook of the course has this shape.
COURSE_SHAPED = ("01", "02", "03", "04", "05", "06", "07")


@pytest.mark.parametrize("number", COURSE_SHAPED)
def test_a_course_notebook_opens_with_its_map_and_goals_and_closes_with_a_recap(number):
    jupytext = pytest.importorskip("jupytext")
    item = lesson(number)
    nb = jupytext.read(REPO / "notebooks" / f"{item.stem}.py")
    cells = nb.cells
    assert cells[0].cell_type == "markdown" and cells[0].source.startswith(f"# {number} ·")
    assert cells[1].cell_type == "code" and f'show_course_map("{number}")' in cells[1].source
    assert any("After this notebook you can" in c.source and "Prerequisites" in c.source for c in cells[2:4])
    assert sum("Predict before you run" in c.source for c in cells if c.cell_type == "markdown") >= 1
    solutions = [c for c in cells if "solution" in c.metadata.get("tags", [])]
    assert len(solutions) >= 2, f"{item.stem}: {len(solutions)} exercise solutions"
    for c in solutions:  # hidden by default, and checked, so a library change that breaks one fails nbval
        assert c.cell_type == "code" and c.metadata.get("jupyter", {}).get("source_hidden") is True
        assert "assert " in c.source
    last = cells[-1]
    assert last.cell_type == "markdown" and "## Recap" in last.source
    later = [c for c in COURSE if c.number > number]
    if later:
        assert f"({later[0].stem}.ipynb)" in last.source
