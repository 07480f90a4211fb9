"""The embedding model: loaded once per process from a local folder (never from a hub)."""

from __future__ import annotations

import os
import threading
from functools import lru_cache

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


class Embedder:
    """Unit-length sentence embeddings; `dim` is fixed by the model."""

    def __init__(self, model_path: str):
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()

        self.model_path = model_path
        self._model = SentenceTransformer(model_path, device="cpu")
        self.dim = self._model.get_embedding_dimension()
        # torch inference is not re-entrant friendly under Streamlit/uvicorn threads: serialize.
        self._lock = threading.Lock()

    def embed(self, texts: list[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            vecs = self._model.encode(
                texts,
                batch_size=batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=progress,
            )
        return vecs.astype(np.float32)

    def embed_one(self, text: str) -> np.ndarray:
        # The retriever and the extractive backend embed the same question: compute it once.
        return self._embed_one_cached(text).copy()

    @lru_cache(maxsize=256)
    def _embed_one_cached(self, text: str) -> np.ndarray:
        return self.embed([text])[0]


@lru_cache(maxsize=4)
def get_embedder(model_path: str | None = None) -> Embedder:
    if model_path is None:
        from assistant.settings import get_settings

        model_path = get_settings().embedding_model_path
    return Embedder(model_path)
