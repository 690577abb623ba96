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
