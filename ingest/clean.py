"""Text cleaning: Unicode/whitespace normalization, de-hyphenation, repeated PDF headers and footers."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

_HYPHEN_BREAK = re.compile(r"(\w)-\n(\w)")
_SPACES = re.compile(r"[ \t\u00a0]+")
_BLANKS = re.compile(r"\n{3,}")
_DIGITS = re.compile(r"\d+")


def normalize_text(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch)[0] != "C")
    text = _HYPHEN_BREAK.sub(r"\1\2", text)  # "insur-\nance" -> "insurance"
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    return _BLANKS.sub("\n\n", "\n".join(lines)).strip()


def clean_pdf_pages(pages: list[str], edge_lines: int = 3, min_share: float = 0.6) -> list[str]:
    """Drop lines that repeat at the top or bottom of most pages (running headers, "Page 3 of 9" footers).

    Lines are compared with digits masked, so page numbers do not make a footer look unique.
    """
    pages = [normalize_text(p) for p in pages]
    if len(pages) < 3:
        return pages
    split = [p.split("\n") for p in pages]
    counts: Counter[str] = Counter()
    for lines in split:
        edges = {_DIGITS.sub("#", ln) for ln in lines[:edge_lines] + lines[-edge_lines:] if ln.strip()}
        counts.update(edges)
    repeated = {key for key, n in counts.items() if n >= max(2, min_share * len(pages))}
    out = []
    for lines in split:
        keep = []
        for i, ln in enumerate(lines):
            at_edge = i < edge_lines or i >= len(lines) - edge_lines
            if at_edge and _DIGITS.sub("#", ln) in repeated:
                continue
            keep.append(ln)
        out.append(normalize_text("\n".join(keep)))
    return out
