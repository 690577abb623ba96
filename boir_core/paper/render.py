"""Paper-vs-ours tables, in the paper's layout, as markdown.

Every cell we have a result for shows three numbers: the paper's, ours and ours minus the paper's, e.g.
``70.6 / 69.9 (−0.7)``. Ours is rounded to the paper's one decimal first and the difference is taken
between the two printed numbers, so the three always agree. Metrics files hold fractions; they are shown
in percent like the paper. Table 5 reads ``params.inference`` (shown in M) and ``timings.network_ms +
timings.decode_ms`` (ms) and adds the device each time was measured on.

The last column names the metrics file of each row and the preset that produced its weights (``paper``,
``release``, ``release (released weights)``, or a preset plus the switches that depart from it). A row whose
weights were trained with another effective batch than the paper's (one GPU without ``train.accumulate``, say)
is tagged ``[batch]`` in every cell, and the last column says which batch it was.
Rows without a result say which command produces them; rows of other methods say "paper only". Results on
SynthCrowd (``demo``) are tagged ``[demo]`` in every cell and announced by a banner above the table: they
check the pipeline and are not COCO / CrowdPose / OCHuman numbers.

    >>> from boir_core.paper import render_table, load_results
    >>> print(render_table(6, load_results("runs/")))            # doctest: +SKIP
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

from ..data.profiles import PROFILES
from .results import Result, ResultsError, ResultsSource, as_results
from .values import TABLES, Column, Row, Table, get_table, tables_for

__all__ = [
    "Cell",
    "format_number",
    "format_diff",
    "format_cell",
    "table_cells",
    "render_table",
    "render_paper_table",
    "render_all",
    "display_table",
]

MINUS = "−"  # U+2212, as in typeset tables
DEMO_TAG = "[demo]"
#: marks a row whose weights were trained with another effective batch than the paper's
#: (docs/training.md#effective-batch)
OFF_BATCH_TAG = "[batch]"
DATASET_NAMES = {name: p.title for name, p in PROFILES.items()}  # printed names, from the profiles


@dataclass(frozen=True)
class Cell:
    """One numeric cell: the paper's value, ours (``None``: no result) and ours − paper as printed."""

    table: str
    row: Row
    column: Column
    paper: Optional[float]
    ours: Optional[float]
    diff: Optional[float]
    key: Optional[str]
    result: Optional[Result]

    @property
    def demo(self) -> bool:
        return self.result is not None and self.result.demo


def format_number(v: Optional[float]) -> str:
    """One decimal like the paper; '-' for missing."""
    return "-" if v is None else f"{v:.1f}".replace("-", MINUS)


def format_diff(d: float) -> str:
    """Signed difference with one decimal: ``+0.3``, ``−0.7``, ``±0.0``."""
    d = round(d, 1)
    if d == 0:
        return "±0.0"
    return f"+{d:.1f}" if d > 0 else f"{MINUS}{-d:.1f}"


def _diff(paper: Optional[float], ours: Optional[float]) -> Optional[float]:
    if paper is None or ours is None:
        return None
    return round(float(f"{ours:.1f}") - float(f"{paper:.1f}"), 1)


def format_cell(paper: Optional[float], ours: Optional[float], *, has_result: bool = True,
                demo: bool = False) -> str:
    """``paper / ours (diff)``; just the paper's number where we have no result."""
    if not has_result:
        return format_number(paper)
    text = f"{format_number(paper)} / {'n/a' if ours is None else format_number(ours)}"
    d = _diff(paper, ours)
    if d is not None:
        text += f" ({format_diff(d)})"
    return f"{text} {DEMO_TAG}" if demo else text


def _ours(column: Column, result: Result) -> Optional[float]:
    if column.name == "params_M":
        return None if result.params_inference is None else result.params_inference / 1e6
    if column.name == "time_ms":
        return result.time_ms
    return result.percent(column.metric)


def _check_fits(table: Table, column: Column, result: Result) -> None:
    """A real-data result must come from the dataset and split its key claims; demo results are tagged."""
    if result.demo:
        return
    dataset = column.dataset or table.dataset
    split = column.split or table.split
    if result.dataset != dataset:
        raise ResultsError(f"{result.source}: key 'dataset': {result.dataset!r}, but key {result.key!r} "
                           f"fills Table {table.id} ({dataset} {split}); set \"demo\": true for stand-in data")
    if result.split is not None and result.split != split:
        raise ResultsError(f"{result.source}: key 'split': {result.split!r}, but key {result.key!r} "
                           f"fills Table {table.id} ({dataset} {split})")


def table_cells(table: Union[Table, str, int], results: Optional[ResultsSource] = None) -> list[Cell]:
    """Every numeric cell of ``table`` with ours filled from ``results`` (matched by key), row by row."""
    t = table if isinstance(table, Table) else get_table(table)
    res = as_results(results)
    cells = []
    for row in t.rows:
        for col in t.columns:
            key = row.key_for(col)
            result = res.get(key) if key else None
            ours = None
            if result is not None:
                _check_fits(t, col, result)
                ours = _ours(col, result)
            paper = row.values[col.name]
            cells.append(Cell(t.id, row, col, paper, ours, _diff(paper, ours), key, result))
    return cells


# ---------------------------------------------------------------------------------------------------
# markdown

