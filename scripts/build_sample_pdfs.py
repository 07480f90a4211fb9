"""Build the sample knowledge base's PDFs from their sources in data/pdf_sources/*.md.

A source is YAML front matter (title, code, output) and plain text whose pages are separated by a line
`<<<PAGE>>>`. Every page gets a running header and a "Page N of M" footer, as real policy wordings do (the
ingestion strips them). The script fails if text overflows a page, so the page numbers cited in eval.jsonl hold.

    python scripts/build_sample_pdfs.py
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

import frontmatter
from fpdf import FPDF

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ROOT / "data" / "pdf_sources"
KB = ROOT / "data" / "sample_kb"
PAGE_BREAK = "<<<PAGE>>>"


class PolicyPDF(FPDF):
    def __init__(self, title: str, code: str, pages: int):
        super().__init__(format="A4")
        self.doc_title, self.code, self.total = title, code, pages
        self.set_auto_page_break(auto=True, margin=20)
        self.set_creation_date(dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc))  # reproducible bytes
        self.set_title(title)
        self.set_author("Brightwater Mutual Insurance")

    def header(self):
        self.set_font("Helvetica", "B", 9)
        self.cell(0, 6, f"Brightwater Mutual Insurance - {self.doc_title} ({self.code})", new_x="LMARGIN", new_y="NEXT")
        self.ln(4)

    def footer(self):
        self.set_y(-15)
        self.set_font("Helvetica", "", 8)
        self.cell(0, 6, f"Page {self.page_no()} of {self.total}", align="C")


def build(source: Path) -> Path:
    post = frontmatter.load(source)
    pages = [p.strip() for p in post.content.split(PAGE_BREAK)]
    pdf = PolicyPDF(post["title"], post["code"], len(pages))
    for text in pages:
        pdf.add_page()
        pdf.set_font("Helvetica", "", 10)
        for line in text.splitlines():
            if line.startswith("Section "):
                pdf.set_font("Helvetica", "B", 11)
                pdf.multi_cell(0, 6, line, new_x="LMARGIN", new_y="NEXT")
                pdf.set_font("Helvetica", "", 10)
            else:
                pdf.multi_cell(0, 5, line, new_x="LMARGIN", new_y="NEXT")
    if pdf.page_no() != len(pages):
        sys.exit(f"{source.name}: text overflowed ({pdf.page_no()} pages for {len(pages)} source pages)")
    out = KB / post["output"]
    out.parent.mkdir(parents=True, exist_ok=True)
    pdf.output(str(out))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.parse_args()
    for source in sorted(SOURCES.glob("*.md")):
        print(f"{source.name} -> {build(source).relative_to(ROOT)}")


if __name__ == "__main__":
    main()
