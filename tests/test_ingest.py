"""Ingestion against the real Chroma store, the real embedding model and real PDFs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, make_pdf

PAGES = [
    "Section 1. Boat insurance covers your sailing yacht against storm damage up to EUR 80,000.",
    "Section 2. Theft of outboard engines is covered only when locked with an approved marine lock.",
    "Section 3. The deductible for every boat claim is EUR 400, and racing is never covered.",
]


def chunk_count(store, doc_id: str) -> int:
    return len(store.chunks_of(doc_id))


def test_pdf_pages_kept_and_headers_removed(tmp_path, ingestor, store):
    pdf = make_pdf(tmp_path / "docs" / "boat.pdf", PAGES)
    summary = ingestor.ingest([pdf])
    assert summary.ok and len(summary.added) == 1
    chunks = store.chunks_of(summary.added[0])
    assert sorted({c.page for c in chunks}) == [1, 2, 3]
    assert all("Page 1 of 3" not in c.text and "ACME Insurance - Test Wording" not in c.text for c in chunks)
    by_page = {c.page: c.text for c in chunks}
    assert "outboard engines" in by_page[2] and "EUR 400" in by_page[3]


def test_reingest_is_idempotent_and_embeds_nothing(tmp_path, ingestor, store):
    make_pdf(tmp_path / "docs" / "boat.pdf", PAGES)
    (tmp_path / "docs" / "faq.md").write_text("# Boat FAQ\n## Mooring\nMooring fees are not refundable.\n")
    first = ingestor.ingest([tmp_path / "docs"])
    n = store.count()
    second = ingestor.ingest([tmp_path / "docs"])
    assert first.chunks_embedded == n > 0
    assert second.chunks_embedded == 0 and len(second.skipped) == 2 and not second.added and not second.updated
    assert store.count() == n


def test_changed_document_replaces_its_chunks(tmp_path, ingestor, store, embedder, settings):
    from assistant.retrieve import HybridRetriever

    doc = tmp_path / "docs" / "faq.md"
    doc.parent.mkdir()
    doc.write_text("# Boat FAQ\n## Mooring\nMooring fees are refundable within 30 days.\n")
    ingestor.ingest([doc])
    doc.write_text("# Boat FAQ\n## Mooring\nMooring fees are never refundable after payment.\n")
    summary = ingestor.ingest([doc])
    assert len(summary.updated) == 1
    texts = [c.text for c in store.chunks_of(summary.updated[0])]
    assert any("never refundable" in t for t in texts) and not any("30 days" in t for t in texts)
    hits = HybridRetriever(store, embedder, settings).retrieve("are mooring fees refundable", threshold=-1)
    assert all("30 days" not in h.chunk.text for h in hits)


def test_delete_removes_chunks_bm25_and_manifest(tmp_path, ingestor, store):
    pdf = make_pdf(tmp_path / "docs" / "boat.pdf", PAGES)
    doc_id = ingestor.ingest([pdf]).added[0]
    assert store.bm25().search("outboard engines", 5, ("public",))
    assert ingestor.delete([doc_id]) == [doc_id]
    assert store.count() == 0
    assert store.manifest.get(doc_id) is None
    assert store.bm25().search("outboard engines", 5, ("public",)) == []


def test_corrupt_and_unknown_files_are_reported_and_skipped(tmp_path, ingestor, store):
    docs = tmp_path / "docs"
    make_pdf(docs / "good.pdf", PAGES)
    (docs / "corrupt.pdf").write_bytes(b"%PDF-1.7\n1 0 obj << /Type /Catalog >>\ngarbage without xref")
    (docs / "notes.pages").write_bytes(b"PK\x03\x04 an Apple Pages file")
    (docs / "empty.txt").write_text("   ")
    summary = ingestor.ingest([docs])
    failed = dict(summary.failed)
    assert len(summary.added) == 1 and not summary.ok
    assert "corrupt" in failed[str(docs / "corrupt.pdf")].lower() or "pdf" in failed[str(docs / "corrupt.pdf")].lower()
    assert "unsupported file type" in failed[str(docs / "notes.pages")]
    assert "empty" in failed[str(docs / "empty.txt")]
    assert store.count() == len(store.chunks_of(summary.added[0]))


def test_crash_mid_ingest_reruns_to_a_consistent_store(tmp_path, settings, embedder, store, monkeypatch):
    from ingest import pipeline
    from ingest.pipeline import Ingestor

    docs = tmp_path / "docs"
    for i in range(6):
        make_pdf(docs / f"wording{i}.pdf", [f"Product {i} page one text about cover {i}."] + PAGES)
    monkeypatch.setattr(pipeline, "FLUSH_CHUNKS", 4)  # several batches
    calls = {"n": 0}
    real = store.collections["public"].upsert

    def crashing_upsert(*a, **kw):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("power cut")
        return real(*a, **kw)

    monkeypatch.setattr(store.collections["public"], "upsert", crashing_upsert)
    with pytest.raises(KeyboardInterrupt):
        Ingestor(store, settings, embedder, progress=False).ingest([docs])
    monkeypatch.setattr(store.collections["public"], "upsert", real)
    assert any(r.status == "pending" for r in store.manifest.all())

    summary = Ingestor(store, settings, embedder, progress=False).ingest([docs])
    assert summary.ok
    records = store.manifest.all()
    assert len(records) == 6 and all(r.status == "ok" for r in records)
    ids = store.all_ids()
    assert len(ids) == len(set(ids)) == sum(r.chunks for r in records)
    assert store.bm25().n_docs == len(ids)


def test_rows_audience_and_pruning(tmp_path, ingestor, store):
    folder = tmp_path / "kb"
    (folder / "internal").mkdir(parents=True)
    (folder / "faq.csv").write_text("id,question,answer\n1,How do I pay?,By direct debit monthly.\n2,Can I cancel?,Within 14 days.\n")
    (folder / "internal" / "manual.md").write_text("# Manual\nHandlers settle up to EUR 5,000.\n")
    (folder / "memo.md").write_text("---\naudience: internal\n---\n# Memo\nStaff bonus rules for 2026.\n")
    (folder / "travel.jsonl").write_text(json.dumps({"id": "t1", "question": "Is diving covered?", "answer": "Yes to 30 m."}) + "\n")
    summary = ingestor.ingest([folder])
    assert summary.ok
    aud = {r.doc_id.rsplit("/", 1)[-1]: r.audience for r in store.manifest.all()}
    assert aud["faq.csv#1"] == aud["faq.csv#2"] == aud["travel.jsonl#t1"] == "public"
    assert aud["manual.md"] == aud["memo.md"] == "internal"
    (folder / "faq.csv").write_text("id,question,answer\n1,How do I pay?,By direct debit monthly.\n")
    again = ingestor.ingest([folder / "faq.csv"])
    assert [d.rsplit("/", 1)[-1] for d in again.removed] == ["faq.csv#2"] and len(again.skipped) == 1


def test_markdown_heading_path_and_html(tmp_path, ingestor, store):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "guide.md").write_text("# Guide\n## Claims\n### Deadlines\nReport within 7 days of the accident.\n")
    (docs / "page.html").write_text("<html><head><title>Roadside</title><script>x=1</script></head><body>"
                                    "<h1>Roadside</h1><h2>Towing</h2><p>We tow your car up to 100 km.</p></body></html>")
    ingestor.ingest([docs])
    chunks = {c.source: c for r in store.manifest.all() for c in store.chunks_of(r.doc_id)}
    assert chunks["guide.md"].heading == "Claims › Deadlines"
    assert chunks["page.html"].heading == "Towing" and "x=1" not in chunks["page.html"].text
    assert "100 km" in chunks["page.html"].text


def test_cli_list_delete_and_exit_code(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# A\nAlpha cover is sold in spring.\n")
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4 truncated")
    store = tmp_path / "store"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    run = lambda *a: subprocess.run([sys.executable, "-m", "ingest", *a, "--store", str(store)], cwd=ROOT,
                                    capture_output=True, text=True, env=env, timeout=300)
    r = run(str(docs), "--quiet", "--json")
    assert r.returncode == 1, r.stderr
    out = json.loads(r.stdout.splitlines()[0])
    assert out["added"] == 1 and out["failed"][0]["path"].endswith("broken.pdf")
    assert "broken.pdf" in r.stderr
    listed = json.loads(run("--list", "--json").stdout)
    assert [d["source"] for d in listed] == ["a.md"] and listed[0]["chunks"] >= 1
    r = run("--delete", listed[0]["doc_id"], "--json")
    assert r.returncode == 0 and json.loads(r.stdout.splitlines()[0])["deleted"] == [listed[0]["doc_id"]]
    assert json.loads(run("--list", "--json").stdout) == []


def test_reingest_restores_chunks_that_chroma_lost(tmp_path, ingestor, store):
    """Manifest and Chroma disagree (a restored backup, a replaced Chroma folder): re-ingest heals the store."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# Pet cover\n\nPet insurance pays vet fees up to EUR 3,000 a year.\n")
    (docs / "b.md").write_text("# Boat cover\n\nBoat insurance covers theft of outboard engines.\n")
    ingestor.ingest([docs])
    lost = store.collections["public"].get(include=["metadatas"])
    victim = [cid for cid, m in zip(lost["ids"], lost["metadatas"]) if m["doc_id"].endswith("b.md")]
    store.collections["public"].delete(ids=victim)
    summary = ingestor.ingest([docs])
    assert [d.endswith("b.md") for d in summary.updated] == [True] and summary.chunks_embedded == len(victim)
    assert set(victim) <= set(store.all_ids())
    # Chunks of a document the manifest does not know are removed.
    store.collections["public"].add(ids=["orphan::1"], embeddings=[[0.0] * 383 + [1.0]], documents=["stray"],
                                    metadatas=[{"doc_id": "gone.md", "source": "gone.md", "audience": "public", "title": ""}])
    assert ingestor.ingest([docs]).chunks_embedded == 0
    assert "orphan::1" not in store.all_ids()


def test_bm25_analysis_matches_bm25s_tokenize_on_the_sample_kb(kb_assistant):
    """assistant.store.analyze re-implements bm25s.tokenize's analysis for speed: they must never disagree."""
    import bm25s

    from assistant.store import _stemmer, analyze

    texts = kb_assistant.store.texts("public") + kb_assistant.store.texts("internal")
    texts += ["Isn't it 3x cheaper?", "", "ÉTÉ déjà-vu — naïve café", "a I x", "EUR 25,000 policy-holder's claims"]
    assert len(texts) > 30
    expected = bm25s.tokenize(texts, stopwords="en", stemmer=_stemmer(), return_ids=False, show_progress=False)
    assert analyze(texts) == [list(t) for t in expected]
