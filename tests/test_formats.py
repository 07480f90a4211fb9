"""Documents as insurers keep them: Word, Excel (and .ods/.xls), PowerPoint, e-mail with attachments, scanned PDFs
(OCR by the real Tesseract) and tables in PDFs — cited by section, sheet and row, slide, page and attachment; and
every loader given empty, truncated, corrupt and random files under its extension without a crash or a half-stored
document."""

from __future__ import annotations

import importlib.util
import os
import random
import shutil

import pytest

from tests.conftest import ROOT, SAMPLE_KB, make_pdf, make_settings

spec = importlib.util.spec_from_file_location("build_sample_office", ROOT / "scripts" / "build_sample_office.py")
office_kb = importlib.util.module_from_spec(spec)
spec.loader.exec_module(office_kb)

needs_ocr = pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract-ocr not installed (make ocr)")


def _chunks(path, **settings):
    from ingest.chunk import chunk_document
    from ingest.loaders import load_file

    s = make_settings(path.parent / "store", **settings)
    return [c for d in load_file(path, s) for c in chunk_document(d, "public", s.chunk_size, s.chunk_overlap)]


def test_word_headings_become_sections_and_table_rows_keep_their_headers(tmp_path):
    f = tmp_path / "checklist.docx"
    office_kb.word_checklist(f)
    chunks = _chunks(f)
    row = next(c for c in chunks if "Lost or delayed baggage" in c.text)
    assert "Claim type: Lost or delayed baggage · Documents we need: The airline's Property Irregularity Report" in row.text
    assert row.where() == "checklist.docx, section Documents we need for each type of claim"
    assert any(c.heading == "If a document is missing" and "EUR 1,000" in c.text for c in chunks)


def test_every_sheet_is_read_row_by_row_and_cited_by_sheet_and_row(tmp_path):
    f = tmp_path / "premiums.xlsx"
    office_kb.excel_premiums(f)
    chunks = _chunks(f)
    assert {c.heading for c in chunks} == {"Buildings and contents", "Contents limits", "Optional extras"}
    cell = next(c for c in chunks if "EUR 250,001 - 400,000" in c.text)
    assert "Buildings and contents (EUR/year): 281" in cell.text  # the cell with its column header
    assert cell.locator == "sheet Buildings and contents, row 4"  # the spreadsheet's own row (title row 1, header 2)


def test_ods_and_a_large_sheet_chunk_by_rows_with_the_header_repeated(tmp_path):
    import pandas as pd

    rows = [{"Age band": f"{a}-{a + 4}", "Plan": p, "Premium (EUR/year)": 100 + a + i}
            for i, p in enumerate(("Essential", "Plus")) for a in range(18, 1018)]
    f = tmp_path / "big.ods"
    pd.DataFrame(rows).to_excel(f, index=False, engine="odf")
    chunks = _chunks(f)
    assert len(chunks) > 10 and all(c.text.count("Age band:") >= 2 for c in chunks)
    assert chunks[0].locator.startswith("sheet Sheet1, rows 2-")


def test_slides_are_cited_by_number(tmp_path):
    from pptx import Presentation

    deck = Presentation()
    for title, body in (("Renewals", "Renewal documents go out 21 days before."), ("Roadside", "Call 0800 555 0100.")):
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = title
        slide.placeholders[1].text = body
    f = tmp_path / "training.pptx"
    deck.save(f)
    chunks = _chunks(f)
    assert [c.locator for c in chunks] == ["slide 1", "slide 2"]
    assert "0800 555 0100" in chunks[1].text and chunks[1].where() == "training.pptx, slide 2"


def test_email_body_and_attachment_are_documents_cited_message_then_attachment(tmp_path):
    from ingest.loaders import load_file

    f = tmp_path / "notice.eml"
    office_kb.email_with_attachment(f)
    docs = load_file(f, make_settings(tmp_path / "s"))
    assert [d.kind for d in docs] == ["email", "pdf"]
    assert "Subject: More evidence with your claim" in docs[0].sections[0].text
    assert "25 MB" in docs[0].sections[0].text
    assert docs[1].source == "notice.eml › upload-guide.pdf" and "Postbus 4410" in docs[1].sections[0].text
    assert docs[1].doc_id.endswith("notice.eml›upload-guide.pdf") and docs[1].path == docs[0].path


