"""Stage 4 — instruction fine-tuning: grounded answers with citations, refusals, hand-offs and follow-ups built from
the knowledge base (training/instructions.py), loss on the assistant's tokens only, EOS (<|im_end|>) learned.
Raw insurance text can be replayed in every batch, with its own weight in the loss, so the model keeps its language
modelling (held-out perplexity) while it learns the format.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import torch

from training.config import ROOT, TrainConfig
from training.data import DataError, read_jsonl
from training.instructions import ExampleBuilder, kb_questions, save_jsonl, sentence_questions
from training.model import freeze_lower_layers
from training.pretrain import pack
from training.trainer import barrier, init_distributed, is_main, resolve_device, train

IGNORE = -100
REPLAY_WINDOW = 256  # tokens of raw insurance text per replayed row (SFT) or step (DPO)


def kb_dirs(cfg: TrainConfig) -> list[Path]:
    return [ROOT / s.path for s in cfg.data.sources if s.kind == "kb"]


def rag_components(cfg: TrainConfig, store_dir: Path):
    """A store of the KB made by the real ingest pipeline, the real retriever and the extractive teacher."""
    from assistant.embeddings import get_embedder
    from assistant.generators.extractive import ExtractiveGenerator
    from assistant.retrieve import HybridRetriever
    from assistant.settings import get_settings
    from assistant.store import KnowledgeStore
    from ingest.pipeline import Ingestor

    settings = get_settings()
    store = KnowledgeStore(store_dir, settings.collection)
    embedder = get_embedder(settings.embedding_model_path)
    Ingestor(store, settings, embedder, progress=False).ingest(kb_dirs(cfg))
    return settings, store, HybridRetriever(store, embedder, settings), ExtractiveGenerator(store, embedder, settings)


def served_decision(cfg: TrainConfig, settings, store):
    """(decide, its version): the promoted answerability model's decision over this store, as the pipeline makes it
    (sanitized passages, a customer asking), or (None, None) without one or with `sft_teacher_decision` off."""
    if not cfg.sft_teacher_decision:
        return None, None
    from assistant.pipeline import Assistant

    assistant = Assistant(settings, store=store)
    if assistant.answerability is None:
        return None, None

    def decide(question, hits):
        hits, _ = assistant.guards.sanitize(hits)
        return hits, assistant.decide(question, hits, "customer")

    return decide, assistant.answerability.version


def eval_questions(cfg: TrainConfig) -> set[str]:
    """Every evaluation question (eval.jsonl and both customer-voice splits): no training example may use one."""
    from assistant.evaluation import load_cases
    from training.answerability import EVAL_SETS

    files = [d / "eval.jsonl" for d in kb_dirs(cfg)] + list(EVAL_SETS)
    return {c["question"] for f in files if f.exists() for c in load_cases(f)}


def encode(tok, messages: list[dict], answer: str, seq_len: int) -> tuple[list[int], list[int]]:
    """(input_ids, labels): labels are -100 everywhere but the assistant's answer and its <|im_end|>. The prompt is
    the same template with the generation prompt, so this works for any chat template (an open base's has no
    `{% generation %}` markers)."""
    prompt = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
    full = tok.apply_chat_template(messages + [{"role": "assistant", "content": answer}], tokenize=True,
                                   return_dict=True)["input_ids"]
    if full[:len(prompt)] != prompt:
        raise ValueError("the chat template renders the prompt differently with and without the answer")
    end = tok.convert_tokens_to_ids("<|im_end|>")
    tail = full[len(prompt):]
    if end in tail:  # nothing after the answer's <|im_end|> is supervised (the template's trailing newline)
        tail = tail[:tail.index(end) + 1]
    ids = (prompt + tail)[:seq_len]
    return ids, [IGNORE] * min(len(prompt), seq_len) + ids[len(prompt):]


def split_examples(examples: list[dict], seed: int) -> tuple[list[dict], list[dict]]:
    """(validation, training) conversations: a tenth, shuffled by the run's seed, is never trained on by SFT (the
    evaluation stage measures every stage's perplexity on its answers)."""
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    n_val = max(1, len(examples) // 10)
    return [examples[i] for i in order[:n_val]], [examples[i] for i in order[n_val:]]


def collate(rows: list[tuple[list[int], list[int]]], pad_id: int) -> dict:
    n = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), n), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), n), IGNORE, dtype=torch.long)
    attn = torch.zeros((len(rows), n), dtype=torch.long)
    for i, (x, y) in enumerate(rows):
        ids[i, :len(x)] = torch.tensor(x)
        labels[i, :len(y)] = torch.tensor(y)
        attn[i, :len(x)] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": attn}


