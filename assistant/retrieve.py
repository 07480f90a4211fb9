"""Hybrid retrieval: dense (Chroma) + BM25, fused by weighted reciprocal rank fusion, optionally reranked.

The audience filter is part of both store queries, so a customer's query can never return internal chunks.
A chunk counts as context only if its cosine similarity to the question reaches the relevance threshold:
RRF scores are rank-based and say nothing about whether anything relevant was found at all.
A third ranking joins the fusion (`fusion_known_weight`): the passages that answer a question known to be answered
there (assistant/known_questions.py) that comes as close to the asked one as a paraphrase — questions written from
the documents in customers' words find the passage their words miss ("What payment methods do you accept?" for
"Ways to pay"): the doc2query idea, without touching the chunks. Only paraphrases count, so a document ingested
without known questions is not pushed out by the others' (measured in docs/answerability.md).
With a reranker configured (`reranker_model`), the fused top `rerank_candidates` that pass that threshold are
reordered by the cross-encoder's scores before the top k are kept.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

from assistant.schema import ROLE_AUDIENCES, Hit
from assistant.vocabulary import expand

Mode = Literal["hybrid", "dense", "bm25"]


def reciprocal_rank_fusion(rankings: list[tuple[list[str], float]], k: int) -> dict[str, float]:
    """score(d) = sum_i w_i / (k + rank_i(d)), ranks starting at 1."""
    fused: dict[str, float] = {}
    for ids, weight in rankings:
        for rank, cid in enumerate(ids, start=1):
            fused[cid] = fused.get(cid, 0.0) + weight / (k + rank)
    return fused


def rerank_order(hits: list[Hit], scores, first_stage_weight: float, rrf_k: int) -> list[Hit]:
    """The reranker's order; with a first-stage weight, the reranker's ranks fused (RRF) with the fused order the
    hits arrive in — a hedge where the reranker is weaker than the retriever on some questions."""
    by_score = [int(i) for i in np.argsort(-np.asarray(scores), kind="stable")]  # ties keep the fused order
    if first_stage_weight <= 0:
        return [hits[i] for i in by_score]
    fused = reciprocal_rank_fusion([(by_score, 1.0), (list(range(len(hits))), first_stage_weight)], rrf_k)
    return [hits[i] for i in sorted(fused, key=lambda i: -fused[i])]


class HybridRetriever:
    def __init__(self, store, embedder, settings, reranker=None, known=None):
        """`known`: a zero-argument callable returning the known-question index to rank passages by (or None)."""
        self.store = store
        self.known = known
        self.embedder = embedder
        self.settings = settings
        if reranker is None and settings.reranker_model:
            from assistant.rerank import get_reranker

            reranker = get_reranker(settings.reranker_model, Path(settings.rerankers_dir), settings.cpu_bf16)
        self.reranker = reranker

    def retrieve(
        self,
        query: str,
        role: str = "customer",
        k: int | None = None,
        mode: Mode = "hybrid",
        threshold: float | None = None,
        dense_weight: float | None = None,
        bm25_weight: float | None = None,
        rerank: bool = True,
        known_weight: float | None = None,
        known=None,
    ) -> list[Hit]:
        """The top `k` passages for `query` in `role`'s audiences; `known`: the known-question index to rank by
        (that of a model being calibrated) instead of `self.known()`."""
        s = self.settings
        k = k or s.retrieval_k
        threshold = s.relevance_threshold if threshold is None else threshold
        audiences = ROLE_AUDIENCES[role]
        candidates = max(s.candidate_k, k)

        query = expand(query)  # customers' words → the documents' (vocabulary.yaml)
        q = self.embedder.embed_one(query)
        dense = self.store.dense_search(q, candidates, audiences) if mode != "bm25" else []
        sparse = self.store.bm25().search(query, candidates, audiences) if mode != "dense" else []
        dense_ids = [cid for cid, _ in dense]
        sparse_ids = [cid for cid, _ in sparse]
        rankings = [(dense_ids, s.fusion_dense_weight if dense_weight is None else dense_weight),
                    (sparse_ids, s.fusion_bm25_weight if bm25_weight is None else bm25_weight)]
        known_weight = s.fusion_known_weight if known_weight is None else known_weight
        index = (known or (self.known() if self.known else None)) if known_weight > 0 and mode == "hybrid" else None
        if index is not None:
            vector = q if index.embedder is self.embedder else index.embedder.embed_one(query)
            rankings.append((index.rank_chunks(vector, "internal" in audiences, candidates,
                                               s.known_paraphrase_similarity), known_weight))
        fused = reciprocal_rank_fusion(rankings, s.fusion_rrf_k)
        rerank = rerank and self.reranker is not None
        ranked = sorted(fused, key=lambda cid: -fused[cid])[: max(k, s.rerank_candidates) if rerank else k]
        dense_sim = dict(dense)
        fetched = self.store.fetch(ranked, audiences, embeddings_for={c for c in ranked if c not in dense_sim})
        dense_rank = {cid: i for i, cid in enumerate(dense_ids, 1)}
        sparse_rank = {cid: i for i, cid in enumerate(sparse_ids, 1)}
        hits = []
        for cid in ranked:
            if cid not in fetched:  # deleted between the two queries
                continue
            chunk, emb = fetched[cid]
            # Defence in depth: the store query already filtered by audience.
            if chunk.audience not in audiences:
                continue
            sim = dense_sim[cid] if cid in dense_sim else float(np.dot(q, emb))
            if sim < threshold:
                continue
            hits.append(Hit(chunk, fused[cid], sim, dense_rank.get(cid), sparse_rank.get(cid)))
        if rerank and hits:
            scores = self.reranker.score(query, [h.chunk.text for h in hits])
            for h, r in zip(hits, scores):
                h.rerank_score = float(r)
            hits = rerank_order(hits, scores, s.rerank_first_stage_weight, s.fusion_rrf_k)
        return hits[:k]
