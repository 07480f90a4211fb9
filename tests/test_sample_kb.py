"""The sample knowledge base and its evaluation set are consistent with each other."""

from __future__ import annotations

import json

from pypdf import PdfReader

from tests.conftest import SAMPLE_KB


def _cases():
    return [json.loads(line) for line in (SAMPLE_KB / "eval.jsonl").read_text().splitlines() if line.strip()]


def test_eval_set_shape():
    cases = _cases()
    assert len(cases) >= 60
    assert sum(c["must_refuse"] for c in cases) >= 15
    assert sum(c["audience"] == "internal" for c in cases) >= 10
    assert all(c["reference"] for c in cases if not c["must_refuse"])


def test_eval_sources_and_pages_exist():
    files = {p.name: p for p in SAMPLE_KB.rglob("*") if p.is_file()}
    for c in _cases():
        if c["must_refuse"]:
            continue
        assert c["source"] in files, c
        path = files[c["source"]]
        if c["audience"] == "internal":
            assert "internal" in path.parts
        if c["page"] is not None:
            reader = PdfReader(path)
            assert 1 <= c["page"] <= len(reader.pages)
            # The reference's key figure is on the cited page.
            page_text = reader.pages[c["page"] - 1].extract_text()
            words = [w for w in c["reference"].replace(",", "").split() if any(ch.isdigit() for ch in w)]
            assert not words or any(w.strip(".;") in page_text.replace(",", "") for w in words), c["id"]


def test_kb_has_enough_documents_of_each_kind():
    files = [p for p in SAMPLE_KB.rglob("*") if p.is_file() and p.name not in ("eval.jsonl", ".ingestignore")]
    suffixes = {p.suffix for p in files}
    assert {".pdf", ".md", ".txt", ".html", ".csv", ".jsonl", ".docx", ".xlsx", ".eml"} <= suffixes
    assert len(files) >= 20
    assert len([p for p in files if "internal" in p.parts]) >= 3
    assert all(len(PdfReader(p).pages) >= 3 for p in files if p.name.endswith("policy-wording.pdf"))