def _esc(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _label_cells(table: Table, row: Row) -> list[str]:
    out = []
    for name in table.label_columns:
        if name == "Method":
            out.append(f"{row.label} {row.ref}".strip())
        elif name == "Backbone":
            out.append(row.backbone or "-")
        elif name == "Input size":
            out.append(row.input_size or "-")
        else:
            v = row.settings.get(name)
            out.append("✓" if v is True else "" if v is False else str(v))
    return out


def _where(table: Table) -> str:
    if table.id == "3":
        return "COCO val, OCHuman val and test"
    return f"{DATASET_NAMES.get(table.dataset, table.dataset)} {table.split}"


def _status(row: Row, results: dict[str, Result], table: Table) -> str:
    if not row.reproducible:
        return "paper only"
    parts = []
    for key in row.run_keys():
        r = results.get(key)
        if r is not None:
            name = r.source.replace("\\", "/").rsplit("/", 1)[-1]
            tag = f" {DEMO_TAG} on {DATASET_NAMES.get(r.dataset, r.dataset)}" if r.demo else ""
            preset = f"preset {r.preset}" if r.preset else "preset not recorded"
            off = (f" {OFF_BATCH_TAG} effective batch {r.effective_batch}, not the paper's {r.paper_effective_batch}"
                   if r.off_paper_batch else "")
            parts.append(f"ours: `{key}` ({name}; {preset}){tag}{off}")
        elif len(row.run_keys()) == 1:
            parts.append(f"no result yet; run `{row.command}`" + (
                f" (all rows: `{table.command}`)" if row.config and table.command else ""))
        else:
            parts.append(f"no `{key}` yet")
    if len(row.run_keys()) > 1 and any(k not in results for k in row.run_keys()):
        parts.append(f"commands: `{row.command}`")
    return "; ".join(parts)


def render_table(table: Union[Table, str, int], results: Optional[ResultsSource] = None, *,
                 heading: bool = True) -> str:
    """One table (or one half of Table 4 / 7) as markdown: paper / ours (diff) per cell."""
    t = table if isinstance(table, Table) else get_table(table)
    res = as_results(results)
    cells = table_cells(t, res)
    by_row: dict[int, list[Cell]] = {}
    for c in cells:
        by_row.setdefault(id(c.row), []).append(c)
    demo = [c.result for c in cells if c.demo]
    lines = []
    if heading:
        part = f" ({t.part})" if t.part else ""
        lines.append(f"#### Table {t.number}{part}: {t.title} ({_where(t)})")
        lines.append("")
    if demo:
        sets = sorted({DATASET_NAMES.get(r.dataset, r.dataset) for r in demo})
        lines.append(f"> **DEMO MODE.** Cells tagged {DEMO_TAG} come from demo runs (data: {', '.join(sets)}; "
                     f"SynthCrowd is synthetic stand-in data), not from the paper's {_where(t)} protocol; they "
                     f"check the pipeline and are not comparable with the paper's numbers.")
        lines.append("")
    units = "%" if all(c.unit == "%" for c in t.columns) else "units as in the header"
    lines.append(f"Cells: paper / ours (ours − paper), {units}; a single number is the paper's.")
    if t.caption:
        lines.append(f"Paper: {t.caption}")
    lines.append("")

    headers = [c.header for c in t.columns]
    if len(set(headers)) < len(headers):  # Table 3's two-level header: "COCO val AP", ...
        headers = [c.name for c in t.columns]
    header = [*t.label_columns, *headers]
    if t.device:
        header.append("Device (paper / ours)")
    header.append("Ours")
    lines.append("| " + " | ".join(_esc(h) for h in header) + " |")
    lines.append("|" + "|".join("---" for _ in header) + "|")
    group = None
    for row in t.rows:
        if row.group is not None and row.group != group:
            group = row.group
            title = {"top-down": "Top-down methods", "bottom-up": "Bottom-up methods",
                     "single-stage": "Single stage methods"}[group]
            lines.append("| " + " | ".join([f"*{title}*"] + [""] * (len(header) - 1)) + " |")
        row_cells = by_row[id(row)]
        out = _label_cells(t, row)
        out += [format_cell(c.paper, c.ours, has_result=c.result is not None, demo=c.demo)
                + (f" {OFF_BATCH_TAG}" if c.result is not None and c.result.off_paper_batch else "")
                for c in row_cells]
        if t.device:
            devs = sorted({c.result.device or "device not recorded" for c in row_cells
                           if c.ours is not None and c.column.name == "time_ms"})
            out.append(f"{t.device} / {', '.join(devs)}" if devs else t.device)
        out.append(_status(row, res, t))
        lines.append("| " + " | ".join(_esc(x) for x in out) + " |")

    notes = []
    for row in t.rows:
        who = f"{row.label} {row.backbone or ''}".strip()
        if row.note:
            notes.append(f"- {who}: {row.note}")
        else:
            for col, v in row.alt_values.items():
                notes.append(f"- {who}, {col}: {format_number(v)} elsewhere "
                             f"(paper: {format_number(row.values[col])}).")
    if notes:
        lines.append("")
        lines.append("Notes:")
        lines.extend(notes)
    return "\n".join(lines) + "\n"


def render_paper_table(number: Union[int, str], results: Optional[ResultsSource] = None) -> str:
    """Paper table ``number`` with all its parts (Tables 4 and 7 have a left and a right table)."""
    res = as_results(results)
    return "\n".join(render_table(t, res) for t in tables_for(number))


def render_all(results: Optional[ResultsSource] = None) -> str:
    """Tables 1-7, in order."""
    res = as_results(results)
    return "\n".join(render_table(t, res) for t in TABLES.values())


def display_table(number: Union[int, str], results: Optional[ResultsSource] = None) -> str:
    """Show paper table ``number`` in a notebook (IPython Markdown); prints it elsewhere. Returns the text."""
    text = render_paper_table(number, results)
    try:
        from IPython.display import Markdown, display  # local: optional, only a notebook displays Markdown
    except ImportError:
        print(text)
    else:
        display(Markdown(text))
    return text
