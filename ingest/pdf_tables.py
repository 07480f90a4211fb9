"""Tables inside PDFs (benefit schedules), found by pdfplumber and rendered as header: value rows, so that columns do
not merge as they do in a plain text extraction. Added beside the page's running text, with its page number."""

from __future__ import annotations

import io
import logging

from ingest.loaders import Section
from ingest.tables import table_lines

logging.getLogger("pdfminer").setLevel(logging.ERROR)


def table_sections(raw: bytes, pages: set[int]) -> list[Section]:
    import pdfplumber

    out = []
    try:
        with pdfplumber.open(io.BytesIO(raw)) as pdf:
            for n, page in enumerate(pdf.pages, start=1):
                if n not in pages:
                    continue
                for k, table in enumerate(page.extract_tables(), start=1):
                    lines, _ = table_lines(table)
                    if len(lines) >= 1 and len(table) >= 2:
                        out.append(Section("\n".join(lines), page=n, heading=f"Table {k} (page {n})",
                                           locator=f"page {n}, table {k}"))
    except Exception:  # noqa: BLE001 - tables are extra: the page text is already in; a pdfplumber failure loses nothing
        logging.getLogger(__name__).warning("table extraction failed", exc_info=True)
    return out
