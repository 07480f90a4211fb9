"""Ingestion: discover files → load → decide (skip / add / update) → chunk → embed in batches → store.

Idempotent by content hash: an unchanged document is never re-embedded. The hash also covers the chunking
settings and the embedding model, so changing either re-embeds what it affects.
"""

from __future__ import annotations

import fnmatch
import time
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from assistant.guards.injection import instruction_lines
from assistant.store import DocumentRecord, KnowledgeStore
from ingest.chunk import chunk_document
from ingest.loaders import LOADERS_VERSION, LoadedDoc, LoadError, load_file, path_id, sha256

IGNORE_FILE = ".ingestignore"
FLUSH_CHUNKS = 256  # chunks embedded and written per batch: bounded memory, frequent durable progress


@dataclass
class IngestSummary:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    flagged: list[tuple[str, str]] = field(default_factory=list)  # (doc_id, instruction-like line): kept, neutralized at answer time
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (doc_id, what was left out: an OCR-less page, an attachment)
    chunks_embedded: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_json(self) -> dict:
        return {
            "added": len(self.added), "updated": len(self.updated), "skipped": len(self.skipped),
            "removed": len(self.removed), "failed": [{"path": p, "reason": r} for p, r in self.failed],
            "flagged": [{"doc_id": d, "line": line} for d, line in self.flagged],
            "warnings": [{"doc_id": d, "warning": w} for d, w in self.warnings],
            "chunks_embedded": self.chunks_embedded, "seconds": round(self.seconds, 2),
        }

    def line(self) -> str:
        return (f"added {len(self.added)} · updated {len(self.updated)} · skipped {len(self.skipped)} · "
                f"removed {len(self.removed)} · failed {len(self.failed)} · flagged {len(self.flagged)} · "
                + (f"warnings {len(self.warnings)} · " if self.warnings else "") +
                f"{self.chunks_embedded} chunks embedded "
                f"in {self.seconds:.1f}s")


