"""Spreadsheets: .xlsx (openpyxl), .xls (xlrd) and .ods (odfpy), every sheet.

A sheet's table becomes records: each data row rendered with the column headers ("Age band: 30-49 · Plan: Plus ·
Premium (EUR/year): 117"), so a question about one cell retrieves the row that holds it. Each section is cited as
`sheet <name>, row <n>` (the spreadsheet's own row number); a large sheet is grouped into runs of rows (the header
is in every row's text, so it is repeated in every chunk).
"""

from __future__ import annotations

import io
from pathlib import Path

from ingest.loaders import LoadError, Section, _doc
from ingest.office import open_package
from ingest.tables import table_lines

ROWS_ALONE = 200  # up to this many data rows a sheet is cited row by row; larger ones in runs of rows


def _grids_xlsx(raw: bytes) -> list[tuple[str, list[list], int]]:
    import openpyxl

    book = open_package(raw, "Excel workbook", lambda f: openpyxl.load_workbook(f, read_only=True, data_only=True))
    try:
        out = []
        for ws in book.worksheets:
            rows = [list(r) for r in ws.iter_rows(values_only=True)]
            out.append((ws.title, rows, 1))  # openpyxl starts at the sheet's first row: row numbers are exact
        return out
    finally:
        book.close()


def _grids_pandas(raw: bytes, engine: str, what: str) -> list[tuple[str, list[list], int]]:
    import pandas as pd

    try:
        frames = pd.read_excel(io.BytesIO(raw), sheet_name=None, header=None, engine=engine)
    except Exception as e:  # noqa: BLE001 - xlrd/odfpy raise their own classes on damage
        raise LoadError(f"not a readable {what}: {type(e).__name__}: {str(e)[:160]}") from e
    return [(name, df.astype(object).where(df.notna(), None).values.tolist(), 1) for name, df in frames.items()]


def load_sheets(path: Path, raw: bytes, settings):
    suffix = path.suffix.lower()
    if suffix == ".xlsx":
        grids = _grids_xlsx(raw)
    elif suffix == ".xls":
        grids = _grids_pandas(raw, "xlrd", "Excel 97-2003 workbook")
    else:
        grids = _grids_pandas(raw, "odf", "OpenDocument spreadsheet")
    sections = []
    for sheet, grid, first_row in grids:
        lines, index = table_lines(grid)
        if not lines:
            continue
        rows = [first_row + i for i in index]
        step = 1 if len(lines) <= ROWS_ALONE else max(1, settings.chunk_size // max(1, max(map(len, lines))))
        for k in range(0, len(lines), step):
            a, b = rows[k], rows[min(k + step, len(lines)) - 1]
            where = f"row {a}" if a == b else f"rows {a}-{b}"
            sections.append(Section("\n".join(lines[k:k + step]), heading=f"{sheet}",
                                    locator=f"sheet {sheet}, {where}"))
    return [_doc(path, raw, "sheet", path.stem.replace("-", " ").replace("_", " ").title(), sections)]
