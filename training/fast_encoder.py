"""The fast encoder, for ingestion-bound CPUs: the teacher run by ONNX Runtime in int8, or a shallower student.

    python -m training fast-encoder --teacher VERSION --method onnx-int8        # the default method
    python -m training fast-encoder [--teacher PATH|VERSION] --method distill [--set layers=[0,2,4]] [--insuranceqa DIR]

`onnx-int8` exports the teacher with torch.onnx, fuses attention/LayerNorm/GELU with onnxruntime's BERT optimizer and
quantizes the weights to int8 per output channel (per-tensor int8 left vectors at cosine 0.96 to the fp32 model,
per-channel at 0.994), at the teacher's max_seq_length (128 for a tuned retriever). Quantizing the *stock* model
costs recall (-2.7 points of recall@5, measured on these machines before); a quantized domain-tuned teacher stays
well above the stock model, which is what the target asks. The model folder stays a sentence-transformers folder with `onnx/model_qint8.onnx` added
(assistant/onnx_encoder.py runs it; sentence-transformers' backend="onnx" reads the same layout).

`distill` keeps half of the teacher's transformer layers (every other one: it starts close to the teacher) and then either
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
import warnings
from pathlib import Path

from pydantic import BaseModel, ConfigDict


class FastEncoderConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    preset: str = "fast-encoder"
    teacher: str | None = None  # None: the packaged all-MiniLM-L6-v2
    method: str = "onnx-int8"  # or "distill": a shallower student trained with `objective`
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


def export_onnx_int8(model_dir: Path, sample: list[str]) -> None:
    """Writes model_dir/onnx/model_qint8.onnx: the transformer exported, fused for BERT and int8 per channel."""
    import tempfile

    import onnx
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model
    from transformers import AutoModel, AutoTokenizer

    from assistant.onnx_encoder import ONNX_FILE

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    # Eager attention exports the matmul/softmax pattern that onnxruntime's optimizer fuses into one Attention node.
    bert = AutoModel.from_pretrained(model_dir, attn_implementation="eager").eval()
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in tokenizer.model_input_names]

    class LastHidden(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, *inputs):
            return self.model(**dict(zip(names, inputs))).last_hidden_state

    example = tokenizer(sample[:2], padding=True, truncation=True, max_length=32, return_tensors="pt")
    target = Path(model_dir) / ONNX_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        raw, fused = Path(tmp) / "model.onnx", Path(tmp) / "fused.onnx"
        # The tracer warns about shape checks in the mask code; they hold for every batch (mask length = sequence).
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(LastHidden(bert), tuple(example[n] for n in names), str(raw), input_names=names,
                              output_names=["last_hidden_state"], opset_version=17, dynamo=False,
                              dynamic_axes={n: {0: "batch", 1: "sequence"} for n in [*names, "last_hidden_state"]})
        optimize_model(str(raw), model_type="bert", num_heads=bert.config.num_attention_heads,
                       hidden_size=bert.config.hidden_size).save_model_to_file(str(fused))
        # The fused operators are outside ONNX's shape inference: tell the quantizer their outputs are float.
        quantize_dynamic(str(fused), str(target), weight_type=QuantType.QInt8, per_channel=True,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})


def run_onnx_int8(cfg: FastEncoderConfig, teacher, teacher_path: str, registry, texts: list[str]) -> str:
    import numpy as np

    from assistant.onnx_encoder import OnnxSentenceEncoder

    path = registry.create(cfg)
    t0 = time.perf_counter()
    teacher.save(str(path / "model"))  # the Hugging Face files, tokenizer and pooling; the ONNX graph goes beside
    export_onnx_int8(path / "model", texts)
    seconds = time.perf_counter() - t0
    fast = OnnxSentenceEncoder(path / "model")
    sample = texts[: min(512, len(texts))]
    agree = np.sum(fast.encode(sample) * teacher.encode(sample, normalize_embeddings=True), axis=1)
    metrics = {"teacher": teacher_path, "method": cfg.method, "max_seq_length": teacher.max_seq_length,
               "export_seconds": round(seconds, 1), "cosine_to_teacher": round(float(np.mean(agree)), 4),
               "cosine_to_teacher_min": round(float(np.min(agree)), 4)}
    return register(registry, path, metrics, teacher, fast, sample)


def register(registry, path: Path, metrics: dict, teacher, student, sample: list[str]) -> str:
    """Adds the student's speed beside its teacher's on the same texts, and finishes the registry version."""
    metrics["texts_per_s_teacher"] = round(texts_per_second(teacher, sample), 1)
    metrics["texts_per_s_student"] = round(texts_per_second(student, sample), 1)
    metrics["speedup"] = round(metrics["texts_per_s_student"] / metrics["texts_per_s_teacher"], 2)
    (path / "metrics.json").write_text(json.dumps(metrics, indent=2))
    registry.finish(path.name, metrics)
    return path.name


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

    from training.retriever import resolve_model

    torch.manual_seed(cfg.seed)
    teacher_path = resolve_model(cfg.teacher, registry)
    teacher = SentenceTransformer(teacher_path, device="cpu")
    teacher.max_seq_length = cfg.max_seq_length
    texts = corpus(cfg)
    if len(texts) < 10:
        raise ValueError("too few texts to distill from: check --kb / --insuranceqa")
    if cfg.method == "onnx-int8":
        return run_onnx_int8(cfg, teacher, teacher_path, registry, texts)
    if cfg.method != "distill":
        raise ValueError(f"method must be 'onnx-int8' or 'distill', not {cfg.method!r}")
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
               "cosine_to_teacher": round(float(agree), 4)}
    return register(registry, path, metrics, teacher, student, sample)
