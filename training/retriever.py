"""The domain-tuned retriever: the packaged MiniLM fine-tuned on (question, passage) pairs, registered as a new
embedding-model version.

    python -m training retriever [--pairs FILE] [--base PATH|VERSION] [--insuranceqa DIR] [--set KEY=VALUE]

Pairs by default come from the knowledge base itself: FAQ rows (question → answer), FAQ headings that are questions
and document headings (→ their section), never a question of the evaluation set (eval.jsonl) or a near copy of one.
`--pairs` adds a JSONL of {"question", "passage"}; `--insuranceqa` adds the research data set's questions (opt-in:
its terms allow research use only; the 1,000 test and 500 validation questions of bench/retrieval.py are never
used; `all_answers=true`: one pair per gold answer, not only the first). Loss: sentence-transformers'
MultipleNegativesRankingLoss with in-batch negatives plus one hard negative per pair: mined with BM25 (a passage
that shares words with the question but is not its answer) or, with `miner` set to an embedding model
(`--set miner=stock|VERSION|FOLDER`), a passage that model ranks high for the question. Dense negatives skip
the top ranks and any passage scoring within `negative_margin` of the gold one: in InsuranceQA many answers are
near-duplicates, and training on those false negatives is what made a BM25-mined trial worse.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict

TEST_QUESTIONS, VAL_QUESTIONS = 1000, 500  # bench/retrieval.py's samples: never trained on


class RetrieverConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    preset: str = "retriever"
    base: str | None = None  # None: the packaged all-MiniLM-L6-v2
    kb: list[str] = ["data/sample_kb"]
    pairs_file: str | None = None
    insuranceqa: str | None = None
    all_answers: bool = False  # InsuranceQA: one pair per gold answer of a question (18,790), not the first (11,389)
    hard_negatives: bool = True
    miner: str | None = None  # embedding model (folder or version) that mines the negatives; None: BM25
    negative_ranks: list[int] = [3, 30]  # dense negatives are drawn from these ranks (first inclusive, last exclusive)
    negative_margin: float = 0.05  # ... and must score below (1 - margin) x the gold passage's score
    epochs: int = 1
    batch_size: int = 64
    lr: float = 5e-5
    warmup_ratio: float = 0.1
    max_seq_length: int = 128
    max_steps: int = -1
    seed: int = 0
    eval_corpus: int = 2000  # distractor passages in the quick held-out check


def split_insuranceqa(questions: list[dict], seed: int = 0) -> tuple[list[dict], list[dict], list[dict]]:
    """(train, validation, test) by question id, exactly as bench/retrieval.py samples its test and tuning sets."""
    test = random.Random(seed).sample(questions, min(TEST_QUESTIONS, len(questions)))
    taken = {q["question_id"] for q in test}
    pool = [q for q in questions if q["question_id"] not in taken]
    val = random.Random(seed + 1).sample(pool, min(VAL_QUESTIONS, len(pool)))
    taken |= {q["question_id"] for q in val}
    return [q for q in questions if q["question_id"] not in taken], val, test


def _norm(text: str) -> str:
    return " ".join("".join(ch.lower() if ch.isalnum() else " " for ch in text).split())


def near_copy_of(questions: list[str], overlap: float = 0.6):
    """A test: is a text a near copy (word Jaccard >= overlap) of one of `questions`? Keeps evaluation questions,
    and rewordings of them, out of training data."""
    banned = [set(_norm(q).split()) for q in questions]

    def leaks(q: str) -> bool:
        words = set(_norm(q).split())
        return any(len(words & b) / max(len(words | b), 1) >= overlap for b in banned)

    return leaks


def kb_pairs(roots: list[Path], exclude: list[str]) -> list[dict]:
    """(question, passage) pairs from the knowledge base's own structure; eval questions and near copies excluded."""
    from assistant.settings import get_settings
    from ingest.loaders import LoadError, load_file
    from ingest.pipeline import discover

    leaks = near_copy_of(exclude)

    pairs = []
    files, _ = discover(roots)
    for f in files:
        try:
            docs = load_file(f, get_settings())
        except LoadError:
            continue
        for doc in docs:
            if doc.kind == "rows":  # an FAQ export row: its title is the question
                body = "\n".join(s.text for s in doc.sections)
                pairs.append({"question": doc.title, "passage": body, "source": doc.doc_id})
                continue
            for s in doc.sections:
                if s.heading and len(s.text) > 80:
                    query = s.heading.split("›")[-1].strip()
                    if not query.endswith("?"):
                        query = f"{doc.title}: {query}"
                    pairs.append({"question": query, "passage": s.text, "source": doc.doc_id})
    return [p for p in pairs if not leaks(p["question"])]


