"""The reranker: a cross-encoder that reads the question and a candidate passage together and scores the pair,
reordering the retriever's top candidates.

    python -m training reranker [--base PATH|VERSION] [--miner PATH|VERSION] [--pairs FILE] [--insuranceqa DIR]
                                [--set KEY=VALUE]

A bi-encoder embeds question and passage apart, so it cannot weigh one word of the question against one sentence
of the answer; a cross-encoder can, at the price of a forward pass per (question, candidate) — affordable for the
20 candidates of one question, not for the whole store. Same pairs as `python -m training retriever` (the knowledge
base by default; `--pairs`; InsuranceQA opt-in, its test and validation questions never trained on). Negatives are
the ones the reranker will face: passages the first-stage retriever (`miner`: an embedding model, e.g. the tuned
retriever or its fast encoder) ranks high for the question, minus gold answers and near-duplicates of the gold
passage (`negative_margin`). Loss: sentence-transformers' cross-encoder MultipleNegativesRankingLoss — a softmax
over the positive, the hard negatives and `in_batch_negatives` other questions' passages. Saved as a Hugging Face
sequence-classification model (one logit) in the reranker registry; `ASSISTANT_RERANKER_MODEL` turns it on.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict

from training.registry import RegistryError
from training.retriever import collect_pairs, mine_dense_negatives, resolve_model, top_candidates


class RerankerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    preset: str = "reranker"
    base: str | None = None  # folder, reranker version (another round) or embedders version; None: the packaged MiniLM
    miner: str | None = None  # first-stage embedding model that mines negatives and candidates; None: the packaged one
    kb: list[str] = ["data/sample_kb"]
    pairs_file: str | None = None
    insuranceqa: str | None = None
    all_answers: bool = False
    negatives: int = 3  # hard negatives per question
    negative_ranks: list[int] = [0, 20]  # ... drawn from the miner's ranks (first inclusive, last exclusive)
    negative_margin: float = 0.05  # ... scoring below (1 - margin) x the gold passage's score
    in_batch_negatives: int = 1  # other questions' passages added to each softmax
    max_questions: int | None = None  # cap on training questions (CPU budget)
    skip_questions: int = 0  # a second round from `base` on the next questions (pairs are shuffled by `seed`)
    epochs: int = 1
    batch_size: int = 16
    lr: float = 4e-5
    warmup_ratio: float = 0.1
    max_length: int = 160  # question + passage tokens
    max_steps: int = -1
    seed: int = 0
    candidates: int = 20  # first-stage candidates reranked in the held-out check


def rerank_recall(model, questions: list[str], candidates: list[list[str]], golds: list[set[str]],
                  batch_size: int = 64) -> dict:
    """Recall@1/5 of the first-stage order and of the reranked one, over the same candidate lists."""
    pairs = [(q, c) for q, cands in zip(questions, candidates) for c in cands]
    scores = model.predict(pairs, batch_size=batch_size, show_progress_bar=False, convert_to_numpy=True)
    out = {"first_stage": [], "reranked": []}
    start = 0
    for cands, gold in zip(candidates, golds):
        s = scores[start:start + len(cands)]
        start += len(cands)
        reranked = [cands[i] for i in np.argsort(-s, kind="stable")]
        out["first_stage"].append([bool(set(cands[:k]) & gold) for k in (1, 5)])
        out["reranked"].append([bool(set(reranked[:k]) & gold) for k in (1, 5)])
    return {f"{name}_recall@{k}": round(float(np.mean([h[i] for h in hits])), 4)
            for name, hits in out.items() for i, k in enumerate((1, 5))}


def resolve_base(name: str | None, registry, embedders) -> str:
    """A folder, a reranker version (another round of training), an embedding-model version, or the stock MiniLM."""
    if name in (None, "stock") or Path(name).exists():
        return resolve_model(name, embedders)
    for reg in (registry, embedders):
        if (reg.dir / name / "metadata.json").exists():
            return str(reg.path(name) / "model")
    raise RegistryError(f"base {name!r} is neither a folder nor a version in {registry.dir} or {embedders.dir} "
                        "(see `python -m training rerankers list` and `embedders list`)")


def run(cfg: RerankerConfig, registry, embedders, progress: bool = True) -> str:
    """Trains a reranker version in `registry`; `embedders` resolves `base` and `miner` versions."""
    import datasets
    import pyarrow as pa
    import torch
    from sentence_transformers.cross_encoder import CrossEncoder, CrossEncoderTrainer, CrossEncoderTrainingArguments
    from sentence_transformers.cross_encoder.losses import MultipleNegativesRankingLoss

    from assistant.embeddings import Embedder

    torch.manual_seed(cfg.seed)
    # Both names are checked before the pairs are mined (minutes on a large pool), not after.
    base, miner_path = resolve_base(cfg.base, registry, embedders), resolve_model(cfg.miner, embedders)
    pairs, sources, val, pool = collect_pairs(cfg.kb, cfg.pairs_file, cfg.insuranceqa, cfg.all_answers, cfg.seed)
    pairs = pairs[cfg.skip_questions:][: cfg.max_questions or None]
    corpus = list(dict.fromkeys([p["passage"] for p in pairs] + list(pool.values())))
    miner = Embedder(miner_path)  # a fast encoder's ONNX graph when it has one
    vectors: dict[str, np.ndarray] = {}

    def encode(texts: list[str]) -> np.ndarray:  # the corpus is encoded once for mining and the held-out check
        missing = [t for t in dict.fromkeys(texts) if t not in vectors]
        if missing:
            vectors.update(zip(missing, miner.embed(missing, batch_size=64, progress=progress)))
        return np.stack([vectors[t] for t in texts])

    mined = mine_dense_negatives(pairs, corpus, encode, cfg.negative_ranks, cfg.negative_margin, cfg.seed,
                                 count=cfg.negatives)
    rng = random.Random(cfg.seed)
    columns: dict[str, list[str]] = {"query": [p["question"] for p in pairs], "positive": [p["passage"] for p in pairs]}
    for n in range(cfg.negatives):  # a question short of hard negatives gets random passages (never its own)
        columns[f"negative_{n + 1}"] = [
            p["negatives"][n] if len(p.get("negatives", ())) > n
            else next(t for t in iter(lambda: rng.choice(corpus), None) if t != p["passage"]) for p in pairs]
    # datasets.Dataset.from_dict crashes with this datasets/pyarrow pair (stack.md): build from a table.
    train = datasets.Dataset(pa.table(columns))

    path = registry.create(cfg)
    version = path.name
    model = CrossEncoder(base, num_labels=1, max_length=cfg.max_length, device="cpu")
    # transformers 5 reads a float warmup_steps < 1 as a ratio of the steps (warmup_ratio is deprecated)
    args = CrossEncoderTrainingArguments(
        output_dir=str(path / "checkpoints"), num_train_epochs=cfg.epochs, per_device_train_batch_size=cfg.batch_size,
        learning_rate=cfg.lr, warmup_steps=cfg.warmup_ratio, max_steps=cfg.max_steps, seed=cfg.seed, logging_steps=10,
        save_strategy="no", report_to="none", bf16=False, fp16=False, disable_tqdm=not progress,
        dataloader_num_workers=0)
    loss = MultipleNegativesRankingLoss(model, num_negatives=cfg.in_batch_negatives)
    t0 = time.perf_counter()
    result = CrossEncoderTrainer(model=model, args=args, train_dataset=train, loss=loss).train()
    seconds = time.perf_counter() - t0
    model.save_pretrained(str(path / "model"))

    metrics = {"questions": len(pairs), "sources": sources, "mined": mined, "negatives": cfg.negatives,
               "miner": cfg.miner or "stock", "base": cfg.base or "stock", "steps": result.global_step,
               "train_loss": round(result.training_loss, 4), "train_seconds": round(seconds, 1)}
    if val:  # held-out check: the miner's top candidates from the whole pool, reordered
        qs = [q["question"] for q in val]
        golds = [{pool[a] for a in q["answer_ids"] if a in pool} for q in val]
        top, _ = top_candidates(encode(qs), encode(corpus), cfg.candidates)
        t0 = time.perf_counter()
        metrics.update(rerank_recall(model, qs, [[corpus[int(i)] for i in row] for row in top], golds))
        metrics["val_questions"], metrics["val_corpus"] = len(qs), len(corpus)
        metrics["val_rerank_ms_per_question"] = round((time.perf_counter() - t0) * 1000 / len(qs), 1)
    (path / "metrics.json").write_text(json.dumps(metrics, indent=2))
    registry.finish(version, metrics)
    return version