def discover(paths: list[Path]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Files under `paths` (recursively), minus hidden files and those matched by an `.ingestignore`."""
    files, missing = [], []
    for root in paths:
        if not root.exists():
            missing.append((str(root), "no such file or directory"))
        elif root.is_file():
            files.append(root)
        else:
            patterns = _ignore_patterns(root)
            for p in sorted(root.rglob("*")):
                rel = p.relative_to(root).as_posix()
                if p.is_dir() or any(part.startswith(".") for part in p.relative_to(root).parts):
                    continue
                if any(fnmatch.fnmatch(rel, pat) or fnmatch.fnmatch(p.name, pat) for pat in patterns):
                    continue
                files.append(p)
    return files, missing


def _ignore_patterns(root: Path) -> list[str]:
    f = root / IGNORE_FILE
    if not f.exists():
        return []
    return [ln.strip() for ln in f.read_text().splitlines() if ln.strip() and not ln.startswith("#")]


def audience_for(doc: LoadedDoc, file: Path, forced: str | None) -> str:
    """--audience wins, then the document's own front matter / field, then an `internal/` folder, else public."""
    if forced:
        return forced
    if doc.audience:
        return doc.audience
    return "internal" if "internal" in file.resolve().parts else "public"


class Ingestor:
    def __init__(self, store: KnowledgeStore, settings, embedder=None, progress: bool = True, on_progress=None):
        self.store = store
        self.on_progress = on_progress  # on_progress(files_done, files_total, file_name): a UI's own progress bar
        self.settings = settings
        self._embedder = embedder  # loaded on first use: a re-ingest of unchanged documents needs no model
        self.progress = progress
        # The store's own model embeds (the one its vectors came from); a different model means a new collection
        # (KnowledgeStore.switch_embedding), never vectors of two models side by side.
        self.model_path = store.embedding_model or (embedder.model_path if embedder else settings.embedding_model_path)
        if embedder is not None and embedder.model_path != self.model_path:
            raise ValueError(f"this store's vectors come from {self.model_path}, not {embedder.model_path}: "
                             "switch models with `python -m ingest --switch-embedding`")
        # Part of every document hash: changing how text is chunked invalidates stored chunks. Hashes written
        # before the store recorded its model also named the model (`legacy`): still accepted, nothing re-embedded.
        self.fingerprint = sha256(f"{settings.chunk_size}|{settings.chunk_overlap}|{LOADERS_VERSION}")[:12]
        self.legacy = sha256(f"{settings.chunk_size}|{settings.chunk_overlap}|{Path(self.model_path).name}|v1")[:12]

    @property
    def embedder(self):
        if self._embedder is None:
            from assistant.embeddings import get_embedder

            self._embedder = get_embedder(self.model_path)
        return self._embedder

    def ingest(self, paths: list[Path | str], audience: str | None = None) -> IngestSummary:
        t0 = time.perf_counter()
        summary = IngestSummary()
        files, missing = discover([Path(p) for p in paths])
        summary.failed += missing
        with self.store.write_lock():
            known = self.store.manifest.hashes()
            for doc_id in self.store.inconsistent_documents():  # re-embed what Chroma lost
                known[doc_id] = ("", "stale")
            pending_docs: list[tuple[DocumentRecord, list]] = []
            pending_files: list[tuple[str, str]] = []  # (path, digest) of files whose documents await the flush
            pending_chunks = 0
            bar = tqdm(total=0, unit="chunk", desc="embedding", disable=not self.progress, leave=False)
            for i, file in enumerate(tqdm(files, unit="file", desc="ingesting", disable=not self.progress, leave=False)):
                if self.on_progress:
                    self.on_progress(i, len(files), file.name)
                pid, digest = path_id(file), self._file_digest(file, audience)
                stored = self.store.manifest.by_path(pid)
                if digest and stored and self.store.manifest.file_digest(pid) == digest and \
                        all(known.get(d, ("", ""))[1] == "ok" for d in stored):
                    summary.skipped += stored  # unchanged bytes: not even read by its loader (OCR, tables)
                    continue
                try:
                    docs = load_file(file, self.settings)
                    work = self._plan(file, docs, audience, known, summary)
                except LoadError as e:
                    summary.failed.append((str(file), str(e)))
                    continue
                except Exception as e:  # a loader bug must not lose the rest of the run
                    summary.failed.append((str(file), f"{type(e).__name__}: {e}"))
                    continue
                for record, chunks in work:
                    pending_docs.append((record, chunks))
                    pending_chunks += len(chunks)
                    bar.total += len(chunks)
                    if pending_chunks >= FLUSH_CHUNKS:
                        summary.chunks_embedded += self._flush(pending_docs, bar)
                        pending_docs, pending_chunks = [], 0
                        self.store.manifest.set_file_digests(pending_files)  # files planned before: all stored now
                        pending_files = []
                # Rows that disappeared from a re-ingested export are removed with it.
                stale = set(self.store.manifest.by_path(path_id(file))) - {d.doc_id for d in docs}
                if stale:
                    self.store.delete_documents(sorted(stale))
                    summary.removed += sorted(stale)
                for doc in docs:
                    summary.warnings += [(doc.doc_id, w) for w in doc.extra.get("warnings", [])]
                if digest:
                    pending_files.append((pid, digest))
                if not pending_docs:  # everything of this file (and before it) is stored
                    self.store.manifest.set_file_digests(pending_files)
                    pending_files = []
            if pending_docs:
                summary.chunks_embedded += self._flush(pending_docs, bar)
            self.store.manifest.set_file_digests(pending_files)
            bar.close()
            if self.on_progress:
                self.on_progress(len(files), len(files), "")
            if summary.added or summary.updated or summary.removed:
                self.store.refresh_bm25()
        summary.seconds = time.perf_counter() - t0
        return summary

    def _file_digest(self, file: Path, audience) -> str | None:
        try:
            return sha256(file.read_bytes() + f"|{audience}|{self.fingerprint}".encode())
        except OSError:
            return None  # the loader reports it

    def _plan(self, file: Path, docs: list[LoadedDoc], forced_audience, known, summary) -> list:
        work = []
        for doc in docs:
            aud = audience_for(doc, file, forced_audience)
            digest = sha256(f"{doc.content_hash}|{aud}|{self.fingerprint}")
            prev = known.get(doc.doc_id)
            if prev in ((digest, "ok"), (sha256(f"{doc.content_hash}|{aud}|{self.legacy}"), "ok")):
                summary.skipped.append(doc.doc_id)
                continue
            chunks = chunk_document(doc, aud, self.settings.chunk_size, self.settings.chunk_overlap)
            if not chunks:
                raise LoadError(f"document {doc.doc_id} produced no text chunks")
            # Indirect injection: reported here, neutralized in every answer's context (assistant/guards/context.py).
            flagged = dict.fromkeys((doc.doc_id, line[:160]) for c in chunks for line in instruction_lines(c.text))
            summary.flagged += list(flagged)
            (summary.updated if prev else summary.added).append(doc.doc_id)
            record = DocumentRecord(doc.doc_id, doc.source, doc.path, digest, len(chunks), aud, doc.title,
                                    time.time(), "ok", "")
            work.append((record, chunks))
        return work

    def _flush(self, batch, bar) -> int:
        self.store.record_model(self.model_path)
        chunks = [c for _, cs in batch for c in cs]
        vectors = self.embedder.embed([c.text for c in chunks], batch_size=self.settings.embedding_batch_size)
        self.store.replace_documents([r for r, _ in batch], chunks, vectors)
        bar.update(len(chunks))
        return len(chunks)

    def delete(self, targets: list[str]) -> list[str]:
        """Delete documents by id, or every document that came from a given file path."""
        with self.store.write_lock():
            ids = []
            for t in targets:
                if self.store.manifest.get(t):
                    ids.append(t)
                # a file's path names all its documents (an export's rows, an e-mail's attachments)
                ids += self.store.manifest.by_path(t) or self.store.manifest.by_path(path_id(Path(t)))
            ids = list(dict.fromkeys(ids))
            if ids:
                self.store.delete_documents(ids)
                self.store.refresh_bm25()
        return ids