def insuranceqa_pairs(folder: Path, seed: int = 0, all_answers: bool = False
                      ) -> tuple[list[dict], list[dict], dict[str, str]]:
    """Training pairs (the first gold answer of each question, or each of them) and the validation questions, plus
    the answer pool."""
    answers = {}
    for line in (folder / "answers.jsonl").read_text().splitlines():
        a = json.loads(line)
        answers[a["answer_id"]] = a["text"]
    questions = [json.loads(line) for line in (folder / "questions_dev.jsonl").read_text().splitlines() if line.strip()]
    train, val, _ = split_insuranceqa(questions, seed)
    pairs = [{"question": q["question"], "passage": answers[a], "gold": set(q["answer_ids"])}
             for q in train for a in (q["answer_ids"] if all_answers else q["answer_ids"][:1]) if a in answers]
    return pairs, val, answers


def mine_hard_negatives(pairs: list[dict], corpus: list[str], depth: int = 10) -> None:
    """Adds "negatives": [the best BM25 passage for the question that is not (a gold answer of) it]."""
    import bm25s

    from assistant.store import _stemmer

    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(corpus, stopwords="en", stemmer=_stemmer(), show_progress=False), show_progress=False)
    tokens = bm25s.tokenize([p["question"] for p in pairs], stopwords="en", stemmer=_stemmer(), show_progress=False)
    ids, _ = retriever.retrieve(tokens, k=min(depth, len(corpus)), show_progress=False, n_threads=2)
    for p, row in zip(pairs, ids):
        for i in row:
            text = corpus[int(i)]
            if text != p["passage"] and text not in p.get("gold_texts", ()):
                p["negatives"] = [text]
                break


def top_candidates(q, c, depth: int):
    """Indices and scores of the `depth` best rows of `c` for each row of `q` (unit vectors), best first; in blocks
    of 1,024 questions so the score matrix stays small."""
    import numpy as np

    idx, val = [], []
    depth = min(depth, len(c))
    for start in range(0, len(q), 1024):
        scores = q[start:start + 1024] @ c.T
        top = np.argpartition(-scores, depth - 1, axis=1)[:, :depth]
        part = np.take_along_axis(scores, top, axis=1)
        order = np.argsort(-part, axis=1)
        idx.append(np.take_along_axis(top, order, axis=1))
        val.append(np.take_along_axis(part, order, axis=1))
    return np.concatenate(idx), np.concatenate(val)


def mine_dense_negatives(pairs: list[dict], corpus: list[str], encode, ranks: list[int], margin: float,
                         seed: int = 0, count: int = 1) -> int:
    """Adds "negatives": up to `count` passages the model behind `encode` (texts → unit vectors) ranks within
    `ranks` for the question, not gold and clearly below the gold passage's score (relative margin). Returns how
    many pairs got at least one."""
    rng = random.Random(seed)
    c = encode(corpus)
    q = encode([p["question"] for p in pairs])
    index = {t: i for i, t in enumerate(corpus)}
    pos = c[[index[p["passage"]] for p in pairs]]  # every positive is in the corpus: no second encoding
    top, scores = top_candidates(q, c, ranks[1])
    found = 0
    for j, p in enumerate(pairs):
        ceiling = (1 - margin) * float(q[j] @ pos[j])
        gold = p.get("gold_texts", set()) | {p["passage"]}
        options = [corpus[int(i)] for i, s in zip(top[j, ranks[0]:], scores[j, ranks[0]:])
                   if s < ceiling and corpus[int(i)] not in gold]
        if options:
            # count 1 draws as the registered retriever versions were drawn (reproducible)
            p["negatives"] = [rng.choice(options)] if count == 1 else rng.sample(options, min(count, len(options)))
            found += 1
    return found


def collect_pairs(kb: list[str], pairs_file: str | None, insuranceqa: str | None, all_answers: bool, seed: int
                  ) -> tuple[list[dict], dict, list[dict], dict[str, str]]:
    """Training pairs from the knowledge base, a pairs file and (opt-in) InsuranceQA, shuffled; their counts by
    source; InsuranceQA's validation questions and answer pool (empty without it)."""
    from assistant.evaluation import load_cases

    eval_questions = []
    for root in kb:
        f = Path(root) / "eval.jsonl"
        if f.exists():
            eval_questions += [c["question"] for c in load_cases(f)]
    pairs = kb_pairs([Path(r) for r in kb], eval_questions)
    sources = {"kb": len(pairs)}
    if pairs_file:
        extra = [json.loads(line) for line in Path(pairs_file).read_text().splitlines() if line.strip()]
        pairs += [{"question": p["question"], "passage": p["passage"]} for p in extra]
        sources["pairs_file"] = len(extra)
    val, pool = [], {}
    if insuranceqa:
        iqa, val, pool = insuranceqa_pairs(Path(insuranceqa), seed, all_answers)
        for p in iqa:
            p["gold_texts"] = {pool[a] for a in p.pop("gold") if a in pool}
        pairs += iqa
        sources["insuranceqa"] = len(iqa)
    if not pairs:
        raise ValueError("no training pairs: check --kb / --pairs / --insuranceqa")
    random.Random(seed).shuffle(pairs)
    return pairs, sources, val, pool


