"""Questions known to be answered by a sentence of the store, and how close a new question comes to one of them.

A question that a person or a language model wrote *from a document* ("if some1 nicks my car does third party fire
n theft pay?"), with the sentence that answers it quoted, says what that document answers in customers' words.
Known questions are the written-questions files (`python -m training write-questions`; answerable rows, their quote
checked against the document as it is now) and every FAQ row's own question. The pipeline shows staff the nearest
one the retrieved passages answer, answers a question that comes as close to one as customers' paraphrases do
(though the cross-encoder's probability falls short; the threshold is chosen at calibration), and refuses a customer
whose question comes closer to a known question of an internal document than to any the passages answer (a staff
procedure). The files' unanswerable rows ("how many times a year can I call the emergency engineer out?", which the
documents do not say) are kept too: a question nearer to one of them than to any answered one gets no shortcut.

The index is derived from the store and the files, like the BM25 index: rebuilt in any process whenever the store's
generation or a file changes, its vectors kept beside the store so a restart embeds nothing new.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from assistant.answerability import products

_WORD = re.compile(r"[A-Za-z][A-Za-z'-]+")
_STOP = set("""a an the and or of to in on for with by from at as is are was were be been being it its this that these
those your you our we us they them their there here if then than not no any all each every may must can will shall
would should could do does did has have had per up into out over under within after before about also only such
other more most less least what which who when where how why while during between both either one two three four
five six seven eight nine ten first second new same own eur brightwater mutual insurance policy sheet product
wording section""".split())
_FAQ_QUESTION = re.compile(r"Q:\s*(.+\?)")


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def content_words(text: str) -> list[str]:
    return [w for w in _words(text) if w not in _STOP and len(w) > 2]


def norm_quote(text: str) -> str:
    return " ".join(text.split()).lower()  # PDF lines wrap where a quote does not


def chunks_by_file(chunks) -> dict[str, list]:
    out: dict[str, list] = {}
    for c in chunks:
        out.setdefault(Path(c.source).name, []).append(c)
    return out


def quoted_sentence(row: dict, by_source: dict[str, list]):
    """(chunk, sentence) of the chunk of `row`'s document that holds its quote, the candidate sentence that
    overlaps the quote most; (None, None) when the document no longer says it."""
    from assistant.answerability import candidates
    from assistant.schema import Hit

    quote = norm_quote(row["answer"])
    chunk = next((c for c in by_source.get(row["source"], []) if quote in norm_quote(c.text)), None)
    sents = [e.sentence for e in candidates([Hit(chunk, 0.0, 0.0)])] if chunk else []
    if not sents:
        return None, None
    qw = set(content_words(row["answer"]))
    return chunk, max(sents, key=lambda t: (quote in norm_quote(t) or norm_quote(t) in quote,
                                            len(set(content_words(t)) & qw)))


def read_rows(path: Path) -> list[dict]:
    return [json.loads(ln) for ln in Path(path).read_text().splitlines() if ln.strip()]


@dataclass
class KnownMatch:
    question: str  # the known question
    chunk_id: str
    sentence: str  # the sentence of that chunk that answers it
    similarity: float  # cosine between the asked and the known question


class KnownQuestions:
    """The index: known questions, the chunk and sentence answering each, and their vectors."""

    def __init__(self, store, embedder, files: list[str | Path], model_path: str | None = None):
        """`embedder`, or None and the `model_path` of the store's vectors: the model is loaded only if a question
        must be embedded (a re-ingest of unchanged documents loads none)."""
        self.store, self._embedder, self.files = store, embedder, [Path(f) for f in files]
        self.model_path = str(embedder.model_path if embedder is not None else model_path)
        self._lock = threading.Lock()
        self._key = None
        self._rows: list[tuple[str, str, str]] = []  # (question, chunk id, sentence)
        self._vectors = np.zeros((0, 0), dtype=np.float32)
        self._by_chunk: dict[str, np.ndarray] = {}
        self._chunk_ids: list[str] = []
        self._row_chunk = np.zeros(0, dtype=int)
        self._internal = np.zeros(0, dtype=int)  # rows answered by an internal document
        self._documents: set[str] = set()  # documents with known questions
        self._unanswerable: list[str] = []  # written questions the documents do not answer
        self._negative = np.zeros((0, 0), dtype=np.float32)
        self._negative_products: list[set[str]] = []  # the product lines each names

    @classmethod
    def from_settings(cls, store, embedder, settings, model_path: str | None = None) -> KnownQuestions:
        return cls(store, embedder, settings.known_question_files, model_path)

    @property
    def embedder(self):
        if self._embedder is None:
            from assistant.embeddings import get_embedder

            self._embedder = get_embedder(self.model_path)
        return self._embedder

    def key(self) -> tuple:
        files = tuple((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in self.files if f.exists())
        return self.store.manifest.generation(), files, self.model_path

    def cache_path(self) -> Path:
        """Where the vectors are kept: one file per encoder (the store's embedder, each answerability version's
        question matcher), so that calibrating a new version does not evict the served one's."""
        if self.model_path == str(self.store.embedding_model):
            return self.store.dir / "known_questions.npz"
        return self.store.dir / f"known_questions-{hashlib.sha1(self.model_path.encode()).hexdigest()[:12]}.npz"

    def entries(self, chunks=None) -> list[tuple[str, str, str]]:
        """(question, chunk id, sentence) for every known question the store's documents answer now."""
        from assistant.answerability import candidates
        from assistant.schema import Hit

        chunks = chunks if chunks is not None else [c for c, _ in self.store.fetch(self.store.all_ids()).values()]
        out: list[tuple[str, str, str]] = []
        for c in chunks:  # an FAQ row's own question, answered by its first sentence
            m = _FAQ_QUESTION.search(c.text)
            sents = [e.sentence for e in candidates([Hit(c, 0.0, 0.0)])]
            if m and sents:
                out.append((m.group(1).strip(), c.chunk_id, sents[0]))
        by_source = chunks_by_file(chunks)
        for f in self.files:
            for row in read_rows(f) if f.exists() else []:
                if row.get("answerable") and row.get("answer") and row.get("source"):
                    chunk, sentence = quoted_sentence(row, by_source)
                    if sentence:
                        out.append((row["question"], chunk.chunk_id, sentence))
        return list(dict.fromkeys(out))

    def unanswerable(self) -> list[str]:
        """The written questions the documents were checked not to answer."""
        rows = [r for f in self.files if f.exists() for r in read_rows(f)]
        return list(dict.fromkeys(r["question"] for r in rows if r.get("answerable") is False and r.get("question")))

    def refresh(self) -> int:
        """Rebuilds the index if the store or a file changed; returns how many questions it holds."""
        key = self.key()
        with self._lock:
            if key == self._key:
                return len(self._rows)
            from assistant.vocabulary import expand

            chunks = [c for c, _ in self.store.fetch(self.store.all_ids()).values()]
            rows = self.entries(chunks)
            internal = {c.chunk_id for c in chunks if c.audience == "internal"}
            cache = self.cache_path()
            known: dict[str, np.ndarray] = {}
            if cache.exists():  # vectors of an earlier build: a restart or a small change embeds little
                saved = np.load(cache, allow_pickle=False)
                if str(saved["model"]) == self.model_path:
                    known = dict(zip(saved["texts"].tolist(), saved["vectors"]))
            negatives = self.unanswerable()
            texts = [expand(q) for q, _, _ in rows]
            negative_texts = [expand(q) for q in negatives]
            missing = sorted({t for t in texts + negative_texts if t not in known})
            if missing:
                known.update(zip(missing, self.embedder.embed_cached(missing, batch_size=64)))
            stack = lambda ts: (np.stack([known[t] for t in ts]).astype(np.float32) if ts
                                else np.zeros((0, 0), dtype=np.float32))
            vectors, negative = stack(texts), stack(negative_texts)
            if missing:
                tmp = cache.with_suffix(".tmp.npz")
                every = list(dict.fromkeys(texts + negative_texts))
                np.savez(tmp, texts=np.array(every), model=np.array(self.model_path), vectors=stack(every))
                tmp.replace(cache)
            self._rows, self._vectors = rows, vectors
            self._unanswerable, self._negative = negatives, negative
            self._negative_products = [products(q) for q in negatives]
            by_chunk: dict[str, list[int]] = {}
            for i, (_, cid, _) in enumerate(rows):
                by_chunk.setdefault(cid, []).append(i)
            self._by_chunk = {cid: np.array(ix) for cid, ix in by_chunk.items()}
            self._chunk_ids = list(by_chunk)  # each row's chunk as an index into it, for rank_chunks
            position = {cid: i for i, cid in enumerate(self._chunk_ids)}
            self._row_chunk = np.array([position[cid] for _, cid, _ in rows], dtype=int)
            self._internal = np.array([i for i, (_, cid, _) in enumerate(rows) if cid in internal], dtype=int)
            self._documents = {c.doc_id for c in chunks if c.chunk_id in by_chunk}
            self._key = key
            return len(rows)

    def best(self, vector: np.ndarray, chunk_ids: list[str]) -> KnownMatch | None:
        """The known question nearest to `vector` (the asked question, expanded) among those answered by one of
        `chunk_ids` (the retrieved passages)."""
        self.refresh()
        ix = [self._by_chunk[c] for c in dict.fromkeys(chunk_ids) if c in self._by_chunk]
        return self._nearest(vector, np.concatenate(ix) if ix else np.zeros(0, dtype=int))

    def rank_chunks(self, vector: np.ndarray, internal: bool, limit: int, min_similarity: float) -> list[str]:
        """Up to `limit` chunk ids ordered by the nearest known question each answers, those at `min_similarity`
        or closer; `internal`: whether internal documents' questions count (staff)."""
        self.refresh()
        if not len(self._rows):
            return []
        sims = self._vectors @ vector
        if not internal:
            sims[self._internal] = -np.inf
        best = np.full(len(self._chunk_ids), -np.inf, dtype=np.float32)
        np.maximum.at(best, self._row_chunk, sims)
        order = [i for i in np.argsort(-best)[:limit] if best[i] >= min_similarity]
        return [self._chunk_ids[i] for i in order]

    def best_internal(self, vector: np.ndarray) -> KnownMatch | None:
        """The nearest known question an internal document answers (staff procedures), wherever it is."""
        self.refresh()
        return self._nearest(vector, self._internal)

    def covers(self, doc_id: str) -> bool:
        """Whether questions were written from this document (a document ingested since has none)."""
        self.refresh()
        return doc_id in self._documents

    def best_unanswerable(self, vector: np.ndarray, question: str = "") -> tuple[str, float] | None:
        """The nearest written question the documents do not answer, and its cosine. One that names a product line
        `question` does not is another question however close MiniLM puts them ("how much is ur rental car excess
        add-on for travel insurance" is 0.76 from "whats the excess on my car insurance")."""
        self.refresh()
        asked = products(question)
        rows = [i for i, named in enumerate(self._negative_products) if not asked or named <= asked]
        if not rows:
            return None
        sims = self._negative[rows] @ vector
        i = int(np.argmax(sims))
        return self._unanswerable[rows[i]], float(sims[i])

    def _nearest(self, vector: np.ndarray, rows: np.ndarray) -> KnownMatch | None:
        if not len(rows):
            return None
        sims = self._vectors[rows] @ vector
        i = int(np.argmax(sims))
        q, cid, sentence = self._rows[rows[i]]
        return KnownMatch(q, cid, sentence, float(sims[i]))