def test_a_broken_attachment_is_reported_and_the_message_kept(tmp_path):
    from email.message import EmailMessage

    from ingest.loaders import load_file

    msg = EmailMessage()
    msg["Subject"], msg["From"] = "Policy pack", "a@brightwater-mutual.example"
    msg.set_content("Your pack is attached.")
    msg.add_attachment(b"not a word file", maintype="application", subtype="octet-stream", filename="pack.docx")
    f = tmp_path / "pack.eml"
    f.write_bytes(msg.as_bytes())
    docs = load_file(f, make_settings(tmp_path / "s"))
    assert len(docs) == 1 and "pack.docx" in docs[0].extra["warnings"][0]


@needs_ocr
def test_scanned_page_is_read_by_ocr_with_its_confidence(tmp_path):
    from ingest.ocr import character_error_rate

    f = tmp_path / "scan.pdf"
    office_kb.scanned_endorsement(f, tmp_path / "truth.txt")
    from ingest.loaders import load_file

    chunks = _chunks(f, ocr_dpi=200)
    text = "\n".join(c.text for c in chunks)
    assert "within 4 hours" in text and "15 years old" in text
    assert all(c.page == 1 and c.meta["ocr_confidence"] > 80 for c in chunks)
    (doc,) = load_file(f, make_settings(tmp_path / "s", ocr_dpi=200))
    ocr = "\n".join(s.text for s in doc.sections)  # the page as read, without the chunks' title breadcrumb
    assert character_error_rate((tmp_path / "truth.txt").read_text(), ocr) < 0.05


@needs_ocr
def test_mixed_pdf_is_read_page_by_page(tmp_path):
    """A text page, then a scanned one: the text layer where there is one, OCR where there is not."""
    from pypdf import PdfReader, PdfWriter

    text_pdf = make_pdf(tmp_path / "text.pdf", ["Page one says the excess is EUR 250 for every claim made."])
    scan = tmp_path / "scan.pdf"
    office_kb.scanned_endorsement(scan, tmp_path / "truth.txt")
    writer = PdfWriter()
    for p in (text_pdf, scan):
        writer.append(PdfReader(p))
    mixed = tmp_path / "mixed.pdf"
    with mixed.open("wb") as fh:
        writer.write(fh)
    chunks = _chunks(mixed, ocr_dpi=200)
    assert {c.page for c in chunks} == {1, 2}
    assert all(("ocr_confidence" in c.meta) == (c.page == 2) for c in chunks)


def test_without_the_ocr_engine_a_scan_is_a_clear_error_and_a_mixed_pdf_keeps_its_text(tmp_path):
    from pypdf import PdfReader, PdfWriter

    from ingest.loaders import LoadError, load_file

    scan = tmp_path / "scan.pdf"
    office_kb.scanned_endorsement(scan, tmp_path / "truth.txt")
    s = make_settings(tmp_path / "s", ocr_command="no-such-tesseract")
    with pytest.raises(LoadError, match="no text layer.*OCR engine is not installed.*tesseract-ocr"):
        load_file(scan, s)
    writer = PdfWriter()
    for p in (make_pdf(tmp_path / "text.pdf", ["A page with a text layer about the EUR 250 excess."]), scan):
        writer.append(PdfReader(p))
    with (tmp_path / "mixed.pdf").open("wb") as fh:
        writer.write(fh)
    (doc,) = load_file(tmp_path / "mixed.pdf", s)
    assert {sec.page for sec in doc.sections} == {1}
    assert "pages [2] have no text layer" in doc.extra["warnings"][0] and "tesseract" in doc.extra["warnings"][0]


def test_pdf_tables_are_rows_with_headers_beside_the_running_text(tmp_path):
    f = tmp_path / "schedule.pdf"
    office_kb.benefit_schedule(f)
    chunks = _chunks(f)
    table = [c for c in chunks if c.locator == "page 1, table 1"]
    assert table and "Benefit: Ambulance transport · Essential: EUR 500 a year · Plus: EUR 1,000 a year · " \
                     "Premier: EUR 2,500 a year" in table[0].text
    assert any(c.locator == "" and c.page == 1 and "approval before admission" in c.text for c in chunks)


def _valid(ext: str, folder) -> bytes:
    f = folder / f"valid{ext}"
    {".docx": office_kb.word_checklist, ".xlsx": office_kb.excel_premiums,
     ".eml": office_kb.email_with_attachment, ".pdf": office_kb.benefit_schedule}[ext](f)
    return f.read_bytes()


