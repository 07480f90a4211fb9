"""Loaders: one file in, `LoadedDoc`s out (a CSV/JSONL export gives one document per row).

Every loader raises `LoadError` with a reason a person can act on; nothing is guessed for unknown types.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from ingest.clean import clean_pdf_pages, normalize_text

SUPPORTED = {".pdf": "pdf", ".md": "markdown", ".markdown": "markdown", ".txt": "text", ".html": "html",
             ".htm": "html", ".csv": "rows", ".jsonl": "rows", ".docx": "docx", ".pptx": "slides",
             ".xlsx": "sheet", ".xls": "sheet", ".ods": "sheet", ".eml": "email"}
LOADERS_VERSION = "v3"  # bump when a loader's output changes: every document is read again once


# pypdf logs recoverable damage as warnings; the loader reports what matters itself.
logging.getLogger("pypdf").setLevel(logging.ERROR)


class LoadError(Exception):
    """A file that cannot be ingested, with the reason."""


@dataclass
class Section:
    text: str
    page: int | None = None
    heading: str = ""
    locator: str = ""  # what a citation shows besides the source: "sheet Premiums, row 7", "slide 3"
    meta: dict = field(default_factory=dict)  # stored with every chunk of the section (e.g. ocr_confidence)


@dataclass
class LoadedDoc:
    doc_id: str
    path: str  # the file it came from (manifest key for pruning)
    source: str  # what a citation shows
    title: str
    kind: str  # pdf | markdown | text | html | rows | docx | slides | sheet | email
    sections: list[Section]
    content_hash: str
    audience: str | None = None  # from front matter / a row field; None = decide by folder or flag
    extra: dict = field(default_factory=dict)


def path_id(path: Path) -> str:
    """A stable id for a file: its path relative to the working directory (posix), else absolute."""
    p = path.resolve()
    try:
        return p.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return p.as_posix()


def sha256(data: bytes | str) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def load_file(path: Path, settings) -> list[LoadedDoc]:
    if path.suffix.lower() not in SUPPORTED:
        raise LoadError(f"unsupported file type '{path.suffix or path.name}' (supported: {', '.join(sorted(SUPPORTED))})")
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise LoadError(f"cannot read file: {e.strerror or e}") from e
    return load_bytes(path, raw, settings)


def load_bytes(path: Path, raw: bytes, settings) -> list[LoadedDoc]:
    """The documents in `raw`, read by the loader of `path`'s type (a file, or an e-mail's attachment)."""
    kind = SUPPORTED.get(path.suffix.lower())
    if kind is None:
        raise LoadError(f"unsupported file type '{path.suffix or path.name}'")
    if not raw.strip():
        raise LoadError("file is empty")
    if kind in ("docx", "slides"):
        from ingest import office

        return (office.load_docx if kind == "docx" else office.load_pptx)(path, raw, settings)
    if kind == "sheet":
        from ingest.sheets import load_sheets

        return load_sheets(path, raw, settings)
    if kind == "email":
        from ingest.mail import load_eml

        return load_eml(path, raw, settings)
    loader = {"pdf": _load_pdf, "markdown": _load_markdown, "text": _load_text, "html": _load_html, "rows": _load_rows}[kind]
    return loader(path, raw, settings)


def _decode(raw: bytes) -> str:
    for enc in ("utf-8-sig", "cp1252"):
        try:
            return raw.decode(enc)
        except UnicodeDecodeError:
            continue
    raise LoadError("text is neither UTF-8 nor Windows-1252")


def _doc(path: Path, raw: bytes, kind: str, title: str, sections: list[Section], audience=None, doc_id=None) -> LoadedDoc:
    if not any(s.text.strip() for s in sections):
        raise LoadError("no text could be extracted")
    return LoadedDoc(
        doc_id=doc_id or path_id(path), path=path_id(path), source=path.name, title=title.strip() or path.stem,
        kind=kind, sections=sections, content_hash=sha256(raw), audience=audience,
    )


def _load_pdf(path: Path, raw: bytes, settings) -> list[LoadedDoc]:
    """Text layer per page (pypdf); pages without one through OCR (ingest/ocr.py), page by page; tables found by
    pdfplumber added beside the page's running text as header: value rows (ingest/pdf_tables.py)."""
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(raw))
        if reader.is_encrypted:
            raise LoadError("PDF is encrypted (password-protected): save an unprotected copy")
        pages = [page.extract_text() or "" for page in reader.pages]
        meta_title = (reader.metadata.title if reader.metadata else None) or ""
    except LoadError:
        raise
    except Exception as e:  # noqa: BLE001 - pypdf raises many classes on damaged files
        raise LoadError(f"corrupt or unreadable PDF: {type(e).__name__}: {e}") from e
    if not pages:
        raise LoadError("PDF has no pages")
    cleaned = clean_pdf_pages(pages)
    sections = [Section(text=t, page=i) for i, t in enumerate(cleaned, start=1) if t.strip()]
    warnings = []
    blank = [i for i, t in enumerate(cleaned, start=1) if len(t.strip()) < settings.ocr_min_chars]
    if blank and settings.ocr_enabled:
        from ingest.ocr import OcrUnavailable, ocr_pages

        try:
            for page, text, confidence in ocr_pages(raw, blank, settings):
                if text.strip():
                    sections = [s for s in sections if s.page != page]  # OCR replaces a near-empty text layer
                    sections.append(Section(text=text, page=page, meta={"ocr_confidence": confidence}))
                else:
                    warnings.append(f"page {page}: no text found by OCR either")
        except OcrUnavailable as e:
            if not sections:
                raise LoadError(f"PDF has no text layer (a scan?) and {e}") from e
            warnings.append(f"pages {blank} have no text layer and were left out: {e}")
    elif blank and not sections:
        raise LoadError("PDF has no extractable text (a scanned image?) and OCR is off (ASSISTANT_OCR_ENABLED)")
    if settings.pdf_tables:
        from ingest.pdf_tables import table_sections

        sections += table_sections(raw, {s.page for s in sections if "ocr_confidence" not in s.meta})
    if not sections:
        raise LoadError("PDF has no extractable text")
    sections.sort(key=lambda s: (s.page or 0, bool(s.heading)))
    first = _first_line([s.text for s in sections])
    doc = _doc(path, raw, "pdf", meta_title or first, sections)
    doc.extra["warnings"] = warnings
    return [doc]


