"""Retrieval quality and latency on InsuranceQA: dense vs BM25 vs hybrid.

    python bench/retrieval.py [--answers F] [--questions F] [--sample 1000] [--store DIR] [--tune] [--model M ...]
                              [--reranker R]

Ingests the answer pool (one document per answer, id field `answer_id`) into a store kept between runs
(idempotent ingest makes the second run cheap), samples questions with a fixed seed, and prints recall@1/5/10,
MRR@10 (hit = any gold answer retrieved) and p50/p95 retrieval latency (query embedding included).
`--tune` grid-searches the fusion weights on a *separate* validation sample (disjoint question ids), so the
figures on the test sample are not tuned on themselves. `--model` adds a domain-tuned embedding model (from
`python -m training retriever`, which never trains on these test or validation questions), measured side by side
with the stock one. `--reranker` (from `python -m training reranker`) adds a `hybrid+rerank` row per model: the
fused top `rerank_candidates` chunks reordered by the cross-encoder. The data set is research-use only: it is read from
../shared and never copied into the project.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data" / "insuranceqa"


def load_questions(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def sample_questions(questions: list[dict], n: int, seed: int, exclude: set[str] = frozenset()) -> list[dict]:
    pool = [q for q in questions if q["question_id"] not in exclude]
    return random.Random(seed).sample(pool, min(n, len(pool)))


def doc_ranking(hits, depth: int = 10) -> list[str]:
    """Chunk hits → distinct answer ids in rank order."""
    out: list[str] = []
    for h in hits:
        aid = h.chunk.doc_id.rsplit("#", 1)[-1]
        if aid not in out:
            out.append(aid)
        if len(out) == depth:
            break
    return out


def metrics(rankings: list[list[str]], golds: list[set[str]]) -> dict:
    r = {f"recall@{k}": float(np.mean([bool(set(rk[:k]) & g) for rk, g in zip(rankings, golds)])) for k in (1, 5, 10)}
    mrr = []
    for rk, g in zip(rankings, golds):
        mrr.append(next((1.0 / i for i, a in enumerate(rk[:10], 1) if a in g), 0.0))
    r["mrr@10"] = float(np.mean(mrr))
    return r


def run_mode(retriever, questions, mode: str, **kw) -> tuple[dict, np.ndarray]:
    retriever.embedder.clear_cache()  # each mode's latency includes embedding the question, as a live query's does
    rankings, latencies = [], []
    for q in questions:
        t0 = time.perf_counter()
        hits = retriever.retrieve(q["question"], role="staff", k=20, mode=mode, threshold=-1.0, **kw)
        latencies.append((time.perf_counter() - t0) * 1000)
        rankings.append(doc_ranking(hits))
    return metrics(rankings, [set(q["answer_ids"]) for q in questions]), np.array(latencies)


def tune(retriever, questions) -> tuple[float, int]:
    """Grid search of (bm25 weight, rrf k) on validation questions, from one dense and one BM25 pass each."""
    from assistant.retrieve import reciprocal_rank_fusion

    emb = retriever.embedder
    store = retriever.store
    lists = []
    for q in questions:
        dense = [c for c, _ in store.dense_search(emb.embed_one(q["question"]), 50, ("public", "internal"))]
        sparse = [c for c, _ in store.bm25().search(q["question"], 50, ("public", "internal"))]
        lists.append((dense, sparse))
    golds = [set(q["answer_ids"]) for q in questions]
    best = None
    for rrf_k in (5, 10, 20, 30, 60, 100):
        for w in (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0):
            rankings = []
            for dense, sparse in lists:
                fused = reciprocal_rank_fusion([(dense, 1.0), (sparse, w)], rrf_k)
                ids = sorted(fused, key=lambda c: -fused[c])
                rankings.append(_dedupe([c.rsplit("#", 1)[-1] for c in ids]))
            m = metrics(rankings, golds)
            key = (m["recall@5"], m["mrr@10"])
            print(f"  rrf_k={rrf_k:<4} bm25_weight={w:<4} recall@5={m['recall@5']:.3f} mrr@10={m['mrr@10']:.3f}")
            if best is None or key > best[0]:
                best = (key, w, rrf_k)
    return best[1], best[2]


def tune_rerank(retriever, questions) -> float:
    """Grid search of the first-stage weight beside the reranker, on validation questions: one reranker pass each."""
    from assistant.retrieve import rerank_order

    s = retriever.settings
    lists = []
    for q in questions:
        hits = retriever.retrieve(q["question"], role="staff", k=s.rerank_candidates, threshold=-1.0, rerank=False)
        lists.append((hits, retriever.reranker.score(q["question"], [h.chunk.text for h in hits])))
    golds = [set(q["answer_ids"]) for q in questions]
    best = None
    for w in (0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5):
        m = metrics([doc_ranking(rerank_order(h, sc, w, s.fusion_rrf_k)) for h, sc in lists], golds)
        print(f"  rerank_first_stage_weight={w:<4} recall@5={m['recall@5']:.3f} mrr@10={m['mrr@10']:.3f}")
        if best is None or (m["recall@5"], m["mrr@10"]) > best[0]:
            best = ((m["recall@5"], m["mrr@10"]), w)
    return best[1]


def _dedupe(ids: list[str]) -> list[str]:
    seen, out = set(), []
    for i in ids:
        aid = i.split("::")[0]
        if aid not in seen:
            seen.add(aid)
            out.append(aid)
    return out[:10]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--answers", type=Path, default=SHARED / "answers.jsonl")
    p.add_argument("--questions", type=Path, default=SHARED / "questions_dev.jsonl")
    p.add_argument("--sample", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--store", type=Path, default=ROOT / ".bench" / "insuranceqa")
    p.add_argument("--tune", action="store_true", help="grid-search fusion weights on a disjoint validation sample")
    p.add_argument("--tune-sample", type=int, default=500)
    p.add_argument("--reranker", help="reranker folder or `python -m training rerankers` version: adds hybrid+rerank")
    p.add_argument("--skip-stock", action="store_true", help="measure only the --model models (the stock figures "
                   "are in earlier runs' output)")
    p.add_argument("--model", action="append", default=[],
                   help="embedding model folder or `python -m training embedders` version to compare with the stock "
                        "model (repeatable); each gets its own store .bench/insuranceqa-<name>")
    args = p.parse_args()

    from assistant.embeddings import get_embedder
    from assistant.retrieve import HybridRetriever
    from assistant.settings import get_settings
    from assistant.store import KnowledgeStore
    from ingest.pipeline import Ingestor

    settings = get_settings()
    questions = load_questions(args.questions)
    test = sample_questions(questions, args.sample, args.seed)
    models = [] if args.skip_stock and args.model else [("stock", settings.embedding_model_path, args.store)]
    reranker = None
    if args.reranker:
        from assistant.rerank import get_reranker

        reranker = get_reranker(args.reranker, Path(settings.rerankers_dir))
    for m in args.model:
        path = Path(m) if Path(m).exists() else Path(settings.embedders_dir) / m / "model"
        name = path.parent.name if path.name == "model" else path.name
        models.append((name, str(path.resolve()), args.store.with_name(f"{args.store.name}-{name}")))
    results = {}
    for name, model_path, store_dir in models:
        store = KnowledgeStore(store_dir, settings.collection)
        embedder = get_embedder(model_path)
        summary = Ingestor(store, settings, embedder).ingest([args.answers], audience="public")
        print(f"ingest ({name}): {summary.line()}")
        if summary.failed:
            sys.exit(f"ingest failed: {summary.failed}")
        retriever = HybridRetriever(store, embedder, settings, reranker)
        retriever.retrieve("warm up", role="staff")  # first call loads the BM25 index
        if args.tune:
            val = sample_questions(questions, args.tune_sample, args.seed + 1, exclude={q["question_id"] for q in test})
            w, k = tune(retriever, val)
            print(f"tuned on {len(val)} validation questions: fusion_bm25_weight={w} fusion_rrf_k={k} "
                  "(set ASSISTANT_FUSION_BM25_WEIGHT / ASSISTANT_FUSION_RRF_K or the settings defaults)")
            settings = settings.model_copy(update={"fusion_bm25_weight": w, "fusion_rrf_k": k})
            retriever = HybridRetriever(store, embedder, settings, reranker)
            if reranker:
                w = tune_rerank(retriever, val)
                print(f"tuned on {len(val)} validation questions: rerank_first_stage_weight={w} "
                      "(ASSISTANT_RERANK_FIRST_STAGE_WEIGHT)")
                settings = settings.model_copy(update={"rerank_first_stage_weight": w})
                retriever = HybridRetriever(store, embedder, settings, reranker)
        print(f"\n{name}: {len(test)} questions (seed {args.seed}), {store.count()} chunks; fusion "
              f"dense={settings.fusion_dense_weight} bm25={settings.fusion_bm25_weight} rrf_k={settings.fusion_rrf_k}"
              + (f"; rerank top {settings.rerank_candidates}, first-stage weight "
                 f"{settings.rerank_first_stage_weight}" if reranker else ""))
        print(f"{'retriever':<13} {'R@1':>6} {'R@5':>6} {'R@10':>6} {'MRR@10':>7} {'p50 ms':>7} {'p95 ms':>7}")
        for mode in ("dense", "bm25", "hybrid") + (("hybrid+rerank",) if reranker else ()):
            m, lat = run_mode(retriever, test, mode.split("+")[0], rerank=mode.endswith("+rerank"))
            m.update(p50_ms=float(np.percentile(lat, 50)), p95_ms=float(np.percentile(lat, 95)))
            results[f"{name}/{mode}"] = m
            print(f"{mode:<13} {m['recall@1']:>6.3f} {m['recall@5']:>6.3f} {m['recall@10']:>6.3f} {m['mrr@10']:>7.3f} "
                  f"{m['p50_ms']:>7.1f} {m['p95_ms']:>7.1f}")
    print(json.dumps({"questions": len(test), "results": results}))


if __name__ == "__main__":
    main()
