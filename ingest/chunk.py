"""Chunking with langchain-text-splitters: Markdown-structure aware, page-preserving for PDFs.

Each chunk's text starts with a breadcrumb (document title › heading path), so both BM25 and the embedding see
what the passage is about even when the passage itself never names the product.
"""

from __future__ import annotations

import hashlib

from langchain_text_splitters import MarkdownHeaderTextSplitter, RecursiveCharacterTextSplitter

from assistant.schema import Chunk
from ingest.loaders import LoadedDoc

_HEADERS = [("#", "h1"), ("##", "h2"), ("###", "h3"), ("####", "h4")]


def chunk_document(doc: LoadedDoc, audience: str, chunk_size: int, chunk_overlap: int) -> list[Chunk]:
    splitter = RecursiveCharacterTextSplitter(
        chunk_size=chunk_size, chunk_overlap=chunk_overlap, separators=["\n\n", "\n", ". ", "; ", ", ", " ", ""]
    )
    pieces: list[tuple[str, object, str]] = []  # (text, section, heading path)
    for section in doc.sections:
        if doc.kind in ("markdown", "html", "text", "docx", "email"):
            md = MarkdownHeaderTextSplitter(headers_to_split_on=_HEADERS, strip_headers=True)
            for part in md.split_text(section.text):
                path = [part.metadata[k] for _, k in _HEADERS if k in part.metadata]
                # The document title is usually the only h1: do not repeat it in the heading path.
                if path and path[0] == doc.title:
                    path = path[1:]
                heading = " › ".join(path)
                for text in splitter.split_text(part.page_content):
                    pieces.append((text, section, heading))
        else:
            for text in splitter.split_text(section.text):
                pieces.append((text, section, section.heading))

    chunks, seen = [], set()
    for text, section, heading in pieces:
        page = section.page
        # a Word document is cited by its section; the other kinds by what their loader located
        locator = section.locator or (f"section {heading}" if doc.kind == "docx" and heading else "")
        body = text.strip()
        if len(body) < 3:
            continue
        crumb = " › ".join(x for x in (doc.title, heading) if x)
        full = body if not crumb or body.startswith(crumb) or crumb in body[:200] else f"{crumb}\n{body}"
        digest = hashlib.sha256(f"{doc.doc_id}\x00{page}\x00{full}".encode()).hexdigest()[:16]
        chunk_id = f"{doc.doc_id}::{digest}"
        if chunk_id in seen:  # an identical passage twice on one page adds nothing
            continue
        seen.add(chunk_id)
        chunks.append(Chunk(chunk_id=chunk_id, doc_id=doc.doc_id, text=full, source=doc.source, audience=audience,
                            page=page, title=doc.title, heading=heading, locator=locator, meta=dict(section.meta)))
    return chunks