def resolve_model(name: str | None, registry) -> str:
    """A model folder, a version in the embedding-model registry, or "stock"/None: the packaged all-MiniLM-L6-v2."""
    if name in (None, "stock"):
        from assistant.settings import get_settings

        return get_settings().embedding_model_path
    return name if Path(name).exists() else str(registry.path(name) / "model")


def recall_at_5(model, questions: list[str], golds: list[set[int]], corpus: list[str]) -> float:
    import numpy as np

    q = model.encode(questions, normalize_embeddings=True, batch_size=64, convert_to_numpy=True)
    c = model.encode(corpus, normalize_embeddings=True, batch_size=64, convert_to_numpy=True)
    top, _ = top_candidates(q, c, 5)
    return float(np.mean([bool(set(map(int, t)) & g) for t, g in zip(top, golds)]))


def run(cfg: RetrieverConfig, registry, progress: bool = True) -> str:
    import datasets
    import pyarrow as pa
    import torch
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from sentence_transformers.sentence_transformer.training_args import (BatchSamplers,
                                                                          SentenceTransformerTrainingArguments)

    torch.manual_seed(cfg.seed)
    base = resolve_model(cfg.base, registry)
    pairs, sources, val, pool = collect_pairs(cfg.kb, cfg.pairs_file, cfg.insuranceqa, cfg.all_answers, cfg.seed)
    mined = 0
    if cfg.hard_negatives:
        corpus = list(dict.fromkeys([p["passage"] for p in pairs] + list(pool.values())))
        if cfg.miner:
            miner = SentenceTransformer(resolve_model(cfg.miner, registry), device="cpu")
            miner.max_seq_length = cfg.max_seq_length
            mined = mine_dense_negatives(pairs, corpus, lambda texts: miner.encode(
                texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=progress),
                cfg.negative_ranks, cfg.negative_margin, cfg.seed)
            del miner
        else:
            mine_hard_negatives(pairs, corpus)
            mined = sum("negatives" in p for p in pairs)
    columns = {"anchor": [p["question"] for p in pairs], "positive": [p["passage"] for p in pairs]}
    if cfg.hard_negatives:
        fallback = [p["passage"] for p in pairs[1:]] + [pairs[0]["passage"]]
        columns["negative"] = [p["negatives"][0] if "negatives" in p else fb for p, fb in zip(pairs, fallback)]
    # datasets.Dataset.from_dict crashes with this datasets/pyarrow pair (stack.md): build from a table.
    train = datasets.Dataset(pa.table(columns))

    path = registry.create(cfg)
    version = path.name
    model = SentenceTransformer(base, device="cpu")
    model.max_seq_length = cfg.max_seq_length
    args = SentenceTransformerTrainingArguments(
        output_dir=str(path / "checkpoints"), num_train_epochs=cfg.epochs, per_device_train_batch_size=cfg.batch_size,
        learning_rate=cfg.lr, warmup_ratio=cfg.warmup_ratio, max_steps=cfg.max_steps, seed=cfg.seed,
        batch_sampler=BatchSamplers.NO_DUPLICATES, logging_steps=10, save_strategy="no", report_to="none",
        bf16=False, fp16=False, disable_tqdm=not progress, dataloader_num_workers=0)
    t0 = time.perf_counter()
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=train,
                                         loss=MultipleNegativesRankingLoss(model))
    result = trainer.train()
    seconds = time.perf_counter() - t0
    model.save(str(path / "model"))

    metrics = {"pairs": len(pairs), "sources": sources, "hard_negatives": cfg.hard_negatives, "mined": mined,
               "miner": cfg.miner or ("bm25" if cfg.hard_negatives else None),
               "steps": result.global_step, "train_loss": round(result.training_loss, 4), "train_seconds": round(seconds, 1),
               "base": base}
    if val:  # a quick held-out check: validation questions against their answers plus distractors
        rng = random.Random(cfg.seed)
        gold_ids = sorted({a for q in val for a in q["answer_ids"] if a in pool})
        others = rng.sample([a for a in pool if a not in set(gold_ids)], min(cfg.eval_corpus, len(pool) - len(gold_ids)))
        ids = gold_ids + others
        index = {a: i for i, a in enumerate(ids)}
        corpus = [pool[a] for a in ids]
        golds = [{index[a] for a in q["answer_ids"] if a in index} for q in val]
        qs = [q["question"] for q in val]
        metrics["val_recall@5_base"] = recall_at_5(SentenceTransformer(base, device="cpu"), qs, golds, corpus)
        metrics["val_recall@5_tuned"] = recall_at_5(model, qs, golds, corpus)
        metrics["val_corpus"] = len(corpus)
    (path / "metrics.json").write_text(json.dumps(metrics, indent=2))
    registry.finish(version, metrics)
    return version
