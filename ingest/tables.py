"""Tables as text a retriever can match and a reader can cite: each row rendered with its column headers
("Age band: 30-49 · Plan: Plus · Premium: 117 EUR/year"), so a question about one cell finds the row that holds it.
Shared by the Word, spreadsheet and PDF-table loaders."""

from __future__ import annotations


def cell_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return " ".join(str(value).split())


def header_row(rows: list[list[str]]) -> int | None:
    """Index of the first row with at least two non-empty cells (a title row above a table is skipped)."""
    for i, row in enumerate(rows):
        if sum(1 for c in row if c) >= 2:
            return i
    return None


def render_rows(header: list[str], rows: list[list[str]]) -> list[str]:
    """One line per data row: `header: value` pairs joined by ' · ' (empty cells left out); a row with no header
    (a one-column table) is its cells joined."""
    names = [h or f"column {i + 1}" for i, h in enumerate(header)]
    out = []
    for row in rows:
        pairs = [f"{names[i] if i < len(names) else f'column {i + 1}'}: {v}" for i, v in enumerate(row) if v]
        if pairs:
            out.append(" · ".join(pairs))
    return out


def table_lines(grid: list[list]) -> tuple[list[str], list[int]]:
    """(rendered rows, their indexes in `grid`): the header row found, every later row rendered with it."""
    rows = [[cell_text(c) for c in r] for r in grid]
    h = header_row(rows)
    if h is None:
        lines = [" · ".join(c for c in r if c) for r in rows]
        return [ln for ln in lines if ln], [i for i, ln in enumerate(lines) if ln]
    lines, index = [], []
    for i in range(h + 1, len(rows)):
        rendered = render_rows(rows[h], [rows[i]])
        if rendered:
            lines.append(rendered[0])
            index.append(i)
    return lines, index
