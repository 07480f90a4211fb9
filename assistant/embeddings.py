"""The embedding model: loaded once per process from a local folder (never from a hub)."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from functools import lru_cache

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


class _Job:
    __slots__ = ("texts", "batch_size", "progress", "result", "error", "done")

    def __init__(self, texts: list[str], batch_size: int, progress: bool):
        self.texts, self.batch_size, self.progress = texts, batch_size, progress
        self.result, self.error, self.done = None, None, False


class Embedder:
    """Unit-length sentence embeddings; `dim` is fixed by the model.

    Concurrent callers are batched (continuous batching, leader/follower): the model runs one encode at a time, and
    whoever finds it idle encodes every request queued meanwhile in one call. Twenty questions arriving together
    cost about as much as a few alone, and a lone request waits for nothing.
    """

    def __init__(self, model_path: str, cache_entries: int = 20_000):
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()

        from assistant.onnx_encoder import OnnxSentenceEncoder, has_onnx

        self.model_path = model_path
        # A fast encoder (python -m training fast-encoder) carries an int8 ONNX graph: run it with ONNX Runtime.
        self._model = (OnnxSentenceEncoder(model_path) if has_onnx(model_path)
                       else SentenceTransformer(model_path, device="cpu"))
        self.dim = self._model.get_embedding_dimension()
        # Sentences of the knowledge base come back again and again (the extractive backend and the grounding rail
        # embed the retrieved passages' sentences): an LRU of text -> vector turns them into lookups.
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_entries = cache_entries
        self._cache_lock = threading.Lock()
        self._cv = threading.Condition()
        self._queue: list[_Job] = []
        self._busy = False

    def embed(self, texts: list[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        job = _Job(list(texts), batch_size, progress)
        with self._cv:
            self._queue.append(job)
            while not job.done and self._busy:
                self._cv.wait()
            if job.done:
                return self._result(job)
            # The model is idle: lead one batch, which always holds this job. A job with a progress bar (ingestion)
            # runs on its own.
            if job.progress:
                self._queue.remove(job)
                batch = [job]
            else:
                batch = [j for j in self._queue if not j.progress]
                self._queue = [j for j in self._queue if j.progress]
            self._busy = True
        try:
            texts_all = [t for j in batch for t in j.texts]
            vecs = self._model.encode(texts_all, batch_size=max(j.batch_size for j in batch), normalize_embeddings=True,
                                      convert_to_numpy=True, show_progress_bar=batch[0].progress).astype(np.float32)
            start = 0
            for j in batch:
                j.result, start = vecs[start:start + len(j.texts)], start + len(j.texts)
        except BaseException as e:  # every caller in the batch hears of it
            for j in batch:
                j.error = e
            raise
        finally:
            with self._cv:
                for j in batch:
                    j.done = True
                self._busy = False
                self._cv.notify_all()
        return self._result(job)

    def embed_cached(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """`embed`, remembering each text's vector (LRU): for texts that recur, such as the knowledge base's."""
        out: list[np.ndarray | None] = [None] * len(texts)
        with self._cache_lock:
            for i, t in enumerate(texts):
                if (v := self._cache.get(t)) is not None:
                    self._cache.move_to_end(t)
                    out[i] = v
        missing = sorted({t for t, v in zip(texts, out) if v is None})
        if missing:
            fresh = dict(zip(missing, self.embed(missing, batch_size=batch_size)))
            with self._cache_lock:
                self._cache.update(fresh)
                while len(self._cache) > self._cache_entries:
                    self._cache.popitem(last=False)
            out = [fresh[t] if v is None else v for t, v in zip(texts, out)]
        return np.stack(out) if out else np.zeros((0, self.dim), dtype=np.float32)

    def clear_cache(self) -> None:
        with self._cache_lock:
            self._cache.clear()

    @staticmethod
    def _result(job: _Job) -> np.ndarray:
        if job.error is not None:
            raise RuntimeError("embedding failed") from job.error
        return job.result

    def embed_one(self, text: str) -> np.ndarray:
        # The rails, the retriever and the extractive backend embed the same question: compute it once.
        return self.embed_cached([text])[0]


@lru_cache(maxsize=4)
def get_embedder(model_path: str | None = None) -> Embedder:
    from assistant.settings import get_settings

    settings = get_settings()
    return Embedder(model_path or settings.embedding_model_path, settings.embedding_cache_entries)