@pytest.mark.parametrize("ext", [".docx", ".xlsx", ".pptx", ".xls", ".ods", ".eml", ".pdf"])
def test_bad_files_are_reported_with_a_reason_and_nothing_is_stored(tmp_path, ingestor, store, ext):
    docs = tmp_path / "docs"
    docs.mkdir()
    rng = random.Random(ext)
    (docs / f"empty{ext}").write_bytes(b"")
    (docs / f"random{ext}").write_bytes(bytes(rng.randrange(256) for _ in range(3000)))
    if ext in (".docx", ".xlsx", ".pdf", ".eml"):
        raw = _valid(ext, tmp_path)
        (docs / f"truncated{ext}").write_bytes(raw[: len(raw) // 2] if ext != ".eml" else b"\x00\x01" * 40)
    if ext in (".docx", ".xlsx", ".pptx"):
        from ingest.office import OLE_MAGIC

        (docs / f"protected{ext}").write_bytes(OLE_MAGIC + bytes(rng.randrange(256) for _ in range(2000)))
    summary = ingestor.ingest([docs])
    failed = dict(summary.failed)
    assert set(failed) == {str(p) for p in docs.iterdir()}, failed
    for path, reason in failed.items():
        assert len(reason) > 10 and "Traceback" not in reason, (path, reason)
        if "protected" in path:
            assert "password-protected" in reason
        if "empty" in path:
            assert reason == "file is empty"
    assert store.count() == 0 and store.manifest.all() == []


def test_encrypted_pdf_is_refused_with_its_reason(tmp_path, ingestor, store):
    from pypdf import PdfReader, PdfWriter

    plain = make_pdf(tmp_path / "plain.pdf", ["The excess is EUR 250 for every claim we accept."])
    writer = PdfWriter()
    writer.append(PdfReader(plain))
    writer.encrypt("secret")
    docs = tmp_path / "docs"
    docs.mkdir()
    with (docs / "locked.pdf").open("wb") as fh:
        writer.write(fh)
    summary = ingestor.ingest([docs])
    assert "password-protected" in dict(summary.failed)[str(docs / "locked.pdf")]
    assert store.count() == 0


def test_unchanged_files_are_not_read_again_and_changes_update(tmp_path, ingestor, store, monkeypatch):
    import ingest.pipeline as pipeline

    docs = tmp_path / "docs"
    docs.mkdir()
    office_kb.excel_premiums(docs / "premiums.xlsx")
    office_kb.email_with_attachment(docs / "notice.eml")
    first = ingestor.ingest([docs])
    assert first.ok and len(first.added) == 3  # the workbook, the message and its attachment
    n = store.count()

    def no_reading(*a, **k):
        raise AssertionError("an unchanged file was read by its loader")

    monkeypatch.setattr(pipeline, "load_file", no_reading)
    again = ingestor.ingest([docs])
    assert again.ok and sorted(again.skipped) == sorted(first.added) and store.count() == n
    monkeypatch.undo()

    import openpyxl

    wb = openpyxl.load_workbook(docs / "premiums.xlsx")
    wb["Buildings and contents"]["D4"] = 290
    wb.save(docs / "premiums.xlsx")
    changed = ingestor.ingest([docs])
    assert len(changed.updated) == 1 and len(changed.skipped) == 2
    hits = [t for t in store.collections["public"].get(include=["documents"])["documents"] if "250,001" in t]
    assert "Buildings and contents (EUR/year): 290" in hits[0]
    ingestor.delete([str(docs / "notice.eml")])
    assert not any("notice.eml" in r.doc_id for r in store.manifest.all())


def test_uploads_accept_the_new_types(tmp_path):
    from ingest.uploads import save_upload

    s = make_settings(tmp_path / "store")
    for name in ("premiums.xlsx", "procedure.docx", "deck.pptx", "notice.eml", "rates.ods"):
        assert save_upload(s, name, b"x" * 10, "public").name == name


def test_sample_kb_holds_one_of_each_new_kind():
    names = {p.name for p in SAMPLE_KB.rglob("*")}
    assert {"claim-documents-checklist.docx", "home-insurance-premiums-2026.xlsx",
            "home-emergency-endorsement-scan.pdf", "health-benefit-schedule-2026.pdf",
            "upload-limits-announcement.eml"} <= names
    assert os.path.getsize(SAMPLE_KB / "policies" / "home-emergency-endorsement-scan.pdf") > 50_000  # an image
    from pypdf import PdfReader

    assert not (PdfReader(SAMPLE_KB / "policies" / "home-emergency-endorsement-scan.pdf").pages[0].extract_text()
                or "").strip()  # no text layer at all


def test_table_cell_question_is_answered_with_the_row_cited(kb_assistant):
    ans = kb_assistant.ask("how much is buildings and contents cover a year if my house would cost "
                           "EUR 300,000 to rebuild?", role="customer")
    assert not ans.refused, ans.refusal_reason
    assert "281" in ans.answer
    assert any(c.locator == "sheet Buildings and contents, row 4" for c in ans.citations), \
        [c.where() for c in ans.citations]