def replay_weights(labels: torch.Tensor, n_replay: int, weight: float) -> torch.Tensor:
    """Per-label weights making the loss the answers' mean token loss + `weight` × the replayed windows' (the last
    `n_replay` rows): replay keeps the language modelling without drowning the answers' few tokens."""
    supervised = (labels != IGNORE).float()
    supervised[:, 0] = 0  # the first position is never predicted
    answers, replayed = supervised[:-n_replay], supervised[-n_replay:]
    return torch.cat([answers / answers.sum().clamp(min=1), weight * replayed / replayed.sum().clamp(min=1)])


def run(cfg: TrainConfig, data_dir: Path, base_dir: Path, out: Path) -> dict:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from training.trainer import dist_info

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    init_distributed(device)
    out.mkdir(parents=True, exist_ok=True)
    tok = AutoTokenizer.from_pretrained(base_dir)
    oc = cfg.sft
    budget = prompt_budget(cfg)

    examples_file = out / "examples.jsonl"
    if not examples_file.exists():  # building needs the embedder and a store: done once, then reused on resume
        settings, store, retriever, teacher = rag_components(cfg, out / "store")
        decide, decider = served_decision(cfg, settings, store)
        builder = ExampleBuilder(store, retriever, teacher, tok, settings, budget, cfg.sft_context_chunks, cfg.seed,
                                 decide)
        held_out = eval_questions(cfg)
        questions = kb_questions(kb_dirs(cfg)[0], store, exclude=held_out)
        if cfg.sft_sentence_questions:
            questions += sentence_questions(store, cfg.sft_sentence_questions, cfg.seed, held_out)
        examples = builder.build(questions, exclude=held_out)
        if cfg.sft_max_examples:
            examples = examples[: cfg.sft_max_examples]
        if not examples:
            raise DataError("no instruction examples could be built from the knowledge base")
        if is_main():
            save_jsonl(examples_file, examples)
            (out / "teacher.json").write_text(json.dumps({"decision": decider or "lexical rules"}))
        barrier()
    examples = read_jsonl(examples_file)
    val_examples, train_examples = split_examples(examples, cfg.seed)
    val_rows, train_rows = ([encode(tok, e["messages"], e["answer"], oc.seq_len) for e in part]
                            for part in (val_examples, train_examples))

    replay = pack(tok, [d["text"] for d in read_jsonl(data_dir / "insurance.jsonl")])
    n_replay = int(round(oc.batch_size * cfg.sft_replay_share))
    rank = dist_info()[0]

    def get_batch(step: int, micro: int) -> dict:
        g = np.random.default_rng([cfg.seed, step, micro, rank])
        rows = [train_rows[i] for i in g.integers(0, len(train_rows), size=oc.batch_size - n_replay)]
        for s in g.integers(0, max(1, len(replay) - REPLAY_WINDOW), size=n_replay):
            window = replay[s:s + REPLAY_WINDOW].tolist()
            rows.append((window, window))
        batch = collate(rows, tok.pad_token_id)
        if cfg.sft_replay_weight is not None and n_replay:
            batch["label_weights"] = replay_weights(batch["labels"], n_replay, cfg.sft_replay_weight)
        return batch

    val_batches = [collate(val_rows[i:i + oc.batch_size], tok.pad_token_id) for i in range(0, len(val_rows), oc.batch_size)]
    model = AutoModelForCausalLM.from_pretrained(base_dir)
    trainable = freeze_lower_layers(model, cfg.trainable_layers)
    metrics = train(model, get_batch, oc, out, val_batches=val_batches[: oc.eval_batches], device=device,
                    dtype=cfg.dtype, parallel=cfg.parallel, desc="sft")
    barrier()
    if is_main():
        model.save_pretrained(out / "model")
        tok.save_pretrained(out / "model")
        write_prompt_file(cfg, out / "model")
    kinds: dict[str, int] = {}
    for e in examples:
        kinds[e["kind"]] = kinds.get(e["kind"], 0) + 1
    supervised = sum(sum(1 for t in y if t != IGNORE) for _, y in train_rows)
    teacher = out / "teacher.json"
    metrics.update(examples=len(examples), examples_by_kind=kinds, supervised_tokens=supervised,
                   replay_share=cfg.sft_replay_share,
                   replay_weight=cfg.sft_replay_weight, trainable_params=trainable,
                   teacher_decision=json.loads(teacher.read_text())["decision"] if teacher.exists() else "lexical rules")
    return metrics


def write_prompt_file(cfg: TrainConfig, model_dir: Path) -> None:
    from assistant.generators.private import PROMPT_FILE

    (model_dir / PROMPT_FILE).write_text(json.dumps({"context_chunks": cfg.sft_context_chunks,
                                                     "max_new_tokens": cfg.eval.max_new_tokens,
                                                     "prompt_tokens": prompt_budget(cfg)}))


def prompt_budget(cfg: TrainConfig) -> int:
    """Tokens of the prompt in training, so serving fits the context exactly as the model learned it."""
    ctx = cfg.model.max_position_embeddings if cfg.base == "scratch" else cfg.sft.seq_len
    return min(cfg.sft.seq_len, ctx) - cfg.eval.max_new_tokens
