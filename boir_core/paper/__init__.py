"""boir_core.paper: the paper's Tables 1-7 as data, our metrics files, and paper-vs-ours tables.

- :mod:`~boir_core.paper.values`: every number of Tables 1-7 (:class:`Table`, :class:`Row`, :class:`Column`),
  with the run ``key`` and the ``command`` that reproduce each of our rows.
- :mod:`~boir_core.paper.results`: :func:`load_results` reads metrics JSON files into :class:`Result` s.
- :mod:`~boir_core.paper.render`: :func:`render_table` / :func:`display_table` show paper / ours (diff).

This room only reads results; it imports nothing from the rest of the kit.
"""
from .render import (
    Cell,
    display_table,
    format_cell,
    format_diff,
    format_number,
    render_all,
    render_paper_table,
    render_table,
    table_cells,
)
from .results import DATASETS, DEMO_DATASETS, Result, ResultsError, as_results, load_results, parse_result
from .values import (
    ABLATION_KEYS,
    GROUPS,
    TABLES,
    Column,
    Row,
    Table,
    all_keys,
    get_table,
    rows_for_key,
    tables_for,
)

__all__ = [
    "ABLATION_KEYS", "GROUPS", "TABLES", "Column", "Row", "Table", "all_keys", "get_table", "rows_for_key",
    "tables_for",
    "DATASETS", "DEMO_DATASETS", "Result", "ResultsError", "as_results", "load_results", "parse_result",
    "Cell", "display_table", "format_cell", "format_diff", "format_number", "render_all",
    "render_paper_table", "render_table", "table_cells",
]
