"""The paper values in ``boir_core.paper.values`` against the paper text itself.

The paper text (``BOIR_PAPER_TEXT``: the file or its folder; default ``../shared/seeds/002_*.txt`` from the
repository root) is parsed here on its own: its markdown tables are split into cells and every row of every
table is compared with the transcription (labels, group, every number, '-' as None).
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from boir_core.paper import values as V

REPO = Path(__file__).resolve().parents[2]


def _paper_text_path() -> Path | None:
    env = os.environ.get("BOIR_PAPER_TEXT")
    p = Path(env) if env else REPO.parent / "shared" / "seeds"
    if p.is_dir():
        found = sorted(p.glob("002_*.txt"))
        return found[0] if found else None
    return p if p.is_file() else None


@pytest.fixture(scope="module")
def paper_tables() -> dict[int, dict]:
    path = _paper_text_path()
    if path is None:
        from boir_skips import skip_or_fail_in_ci

        skip_or_fail_in_ci("paper text not found: set BOIR_PAPER_TEXT to shared/seeds/002_*.txt")
    return _parse_markdown_tables(path.read_text(encoding="utf-8"))


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _parse_markdown_tables(text: str) -> dict[int, dict]:
    """{table number: {"header": [...], "rows": [[cells]], "caption": str}}: each block of '|' lines is
    matched with the first 'Table N:' caption that follows it."""
    lines = text.splitlines()
    out: dict[int, dict] = {}
    i = 0
    while i < len(lines):
        if not lines[i].lstrip().startswith("|"):
            i += 1
            continue
        block = []
        while i < len(lines) and lines[i].lstrip().startswith("|"):
            block.append(_cells(lines[i]))
            i += 1
        caption = None
        for j in range(i, min(i + 6, len(lines))):
            m = re.match(r"\s*Table (\d+):\s*(.*)", lines[j])
            if m:
                caption = (int(m.group(1)), m.group(2))
                break
        assert caption is not None, f"markdown table ending at line {i} has no caption"
        header, rows = block[0], [r for r in block[1:] if not all(set(c) <= set("-: ") and c for c in r)]
        out[caption[0]] = {"header": header, "rows": rows, "caption": caption[1]}
    return out


def _num(cell: str):
    return None if cell == "-" else float(cell)


def _norm(s: str) -> str:
    return re.sub(r"\s+", "", s)


def _values(table: V.Table, row: V.Row) -> list:
    return [row.values[c.name] for c in table.columns]


def _group_of(cell: str) -> str:
    return cell.lower().replace(" methods", "").replace(" ", "-")


def _split_groups(rows: list[list[str]]) -> list[tuple[str | None, list[str]]]:
    """Data rows with the group header ('Top-down methods', ...) each falls under."""
    group, out = None, []
    for r in rows:
        if r[0].endswith("methods") and not any(r[1:]):
            group = _group_of(r[0])
        else:
            out.append((group, r))
    return out


def test_every_table_is_parsed(paper_tables):
    assert sorted(paper_tables) == [1, 2, 3, 4, 5, 6, 7]
    assert sorted({t.number for t in V.TABLES.values()}) == [1, 2, 3, 4, 5, 6, 7]


@pytest.mark.parametrize("number", [1, 2, 6])
def test_method_tables_match_paper_text(paper_tables, number):
    table = V.get_table(number)
    text = paper_tables[number]
    n_labels = len(table.label_columns)
    assert [_norm(h) for h in text["header"][:n_labels]] == [_norm(h) for h in table.label_columns]
    assert [_norm(h) for h in text["header"][n_labels:]] == [_norm(c.header) for c in table.columns]
    rows = _split_groups(text["rows"])
    assert table.shape == (len(rows), len(text["header"]) - n_labels)
    for (group, cells), row in zip(rows, table.rows):
        where = f"Table {number} row {cells[:3]}"
        assert cells[0] == f"{row.label} {row.ref}".strip(), where
        assert cells[1] == row.backbone, where
        assert _num(cells[2]) is None if row.input_size is None else cells[2] == row.input_size, where
        assert row.group == group, where
        assert [_num(c) for c in cells[n_labels:]] == _values(table, row), where


def test_table3_matches_paper_text(paper_tables):
    table, text = V.get_table(3), paper_tables[3]
    # two-line header: dataset names spanning two columns, then AP / AR
    top, sub, data = text["header"], text["rows"][0], text["rows"][1:]
    assert sub[:2] == ["", ""]
    spans, current = [], ""
    for cell in top[2:]:
        current = cell or current
        spans.append(current)
    names = [f"{span} {metric}" for span, metric in zip(spans, sub[2:])]
    assert list(table.column_names) == names
    assert table.shape == (len(data), len(names))
    for cells, row in zip(data, table.rows):
        assert cells[0] == f"{row.label} {row.ref}".strip()
        assert cells[1] == row.backbone
        assert [_num(c) for c in cells[2:]] == _values(table, row), cells


def test_table5_matches_paper_text(paper_tables):
    table, text = V.get_table(5), paper_tables[5]
    assert [_norm(h) for h in text["header"]] == [_norm(h) for h in
                                                  (*table.label_columns, *(c.header for c in table.columns))]
    assert table.shape == (len(text["rows"]), len(text["header"]) - 2)
    for cells, row in zip(text["rows"], table.rows):
        assert cells[:2] == [row.label, row.backbone]
        assert [_num(c) for c in cells[2:]] == _values(table, row), cells
    # the device the paper timed on
    assert "RTX 3090" in text["caption"] and "1 batch" in text["caption"]
    assert "RTX 3090" in table.device and "batch 1" in table.device


def _setting(cell: str, like):
    if isinstance(like, bool):
        assert cell in ("", "✓"), cell
        return cell == "✓"
    if isinstance(like, (int, float)):
        return float(cell)
    return cell


@pytest.mark.parametrize("number", [4, 7])
def test_side_by_side_tables_match_paper_text(paper_tables, number):
    text = paper_tables[number]
    left, right = V.get_table(f"{number}L"), V.get_table(f"{number}R")
    width = len(text["header"]) // 2
    for part, table in ((slice(0, width), left), (slice(width, 2 * width), right)):
        header = text["header"][part]
        n_labels = len(table.label_columns)
        assert [_norm(h) for h in header] == [_norm(h) for h in (*table.label_columns,
                                                                  *(c.header for c in table.columns))]
        # a side's row is present when it has any number in it
        rows = [r[part] for r in text["rows"] if any(c not in ("", "-") for c in r[part][n_labels:])]
        assert table.shape == (len(rows), width - n_labels)
        for cells, row in zip(rows, table.rows):
            got = [_setting(c, row.settings[name]) for c, name in zip(cells, table.label_columns)]
            assert got == [row.settings[name] for name in table.label_columns], (table.id, cells)
            assert [_num(c) for c in cells[n_labels:]] == _values(table, row), (table.id, cells)


def test_titles_come_from_captions(paper_tables):
    for table in V.TABLES.values():
        caption = re.sub(r"[*$]", "", paper_tables[table.number]["caption"]).replace("\\beta", "β")
        assert _norm(table.title) in _norm(caption), table.id


# --- structure that does not need the paper text --------------------------------------------------

def test_ablation_rows_name_their_configs():
    keys = [r.key for tid in ("4L", "4R", "7L", "7R") for r in V.get_table(tid).rows]
    assert keys == list(V.ABLATION_KEYS)
    for tid in ("4L", "4R", "7L", "7R"):
        for row in V.get_table(tid).rows:
            assert row.config == f"configs/ablations/{row.key}.yaml"
            assert row.config in row.command
    assert V.get_table("7L").rows[0].key == "t7_beta_0.5"
    assert V.get_table("7R").rows[-1].settings == {"Emb. Dim": 128}


def test_keys_and_commands():
    for table in V.TABLES.values():
        seen = set()
        for row in table.rows:
            if row.reproducible:
                assert row.command, (table.id, row.label, row.backbone)
                for k in row.run_keys():  # the command records the key in the metrics file
                    assert f"--key {k}" in row.command, (table.id, k)
                for col in table.columns:
                    k = row.key_for(col)
                    assert k is None or k in row.run_keys()
                assert not (seen & set(row.run_keys())), f"key repeated in Table {table.id}"
                seen |= set(row.run_keys())
            else:
                # only BoIR and CID are run by the kit
                assert row.command is None and row.method not in ("BoIR",), (table.id, row.label)
    assert V.get_table(6).row("boir_w32_coco_val").values["AP"] == 70.6
    assert V.get_table(2).row("boir_w48_crowdpose_finetune_test").marks == "*"
    assert "configs/coco_w32.yaml" in V.get_table(6).row("boir_w32_coco_val").command
    t3 = V.get_table(3)
    boir = t3.row("boir_w32_ochuman_test")
    assert boir.key_for(t3.column("OCHuman test AR")) == "boir_w32_ochuman_test"
    assert boir.key_for(t3.column("COCO val AP")) == "boir_w32_coco_val"
    # docs/release_vs_paper.md#paper-inconsistencies: README numbers kept apart from the paper's
    cid = t3.row("cid_w32_ochuman_val")
    assert cid.values["OCHuman val AP"] == 44.9 and cid.alt_values["OCHuman val AP"] == 45.7
    assert "README" in cid.note
    assert {r.key for _, r in V.rows_for_key("boir_w32_coco_val")} == {"boir_w32_coco_val"}
    assert {t.id for t, _ in V.rows_for_key("boir_w32_coco_val")} == {"3", "5", "6"}


def test_lookup_errors_name_the_table():
    with pytest.raises(KeyError, match="4L"):
        V.get_table(4)
    with pytest.raises(KeyError, match="'9'"):
        V.get_table("9")
    assert [t.id for t in V.tables_for(7)] == ["7L", "7R"]
    with pytest.raises(KeyError, match="no row with key 'nope'"):
        V.get_table(1).row("nope")


def test_values_are_read_only():
    row = V.get_table(1).rows[0]
    with pytest.raises(TypeError):
        row.values["AP"] = 0.0  # type: ignore[index]
