"""Word (.docx) and PowerPoint (.pptx) files, read with python-docx and python-pptx.

Word: headings (styles Title, Heading 1-9) become Markdown headings, so chunks carry their section path and are
cited by document and section; tables become one line per row with the column headers. PowerPoint: one section per
slide (its title, text frames, tables and speaker notes), cited by slide number.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

from ingest.clean import normalize_text
from ingest.loaders import LoadError, Section, _doc
from ingest.tables import table_lines

OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # a password-protected OOXML file is an encrypted OLE container


def open_package(raw: bytes, what: str, opener):
    if raw.startswith(OLE_MAGIC):
        raise LoadError(f"{what} is password-protected (encrypted) or in the old binary format: save it unprotected "
                        "as .docx/.pptx/.xlsx")
    if not zipfile.is_zipfile(io.BytesIO(raw)):
        raise LoadError(f"not a readable {what}: corrupt or truncated (the file is not a valid Office package)")
    try:
        return opener(io.BytesIO(raw))
    except Exception as e:  # noqa: BLE001 - python-docx/pptx raise KeyError, ValueError, lxml errors on damage
        raise LoadError(f"not a readable {what}: {type(e).__name__}: {str(e)[:160]}") from e


def _heading_level(style_name: str) -> int | None:
    if style_name == "Title":
        return 1
    m = re.match(r"Heading (\d)", style_name or "")
    return int(m.group(1)) if m else None


def load_docx(path: Path, raw: bytes, settings):
    import docx
    from docx.table import Table

    document = open_package(raw, "Word document", docx.Document)
    lines, first_heading = [], ""
    try:
        for block in document.iter_inner_content():
            if isinstance(block, Table):
                grid = [[cell.text for cell in row.cells] for row in block.rows]
                rendered, _ = table_lines(grid)
                lines += ["", *rendered, ""]
                continue
            text = block.text.strip()
            if not text:
                continue
            level = _heading_level(block.style.name if block.style is not None else "")
            if level:
                first_heading = first_heading or text
                lines += ["", f"{'#' * min(level, 4)} {text}", ""]
            elif (block.style is not None and "List" in block.style.name) or block._p.pPr is not None and \
                    block._p.pPr.numPr is not None:
                lines.append(f"- {text}")
            else:
                lines += [text, ""]
        title = (document.core_properties.title or "").strip() or first_heading or path.stem
    except Exception as e:  # noqa: BLE001 - a damaged part inside a valid zip
        raise LoadError(f"not a readable Word document: {type(e).__name__}: {str(e)[:160]}") from e
    return [_doc(path, raw, "docx", title, [Section(normalize_text("\n".join(lines)))])]


def load_pptx(path: Path, raw: bytes, settings):
    from pptx import Presentation

    deck = open_package(raw, "PowerPoint presentation", Presentation)
    sections, deck_title = [], ""
    try:
        for n, slide in enumerate(deck.slides, start=1):
            title_shape = slide.shapes.title
            title = title_shape.text_frame.text.strip() if title_shape is not None and title_shape.has_text_frame else ""
            deck_title = deck_title or title
            parts = []
            for shape in slide.shapes:
                if shape is title_shape:
                    continue
                if shape.has_text_frame and shape.text_frame.text.strip():
                    parts.append(shape.text_frame.text.strip())
                elif getattr(shape, "has_table", False) and shape.has_table:
                    grid = [[cell.text for cell in row.cells] for row in shape.table.rows]
                    parts += table_lines(grid)[0]
            if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
                notes = slide.notes_slide.notes_text_frame.text.strip()
                if notes:
                    parts.append(f"Notes: {notes}")
            text = normalize_text("\n".join(([title] if title else []) + parts))
            if text.strip():
                sections.append(Section(text, heading=f"Slide {n}" + (f": {title}" if title else ""), locator=f"slide {n}"))
        core_title = (deck.core_properties.title or "").strip()
    except Exception as e:  # noqa: BLE001
        raise LoadError(f"not a readable PowerPoint presentation: {type(e).__name__}: {str(e)[:160]}") from e
    return [_doc(path, raw, "slides", core_title or deck_title or path.stem, sections)]

