"""The fast encoder: a shallower student distilled from an embedding model, for ingestion-bound CPUs.

    python -m training fast-encoder [--teacher PATH|VERSION] [--layers 0,2,4] [--insuranceqa DIR]

Quantizing alone was not enough here (int8: 1.25x, ONNX fused int8: 1.68x but -2.7 points recall@5), so the student
keeps half of the teacher's transformer layers (every other one: it starts close to the teacher) and then either
learns to reproduce the teacher's embeddings (`objective=mse`, sentence-transformers MSELoss, on the knowledge base's
passages and, opt-in, the research data set's answers and training questions) or learns the retrieval task itself
(`objective=pairs`, MultipleNegativesRankingLoss on the retriever's (question, passage) pairs). Measured here, MSE
on 6,000 texts left the student far from its teacher (cosine 0.65, recall@5 0.26): with this little compute, training
the student on the task it serves works better than imitating vectors. A student of a domain-tuned teacher can beat the stock model
while being twice as fast. Registered beside the tuned retrievers (`python -m training embedders list`); measured by
`bench/ingest.py --model`.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict


class FastEncoderConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    preset: str = "fast-encoder"
    teacher: str | None = None  # None: the packaged all-MiniLM-L6-v2
    layers: list[int] = [0, 2, 4]
    objective: str = "pairs"  # "pairs" (MNRL on question/passage pairs) or "mse" (imitate the teacher's vectors)
    kb: list[str] = ["data/sample_kb"]
    insuranceqa: str | None = None
    max_texts: int = 20000
    epochs: int = 1
    batch_size: int = 64
    lr: float = 1e-4
    max_seq_length: int = 128
    max_steps: int = -1
    seed: int = 0


def shallow_copy(teacher, layers: list[int]):
    """The teacher with only `layers` of its transformer kept (a new model; the teacher is untouched)."""
    import copy

    import torch

    student = copy.deepcopy(teacher)
    bert = student[0].auto_model
    bert.encoder.layer = torch.nn.ModuleList([bert.encoder.layer[i] for i in layers])
    bert.config.num_hidden_layers = len(layers)
    return student


def texts_per_second(model, texts: list[str], batch_size: int = 64) -> float:
    model.encode(texts[:64], batch_size=batch_size)  # warm-up
    t0 = time.perf_counter()
    model.encode(texts, batch_size=batch_size, normalize_embeddings=True)
    return len(texts) / (time.perf_counter() - t0)


def corpus(cfg: FastEncoderConfig) -> list[str]:
    from training.retriever import insuranceqa_pairs, kb_pairs

    texts = [t for p in kb_pairs([Path(r) for r in cfg.kb], []) for t in (p["question"], p["passage"])]
    if cfg.insuranceqa:  # opt-in (research use only); the benchmark's test and validation questions are left out
        pairs, _, pool = insuranceqa_pairs(Path(cfg.insuranceqa), cfg.seed)
        texts += [p["question"] for p in pairs] + list(pool.values())
    texts = list(dict.fromkeys(t for t in texts if t.strip()))
    random.Random(cfg.seed).shuffle(texts)
    return texts[: cfg.max_texts]


def pairs_for(cfg: FastEncoderConfig) -> list[dict]:
    """The retriever's training pairs: the knowledge base's (eval questions excluded) plus, opt-in, InsuranceQA's."""
    from assistant.evaluation import load_cases
    from training.retriever import insuranceqa_pairs, kb_pairs

    exclude = [c["question"] for r in cfg.kb if (Path(r) / "eval.jsonl").exists() for c in load_cases(Path(r) / "eval.jsonl")]
    pairs = kb_pairs([Path(r) for r in cfg.kb], exclude)
    if cfg.insuranceqa:
        pairs += insuranceqa_pairs(Path(cfg.insuranceqa), cfg.seed)[0]
    random.Random(cfg.seed).shuffle(pairs)
    return pairs


def run(cfg: FastEncoderConfig, registry, progress: bool = True) -> str:
    import datasets
    import numpy as np
    import pyarrow as pa
    import torch
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
    from sentence_transformers.sentence_transformer.losses import MSELoss, MultipleNegativesRankingLoss
    from sentence_transformers.sentence_transformer.training_args import (BatchSamplers,
                                                                          SentenceTransformerTrainingArguments)

    from assistant.settings import get_settings

    torch.manual_seed(cfg.seed)
    teacher_path = cfg.teacher or get_settings().embedding_model_path
    if not Path(teacher_path).exists():  # a registry version
        teacher_path = str(registry.path(teacher_path) / "model")
    teacher = SentenceTransformer(teacher_path, device="cpu")
    teacher.max_seq_length = cfg.max_seq_length
    texts = corpus(cfg)
    if len(texts) < 10:
        raise ValueError("too few texts to distill from: check --kb / --insuranceqa")
    sample = texts[: min(512, len(texts))]
    if cfg.objective == "mse":
        labels = teacher.encode(texts, batch_size=64, normalize_embeddings=True, show_progress_bar=progress)
        train = datasets.Dataset(pa.table({"sentence": texts, "label": [list(map(float, v)) for v in labels]}))
    elif cfg.objective == "pairs":
        labels = teacher.encode(sample, batch_size=64, normalize_embeddings=True)
        pairs = pairs_for(cfg)
        train = datasets.Dataset(pa.table({"anchor": [p["question"] for p in pairs],
                                           "positive": [p["passage"] for p in pairs]}))
    else:
        raise ValueError(f"objective must be 'pairs' or 'mse', not {cfg.objective!r}")

    path = registry.create(cfg)
    student = shallow_copy(teacher, cfg.layers)
    args = SentenceTransformerTrainingArguments(
        output_dir=str(path / "checkpoints"), num_train_epochs=cfg.epochs, per_device_train_batch_size=cfg.batch_size,
        learning_rate=cfg.lr, warmup_ratio=0.1, max_steps=cfg.max_steps, seed=cfg.seed, logging_steps=10,
        save_strategy="no", report_to="none", bf16=False, fp16=False, disable_tqdm=not progress,
        batch_sampler=BatchSamplers.NO_DUPLICATES if cfg.objective == "pairs" else BatchSamplers.BATCH_SAMPLER)
    loss = MSELoss(student) if cfg.objective == "mse" else MultipleNegativesRankingLoss(student)
    t0 = time.perf_counter()
    result = SentenceTransformerTrainer(model=student, args=args, train_dataset=train, loss=loss).train()
    seconds = time.perf_counter() - t0
    student.save(str(path / "model"))

    agree = np.mean(np.sum(student.encode(sample, normalize_embeddings=True) * labels[: len(sample)], axis=1))
    metrics = {"teacher": teacher_path, "layers": cfg.layers, "objective": cfg.objective, "examples": len(train),
               "steps": result.global_step,
               "train_loss": round(result.training_loss, 6), "train_seconds": round(seconds, 1),
               "cosine_to_teacher": round(float(agree), 4),
               "texts_per_s_teacher": round(texts_per_second(teacher, sample), 1),
               "texts_per_s_student": round(texts_per_second(student, sample), 1)}
    metrics["speedup"] = round(metrics["texts_per_s_student"] / metrics["texts_per_s_teacher"], 2)
    (path / "metrics.json").write_text(json.dumps(metrics, indent=2))
    registry.finish(path.name, metrics)
    return path.name