def _front_matter(text: str) -> tuple[dict, str]:
    import frontmatter

    try:
        post = frontmatter.loads(text)
    except Exception as e:  # yaml errors come in many classes
        raise LoadError(f"invalid front matter: {e}") from e
    return dict(post.metadata), post.content


def _audience_of(meta: dict) -> str | None:
    aud = meta.get("audience")
    if aud is None:
        return None
    if aud not in ("public", "internal"):
        raise LoadError(f"front matter audience must be 'public' or 'internal', not {aud!r}")
    return aud


def _load_markdown(path: Path, raw: bytes, settings) -> list[LoadedDoc]:
    meta, body = _front_matter(_decode(raw))
    body = normalize_text(body)
    title = str(meta.get("title") or _first_heading(body) or path.stem)
    return [_doc(path, raw, "markdown", title, [Section(body)], _audience_of(meta), meta.get("doc_id"))]


def _load_text(path: Path, raw: bytes, settings) -> list[LoadedDoc]:
    meta, body = _front_matter(_decode(raw))
    body = normalize_text(body)
    title = str(meta.get("title") or _first_line([body]) or path.stem)
    return [_doc(path, raw, "text", title, [Section(body)], _audience_of(meta), meta.get("doc_id"))]


def _load_html(path: Path, raw: bytes, settings) -> list[LoadedDoc]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(_decode(raw), "html.parser")
    for tag in soup(["script", "style", "nav", "noscript", "template", "svg"]):
        tag.decompose()
    title = soup.title.get_text(strip=True) if soup.title else ""
    meta_aud = soup.find("meta", attrs={"name": "audience"})
    audience = _audience_of({"audience": meta_aud["content"]}) if meta_aud and meta_aud.get("content") else None
    # Headings become Markdown headings so the Markdown-aware splitter keeps the heading path.
    body = soup.body or soup
    for level in range(1, 7):
        for h in body.find_all(f"h{level}"):
            h.replace_with(f"\n\n{'#' * level} {h.get_text(' ', strip=True)}\n\n")
    for li in body.find_all("li"):
        li.insert(0, "- ")
    for tag in body.find_all(["p", "div", "li", "tr", "br", "table", "ul", "ol", "section", "article"]):
        tag.append("\n")
    for cell in body.find_all(["td", "th"]):
        cell.append(" | ")
    text = normalize_text(body.get_text())
    return [_doc(path, raw, "html", title or _first_heading(text) or path.stem, [Section(text)], audience)]


def _load_rows(path: Path, raw: bytes, settings) -> list[LoadedDoc]:
    text = _decode(raw)
    if path.suffix.lower() == ".csv":
        try:
            rows = list(csv.DictReader(io.StringIO(text)))
        except csv.Error as e:
            raise LoadError(f"malformed CSV: {e}") from e
    else:
        rows = []
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise LoadError(f"line {n} is not valid JSON: {e.msg}") from e
            if not isinstance(row, dict):
                raise LoadError(f"line {n} is not a JSON object")
            rows.append(row)
    if not rows:
        raise LoadError("no rows")
    text_fields = settings.split_fields(settings.csv_text_fields)
    id_fields = settings.split_fields(settings.csv_id_fields)
    present_text = [f for f in text_fields if f in rows[0]]
    if not present_text:
        raise LoadError(f"none of the text fields {text_fields} is present (columns: {list(rows[0])[:10]})")
    id_field = next((f for f in id_fields if f in rows[0]), None)
    file_id = path_id(path)
    docs, seen = [], set()
    for n, row in enumerate(rows, start=1):
        parts = [f"{_label(f)}{str(row[f]).strip()}" for f in present_text if str(row.get(f) or "").strip()]
        if not parts:
            continue
        row_id = str(row[id_field]).strip() if id_field and str(row.get(id_field) or "").strip() else str(n)
        if row_id in seen:
            raise LoadError(f"duplicate id {row_id!r} in field {id_field!r}")
        seen.add(row_id)
        audience = _audience_of({"audience": row["audience"]}) if row.get("audience") else None
        title = str(row.get(settings.csv_title_field) or "").strip()
        body = normalize_text("\n".join(parts))
        canonical = json.dumps(row, sort_keys=True, ensure_ascii=False, default=str)
        docs.append(LoadedDoc(
            doc_id=f"{file_id}#{row_id}", path=file_id, source=path.name, title=title, kind="rows",
            sections=[Section(body)], content_hash=sha256(canonical), audience=audience,
        ))
    return docs


def _label(field_name: str) -> str:
    return {"question": "Q: ", "answer": "A: "}.get(field_name, "")


def _first_heading(text: str) -> str:
    for line in text.splitlines():
        if line.startswith("#"):
            return line.lstrip("#").strip()
    return ""


def _first_line(pages) -> str:
    for page in pages:
        for line in page.splitlines():
            if line.strip():
                return line.strip()[:120]
    return ""
