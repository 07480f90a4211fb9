"""The knowledge store: Chroma (vectors, text, metadata) + a BM25 index + a manifest of documents.

Chroma is the source of truth for chunks. The manifest (SQLite) records what was ingested from where, and a
`generation` counter bumped by every change. The BM25 index is derived from Chroma: it is rebuilt after each
change and, in any process, whenever its generation lags the manifest's — so the two cannot drift, even after
a crash or a write by another process.

Crash safety: a document's manifest row is marked `pending` before its chunks are touched and `ok` after. A
`pending` row is always re-done on the next ingest; chunk ids are deterministic and writes are upserts, so a
re-run never duplicates.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import re
import sqlite3
import threading
import time
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from assistant.schema import ROLE_AUDIENCES, Chunk

POINTER = "embedding.json"
_ADD_BATCH = 1000


def analyze(texts: list[str]) -> list[list[str]]:
    """BM25 analysis: lower-case words, English stop words removed, Snowball-stemmed — bm25s.tokenize's analysis
    (tests/test_ingest.py checks they agree), without its per-call vocabulary and progress-bar set-up, which cost
    more than the analysis itself on the short texts of a question (and take a global lock under concurrency)."""
    pattern, stop = _analyzer()
    stem = _stemmer().stemWords
    out = []
    for text in texts:
        words = [w for w in pattern.findall(text.lower()) if w not in stop]
        out.append(stem(words) if words else [])
    return out


@lru_cache(maxsize=1)
def _analyzer():
    from bm25s.tokenization import _infer_stopwords

    return re.compile(r"(?u)\b\w\w+\b"), frozenset(_infer_stopwords("en"))


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


@dataclass
class DocumentRecord:
    doc_id: str
    source: str
    path: str
    content_hash: str
    chunks: int
    audience: str
    title: str
    ingested_at: float
    status: str
    flags: str = ""

    def to_json(self) -> dict:
        d = dict(self.__dict__)
        d["ingested_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.ingested_at))
        return d


class Manifest:
    """SQLite table of ingested documents; one connection per thread (sqlite3 objects are not shareable)."""

    def __init__(self, path: Path):
        self.path = path
        self._local = threading.local()
        with self._conn() as c:
            c.execute(
                "CREATE TABLE IF NOT EXISTS documents (doc_id TEXT PRIMARY KEY, source TEXT, path TEXT,"
                " content_hash TEXT, chunks INTEGER, audience TEXT, title TEXT, ingested_at REAL, status TEXT,"
                " flags TEXT DEFAULT '')"
            )
            c.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            c.execute("INSERT OR IGNORE INTO meta VALUES ('generation', '0')")
            # A file whose every document is stored, by the digest of its bytes: re-ingesting it unchanged skips the
            # loader (OCR, table extraction) entirely.
            c.execute("CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, digest TEXT)")

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            self._local.conn = conn
        return conn

    def generation(self) -> int:
        return int(self._conn().execute("SELECT value FROM meta WHERE key='generation'").fetchone()[0])

    def get(self, doc_id: str) -> DocumentRecord | None:
        row = self._conn().execute("SELECT * FROM documents WHERE doc_id=?", (doc_id,)).fetchone()
        return DocumentRecord(*row) if row else None

    def all(self) -> list[DocumentRecord]:
        rows = self._conn().execute("SELECT * FROM documents ORDER BY doc_id").fetchall()
        return [DocumentRecord(*r) for r in rows]

    def hashes(self) -> dict[str, tuple[str, str]]:
        rows = self._conn().execute("SELECT doc_id, content_hash, status FROM documents").fetchall()
        return {r[0]: (r[1], r[2]) for r in rows}

    def by_path(self, path: str) -> list[str]:
        return [r[0] for r in self._conn().execute("SELECT doc_id FROM documents WHERE path=?", (path,))]

    def file_digest(self, path: str) -> str | None:
        row = self._conn().execute("SELECT digest FROM files WHERE path=?", (path,)).fetchone()
        return row[0] if row else None

    def set_file_digests(self, items: list[tuple[str, str]]) -> None:
        with self._conn() as c:
            c.executemany("INSERT OR REPLACE INTO files VALUES (?,?)", items)

    def mark_pending(self, records: list[DocumentRecord]) -> None:
        with self._conn() as c:
            c.executemany(
                "INSERT INTO documents VALUES (?,?,?,?,?,?,?,?,'pending',?) ON CONFLICT(doc_id) DO UPDATE SET"
                " status='pending'",
                [(r.doc_id, r.source, r.path, "", 0, r.audience, r.title, r.ingested_at, r.flags) for r in records],
            )

    def commit(self, records: list[DocumentRecord]) -> None:
        with self._conn() as c:
            c.executemany(
                "INSERT OR REPLACE INTO documents VALUES (?,?,?,?,?,?,?,?,'ok',?)",
                [
                    (r.doc_id, r.source, r.path, r.content_hash, r.chunks, r.audience, r.title, r.ingested_at, r.flags)
                    for r in records
                ],
            )
            self._bump(c)

    def remove(self, doc_ids: list[str]) -> None:
        with self._conn() as c:
            paths = {r[0] for d in doc_ids for r in c.execute("SELECT path FROM documents WHERE doc_id=?", (d,))}
            c.executemany("DELETE FROM documents WHERE doc_id=?", [(d,) for d in doc_ids])
            c.executemany("DELETE FROM files WHERE path=?", [(p,) for p in paths])  # the file must be read again
            self._bump(c)

    def clear(self) -> None:
        with self._conn() as c:
            c.execute("DELETE FROM documents")
            c.execute("DELETE FROM files")
            self._bump(c)

    @staticmethod
    def _bump(c: sqlite3.Connection) -> None:
        c.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key='generation'")


class BM25Index:
    """A bm25s index over every chunk, with the row → chunk id / audience maps and document frequencies."""

    def __init__(self, retriever, chunk_ids: list[str], audiences: list[str], df: dict[str, int], generation: int):
        self.retriever = retriever
        self.chunk_ids = chunk_ids
        self.audiences = np.array(audiences)
        self.df = df
        self.n_docs = len(chunk_ids)
        self.generation = generation
        self._masks = {aud: np.isin(self.audiences, aud).astype(np.float32) for aud in ROLE_AUDIENCES.values()}
        self.counts = Counter(audiences)

    @classmethod
    def build(cls, chunk_ids: list[str], texts: list[str], audiences: list[str], generation: int) -> "BM25Index":
        import bm25s

        tokens = analyze(texts) if texts else []
        retriever = None
        if chunk_ids:
            retriever = bm25s.BM25()
            retriever.index(tokens, show_progress=False)
        df = Counter(t for toks in tokens for t in set(toks))
        return cls(retriever, chunk_ids, audiences, dict(df), generation)

    def idf(self, token: str) -> float:
        # BM25-style idf; unseen terms get the largest idf (they are what makes a question specific).
        n = self.df.get(token, 0)
        return math.log(1 + (self.n_docs - n + 0.5) / (n + 0.5))

    def search(self, query: str, k: int, audiences: tuple[str, ...]) -> list[tuple[str, float]]:
        if self.retriever is None:
            return []
        tokens = analyze([query])[0]
        known = [t for t in tokens if t in self.retriever.vocab_dict]
        if not known:
            return []
        scores = self.retriever.get_scores(known) * self._masks[audiences]
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top])]
        return [(self.chunk_ids[i], float(scores[i])) for i in top if scores[i] > 0]

    def save(self, folder: Path) -> None:
        tmp = folder.with_name(folder.name + ".tmp")
        if tmp.exists():
            _rmtree(tmp)
        tmp.mkdir(parents=True)
        if self.retriever is not None:
            self.retriever.save(str(tmp / "bm25s"))
        meta = {"generation": self.generation, "chunk_ids": self.chunk_ids, "audiences": self.audiences.tolist(), "df": self.df}
        (tmp / "index.json").write_text(json.dumps(meta))
        # Swap in the finished folder: readers never see a half-written index.
        old = folder.with_name(folder.name + ".old")
        if folder.exists():
            if old.exists():
                _rmtree(old)
            os.replace(folder, old)
        os.replace(tmp, folder)
        if old.exists():
            _rmtree(old)

    @classmethod
    def load(cls, folder: Path) -> "BM25Index | None":
        import bm25s

        try:
            meta = json.loads((folder / "index.json").read_text())
            retriever = bm25s.BM25.load(str(folder / "bm25s")) if meta["chunk_ids"] else None
        except (OSError, ValueError, KeyError):
            return None
        return cls(retriever, meta["chunk_ids"], meta["audiences"], meta["df"], meta["generation"])


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def _resolve_model(recorded: str | None) -> str | None:
    if recorded == "packaged":
        from assistant.settings import _packaged_embedding_model

        return _packaged_embedding_model()
    return recorded


class KnowledgeStore:
    """Everything persistent about the knowledge base, in one folder."""

    def __init__(self, store_dir: Path | str, collection: str = "knowledge_base", chroma_host: str | None = None, chroma_port: int = 8000):
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        self.dir = Path(store_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=True)
        if chroma_host:
            self.client = chromadb.HttpClient(host=chroma_host, port=chroma_port, settings=chroma_settings)
        else:
            self.client = chromadb.PersistentClient(path=str(self.dir / "chroma"), settings=chroma_settings)
        # The store records which embedding model built its vectors (and so must embed queries): `embedding.json`,
        # written by the first ingest and by `switch_embedding`. Without it: the configured collection and model.
        pointer = self.pointer()
        self.collection_name = pointer.get("collection", collection)
        self.embedding_model: str | None = _resolve_model(pointer.get("model"))
        # One collection per audience: a customer's query never touches internal vectors, and needs no metadata
        # filter (a filtered Chroma query costs ~100x an unfiltered one on 30k vectors).
        self.collections = {aud: self._collection(aud) for aud in ("public", "internal")}
        self.manifest = Manifest(self.dir / "manifest.sqlite")
        self._bm25: BM25Index | None = None
        self._bm25_lock = threading.RLock()

    @classmethod
    def from_settings(cls, settings=None, store_dir: Path | str | None = None) -> "KnowledgeStore":
        from assistant.settings import get_settings

        s = settings or get_settings()
        return cls(store_dir or s.store_dir, s.collection, s.chroma_host, s.chroma_port)

    def _collection(self, audience: str):
        # embedding_function=None: we always pass vectors; Chroma's default embedder would download a model.
        return self.client.get_or_create_collection(
            f"{self.collection_name}-{audience}", embedding_function=None, metadata={"hnsw:space": "cosine"}
        )

    # --- which embedding model (and collection) is live ------------------------------------------------------------
    def pointer(self) -> dict:
        f = self.dir / POINTER
        return json.loads(f.read_text()) if f.exists() else {}

    def _write_pointer(self, collection: str, model: str, **extra) -> None:
        from assistant.settings import _packaged_embedding_model

        # The packaged model by name, not path: the store stays valid when the checkout or the venv moves.
        recorded = "packaged" if model == _packaged_embedding_model() else model
        tmp = self.dir / f"{POINTER}.tmp"
        tmp.write_text(json.dumps({"collection": collection, "model": recorded, "since": time.time(), **extra}, indent=2))
        os.replace(tmp, self.dir / POINTER)  # atomic: a reader sees the old pair or the new one
        self.collection_name, self.embedding_model = collection, _resolve_model(recorded)

    def record_model(self, model: str) -> None:
        """Called by ingestion: the first model to write vectors here is the store's model from then on."""
        if not (self.dir / POINTER).exists():
            self._write_pointer(self.collection_name, model)

    def switch_embedding(self, model: str, embedder, progress: bool = True) -> dict:
        """Re-embed every chunk with `model` into new collections, then swap the pointer atomically. The old
        collections stay (and keep serving processes started before the swap) until `drop_collection`."""
        from tqdm.auto import tqdm

        with self.write_lock():
            old = self.collection_name
            base = self.pointer().get("base", old)
            tag = Path(model).parent.name if Path(model).name == "model" else Path(model).name
            new = re.sub(r"[^A-Za-z0-9._-]", "-", f"{base}.{tag}")[:200].strip("-._") or f"{base}.switched"
            if new == old:
                raise ValueError(f"the store already uses {model}")
            total = sum(self.bm25().counts.values())
            bar = tqdm(total=total, unit="chunk", desc="re-embedding", disable=not progress)
            for aud, col in self.collections.items():
                target = self.client.get_or_create_collection(f"{new}-{aud}", embedding_function=None,
                                                              metadata={"hnsw:space": "cosine"})
                for offset in range(0, col.count(), 1000):
                    got = col.get(include=["documents", "metadatas"], limit=1000, offset=offset)
                    vectors = embedder.embed(got["documents"])
                    target.upsert(ids=got["ids"], embeddings=vectors, documents=got["documents"], metadatas=got["metadatas"])
                    bar.update(len(got["ids"]))
            bar.close()
            self._write_pointer(new, model, base=base, previous=old)
            self.collections = {aud: self._collection(aud) for aud in ("public", "internal")}
        return {"collection": new, "previous": old, "chunks": total, "model": model}

    def collection_sets(self) -> list[dict]:
        """Every set of per-audience collections in this store: name, chunks, whether live."""
        sets: dict[str, int] = {}
        for col in self.client.list_collections():
            name = col.name if hasattr(col, "name") else str(col)
            stem, _, aud = name.rpartition("-")
            if aud in ("public", "internal"):
                sets[stem] = sets.get(stem, 0) + self.client.get_collection(name).count()
        return [{"name": n, "chunks": c, "live": n == self.collection_name} for n, c in sorted(sets.items())]

    def drop_collection(self, name: str) -> None:
        if name == self.collection_name:
            raise ValueError(f"{name} is the live collection; switch to another model first")
        with self.write_lock():
            for aud in ("public", "internal"):
                try:
                    self.client.delete_collection(f"{name}-{aud}")
                except Exception as e:  # chromadb raises its own NotFound types across versions
                    if "not exist" not in str(e).lower() and "not found" not in str(e).lower():
                        raise

    # --- writing (callers hold `write_lock`) ------------------------------------------------------------------
    @contextlib.contextmanager
    def write_lock(self):
        """One writer at a time across processes (ingest CLI, UI, API workers)."""
        with open(self.dir / ".write.lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def replace_documents(self, records, chunks: list[Chunk], embeddings: np.ndarray) -> None:
        """Replace the chunks of `records`' documents by `chunks` (crash-safe, see module doc)."""
        doc_ids = [r.doc_id for r in records]
        self.manifest.mark_pending(records)
        self._delete_chunks(doc_ids)
        for aud, col in self.collections.items():
            idx = [i for i, c in enumerate(chunks) if c.audience == aud]
            for start in range(0, len(idx), _ADD_BATCH):
                part = idx[start : start + _ADD_BATCH]
                col.upsert(
                    ids=[chunks[i].chunk_id for i in part],
                    embeddings=embeddings[part],
                    documents=[chunks[i].text for i in part],
                    metadatas=[chunks[i].metadata() for i in part],
                )
        self.manifest.commit(records)

    def delete_documents(self, doc_ids: list[str]) -> int:
        known = [d for d in doc_ids if self.manifest.get(d) is not None]
        self._delete_chunks(doc_ids)
        self.manifest.remove(doc_ids)
        return len(known)

    def _delete_chunks(self, doc_ids: list[str]) -> None:
        for i in range(0, len(doc_ids), 500):
            part = doc_ids[i : i + 500]
            for col in self.collections.values():
                col.delete(where={"doc_id": {"$in": part}} if len(part) > 1 else {"doc_id": part[0]})

    def reset(self) -> None:
        for aud in list(self.collections):
            self.client.delete_collection(f"{self.collection_name}-{aud}")
            self.collections[aud] = self._collection(aud)
        self.manifest.clear()
        self.refresh_bm25()

    def refresh_bm25(self) -> BM25Index:
        """Rebuild the BM25 index from Chroma's contents and persist it (writers, holding `write_lock`)."""
        with self._bm25_lock:
            index = self._build_bm25()
            index.save(self.dir / "bm25")
            self._bm25 = index
            return index

    def _build_bm25(self) -> BM25Index:
        generation = self.manifest.generation()
        ids, texts, audiences = [], [], []
        for aud, col in self.collections.items():
            for offset in range(0, col.count(), 5000):
                got = col.get(include=["documents"], limit=5000, offset=offset)
                ids += got["ids"]
                texts += got["documents"]
                audiences += [aud] * len(got["ids"])
        return BM25Index.build(ids, texts, audiences, generation)

    # --- reading ---------------------------------------------------------------------------------------------
    def bm25(self) -> BM25Index:
        """The BM25 index, reloaded or rebuilt if any process changed the store since it was loaded."""
        generation = self.manifest.generation()
        if self._bm25 is not None and self._bm25.generation == generation:
            return self._bm25
        # One thread reloads; the others wait and reuse its index (this also keeps numpy's header parsing, which
        # compiles code and is not thread-safe on CPython 3.11, to one thread).
        with self._bm25_lock:
            if self._bm25 is not None and self._bm25.generation == generation:
                return self._bm25
            loaded = BM25Index.load(self.dir / "bm25")
            if loaded is not None and loaded.generation == generation:
                self._bm25 = loaded
                return loaded
            # Another process is mid-write (it saves the index when done): build this process's own copy in
            # memory. Only writers save, so two processes never write the folder at once.
            self._bm25 = self._build_bm25()
            return self._bm25

    def dense_search(self, query_embedding: np.ndarray, k: int, audiences: tuple[str, ...]) -> list[tuple[str, float]]:
        found: list[tuple[str, float]] = []
        # Chroma's count() is a ~5 ms round trip; the generation-checked BM25 index knows the sizes already.
        counts = self.bm25().counts
        for aud in audiences:
            col = self.collections[aud]
            n = counts.get(aud, 0)
            if n == 0:
                continue
            res = col.query(query_embeddings=[query_embedding.tolist()], n_results=min(k, n), include=["distances"])
            found += [(cid, 1.0 - dist) for cid, dist in zip(res["ids"][0], res["distances"][0])]
        return sorted(found, key=lambda x: -x[1])[:k]

    def fetch(self, chunk_ids: list[str], audiences: tuple[str, ...] = ("public", "internal"),
              embeddings_for: set[str] = frozenset()) -> dict[str, tuple[Chunk, np.ndarray | None]]:
        """Chunks by id from the given audiences' collections, with their vectors for the ids in `embeddings_for`."""
        out: dict[str, tuple[Chunk, np.ndarray | None]] = {}
        chunk_ids = list(dict.fromkeys(chunk_ids))  # Chroma refuses a repeated id (an answer citing [1] twice)
        if not chunk_ids:
            return out
        # One round trip per collection: asking for the vectors too is cheaper than a second get.
        include = ["documents", "metadatas"] + (["embeddings"] if embeddings_for else [])
        counts = self.bm25().counts
        for aud in audiences:
            if counts.get(aud, 0) == 0:
                continue
            got = self.collections[aud].get(ids=chunk_ids, include=include)
            vectors = got["embeddings"] if embeddings_for else [None] * len(got["ids"])
            for cid, text, meta, vec in zip(got["ids"], got["documents"], got["metadatas"], vectors):
                emb = np.asarray(vec, dtype=np.float32) if cid in embeddings_for else None
                out[cid] = (Chunk.from_store(cid, text, meta), emb)
        return out

    def chunks_of(self, doc_id: str) -> list[Chunk]:
        out = []
        for col in self.collections.values():
            got = col.get(where={"doc_id": doc_id}, include=["documents", "metadatas"])
            out += [Chunk.from_store(cid, t, m) for cid, t, m in zip(got["ids"], got["documents"], got["metadatas"])]
        return out

    def texts(self, audience: str) -> list[str]:
        """Every chunk text of one audience (paged: bounded memory per round trip)."""
        col, out = self.collections[audience], []
        for offset in range(0, self.bm25().counts.get(audience, 0), 5000):
            out += col.get(include=["documents"], limit=5000, offset=offset)["documents"]
        return out

    def all_ids(self) -> list[str]:
        return [cid for col in self.collections.values() for cid in col.get(include=[])["ids"]]

    def count(self) -> int:
        return sum(col.count() for col in self.collections.values())

    def inconsistent_documents(self) -> set[str]:
        """Documents whose chunks in Chroma do not match the manifest (a store restored from a partial backup, a
        Chroma folder replaced or lost); chunks of unknown documents are deleted. Cheap when all is well: two
        counts against the manifest's totals."""
        records = {r.doc_id: r for r in self.manifest.all()}
        expected = Counter()
        for r in records.values():
            expected[r.audience] += r.chunks
        if all(self.collections[a].count() == expected.get(a, 0) for a in self.collections):
            return set()
        found: Counter = Counter()
        for aud, col in self.collections.items():
            metas = col.get(include=["metadatas"])
            orphans = [cid for cid, m in zip(metas["ids"], metas["metadatas"]) if m.get("doc_id") not in records]
            if orphans:
                col.delete(ids=orphans)
            for m in metas["metadatas"]:
                if m.get("doc_id") in records:
                    found[(m["doc_id"], aud)] += 1
        return {d for d, r in records.items() if found[(d, r.audience)] != r.chunks}
