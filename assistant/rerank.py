"""The reranker: a cross-encoder (`python -m training reranker`) that scores (question, passage) pairs.

The retriever's fused top candidates are reordered by it. It reads question and passage together, so it sees what
two separate embeddings cannot — at one forward pass per candidate, which is why it only sees the top ones.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from pathlib import Path

import numpy as np

from assistant.precision import autocast


class RerankerError(ValueError):
    setting = "ASSISTANT_RERANKER_MODEL"  # what a person fixes


class Reranker:
    def __init__(self, model_path: str | Path, bf16: str = "auto"):
        from sentence_transformers.cross_encoder import CrossEncoder

        self.model_path = str(model_path)
        self._model = CrossEncoder(self.model_path, device="cpu")
        # One scoring at a time: two threads running torch at once only fight over the cores.
        self._lock = threading.Lock()
        self.bf16 = bf16

    def score(self, query: str, passages: list[str], batch_size: int = 32) -> np.ndarray:
        """One relevance score per passage (higher = more relevant; comparable within one query only)."""
        if not passages:
            return np.zeros(0, dtype=np.float32)
        with self._lock, autocast(self.bf16):
            return np.asarray(self._model.predict([(query, p) for p in passages], batch_size=batch_size,
                                                  show_progress_bar=False, convert_to_numpy=True), dtype=np.float32)


def resolve_reranker(name: str, rerankers_dir: Path) -> Path:
    """A model folder, or a version in the reranker registry."""
    folder = Path(name) if Path(name).exists() else Path(rerankers_dir) / name / "model"
    if not (folder / "config.json").exists():
        raise RerankerError(f"reranker {name!r} not found (neither a model folder nor a version in {rerankers_dir}): "
                            "see `python -m training rerankers list`")
    return folder


@lru_cache(maxsize=2)
def get_reranker(name: str, rerankers_dir: Path, bf16: str = "auto") -> Reranker:
    return Reranker(resolve_reranker(name, rerankers_dir), bf16)
