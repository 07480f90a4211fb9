"""The question matcher: the packaged MiniLM fine-tuned so that paraphrases of one question come close and a question
the documents do not answer stays apart, for the known-question path (assistant/known_questions.py).

The known-question path compares a customer's question with questions written from the documents. Off the shelf,
MiniLM ranks by shared topic: "renters contents cover above 30k" sits 0.83 from a written question the contents
limit answers and 0.77 from one it does not. The written files say which questions are paraphrases (the same quoted
answer) and which are not answered at all, so a bi-encoder can learn that distinction: pairs of paraphrases are
positives, and a written not-answerable question near the anchor is its hard negative (MultipleNegativesRankingLoss,
the in-batch others as further negatives). On the second dev split, measured against all the known questions:
AUC of (nearest known − nearest not-answerable) for public vs not-answerable cases 0.922 → 0.955, near-domain ones
0.946 → 0.964. No evaluation case is learned from: the written files were checked apart from them.

Trained as a stage of `python -m training answerability` (and by `--calibrate` for a version that has none), saved
in the version folder as a sentence-transformers model (`matcher/`), loaded by the assistant beside the
cross-encoder; its cosines are what the known-question thresholds are calibrated on.
"""

from __future__ import annotations

import random
import shutil
import time
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict

from assistant.known_questions import norm_quote, read_rows  # a quote as the known-question index compares it
from assistant.precision import use_bf16


class MatcherConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    epochs: float = 1.0  # one pass over ~3,200 paraphrase pairs: ~2 to 3.5 min on 2 cores
    batch_size: int = 64  # in-batch negatives: larger is harder
    lr: float = 3e-5
    hard_negatives_from: int = 5  # the hard negative is drawn from the anchor's N nearest not-answerable questions
    max_steps: int = -1
    seed: int = 0


def pairs(files: list[str | Path], base, seed: int, nearest: int) -> dict[str, list[str]]:
    """Anchor, paraphrase and hard negative triples from the written files (questions expanded as served)."""
    from assistant.vocabulary import expand

    rng = random.Random(seed)
    rows = [r for f in files if Path(f).exists() for r in read_rows(Path(f))]
    groups: dict[tuple, list[str]] = {}
    for r in rows:  # paraphrases: questions written for one quoted answer of one document
        if r.get("answerable") and r.get("answer") and r.get("source") and r.get("question"):
            groups.setdefault((r["source"], norm_quote(r["answer"])), []).append(expand(r["question"]))
    unanswerable = list(dict.fromkeys(expand(r["question"]) for r in rows
                                      if r.get("answerable") is False and r.get("question")))
    anchors, positives = [], []
    for g in groups.values():
        g = list(dict.fromkeys(g))
        if len(g) < 2:
            continue
        rng.shuffle(g)
        for i, q in enumerate(g):
            anchors.append(q)
            positives.append(g[(i + 1) % len(g)])
    if not anchors or not unanswerable:
        return {"anchor": [], "positive": [], "negative": []}
    nv = base.encode(unanswerable, batch_size=64, normalize_embeddings=True, show_progress_bar=False)
    av = base.encode(anchors, batch_size=64, normalize_embeddings=True, show_progress_bar=False)
    top = np.argsort(-(av @ nv.T), axis=1)[:, :nearest]
    negatives = [unanswerable[int(rng.choice(list(t)))] for t in top]
    return {"anchor": anchors, "positive": positives, "negative": negatives}


def train_matcher(out: Path, files: list[str | Path], base_path: str, cfg: MatcherConfig, bf16: bool | None = None,
                  progress: bool = True) -> dict:
    """Fine-tunes `base_path` (the packaged MiniLM) on the written files' paraphrase groups into `out`; returns
    its figures ({} when there is nothing to learn from: the version then matches with the store's embedder)."""
    import datasets
    import torch
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    torch.manual_seed(cfg.seed)
    model = SentenceTransformer(base_path, device="cpu")
    data = pairs(files, model, cfg.seed, cfg.hard_negatives_from)
    if not data["anchor"]:
        return {}
    train = datasets.Dataset.from_dict(data).shuffle(seed=cfg.seed)
    args = SentenceTransformerTrainingArguments(
        output_dir=str(out.parent / "matcher-checkpoints"), num_train_epochs=cfg.epochs,
        per_device_train_batch_size=cfg.batch_size, learning_rate=cfg.lr, warmup_steps=0.1, max_steps=cfg.max_steps,
        seed=cfg.seed, logging_steps=20, save_strategy="no", report_to="none", bf16=use_bf16(bf16), use_cpu=True,
        disable_tqdm=not progress, dataloader_num_workers=0, batch_sampler="no_duplicates")
    t0 = time.perf_counter()
    result = SentenceTransformerTrainer(model=model, args=args, train_dataset=train,
                                        loss=MultipleNegativesRankingLoss(model)).train()
    model.save(str(out))
    shutil.rmtree(out.parent / "matcher-checkpoints", ignore_errors=True)  # nothing is saved there (save_strategy)
    return {"matcher_pairs": len(data["anchor"]), "matcher_steps": result.global_step,
            "matcher_loss": round(result.training_loss, 4), "matcher_seconds": round(time.perf_counter() - t0, 1)}
