"""Stage 6 — evaluation: perplexity and bits per byte on held-out insurance text for every stage's model, and the
real RAG path on `eval.jsonl` (answer token-F1, citation accuracy, refusal accuracy) for the aligned private model,
the extractive backend and a few-shot prompted base model as the baseline.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import torch

from training.config import TrainConfig
from training.data import read_jsonl
from training.pretrain import heldout_batches, pack


@torch.no_grad()
def perplexity(model_dir: Path, texts: list[str], seq_len: int, n_batches: int) -> dict:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    stream = pack(tok, texts)
    nll, n_tok, n_bytes = 0.0, 0, 0
    for batch in heldout_batches(stream, 8, seq_len, n_batches):
        out = model(input_ids=batch["input_ids"], labels=batch["labels"])
        predicted = batch["input_ids"][:, 1:].numel()
        nll += float(out.loss) * predicted
        n_tok += predicted
        n_bytes += sum(len(tok.decode(row[1:]).encode()) for row in batch["input_ids"].tolist())
    return {"perplexity": round(math.exp(nll / n_tok), 2), "bits_per_byte": round(nll / math.log(2) / n_bytes, 4),
            "tokens": n_tok}


@torch.no_grad()
def answer_perplexity(model_dir: Path, conversations: list[dict], seq_len: int, batch_size: int = 4) -> dict:
    """Perplexity of held-out grounded conversations' answers (the assistant's tokens, as SFT's loss reads them),
    given their prompts: the text the private model exists to write, where held-out document text measures the
    language of the documents."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from training.sft import IGNORE, collate, encode

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    rows = [encode(tok, c["messages"], c["answer"], seq_len) for c in conversations]
    nll, n_tok = 0.0, 0
    for i in range(0, len(rows), batch_size):
        batch = collate(rows[i:i + batch_size], tok.pad_token_id)
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"])
        n = int((batch["labels"][:, 1:] != IGNORE).sum())  # the loss averages over the shifted labels
        nll += float(out.loss) * n
        n_tok += n
    return {"perplexity": round(math.exp(nll / max(n_tok, 1)), 3), "tokens": n_tok, "conversations": len(rows)}


def held_out_conversations(run_dir: Path, seed: int) -> list[dict]:
    """SFT's validation conversations: no stage trains on them (DPO leaves them out; a version trained before it did
    keeps those no DPO pair of its repeats)."""
    from training.sft import split_examples

    examples_file = run_dir / "sft" / "examples.jsonl"
    if not examples_file.exists():
        return []
    val, _ = split_examples(read_jsonl(examples_file), seed)
    pairs_file = run_dir / "align" / "pairs.jsonl"
    in_pairs = {p["messages"][-1]["content"] for p in read_jsonl(pairs_file)} if pairs_file.exists() else set()
    return [c for c in val if c["messages"][-1]["content"] not in in_pairs]


class FewShotBase:
    """The base model prompted with two worked examples instead of instruction tuning: the baseline SFT must beat."""

    name, leaves_company, can_condense = "base-few-shot", False, False
    SHOTS = (
        "Context [1]: Roadside assistance is included with Comprehensive Auto Insurance.\n"
        "Question: Is roadside assistance included?\nAnswer: Roadside assistance is included with Comprehensive Auto Insurance. [1]\n\n"
        "Context [1]: Baggage is covered up to EUR 2,000.\nQuestion: What is the weather tomorrow?\n"
        "Answer: I'm sorry, I can't find the answer to that in our documents.\n\n"
    )

    def __init__(self, model_dir: Path, max_new_tokens: int):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tok = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
        self.max_new = max_new_tokens

    def available(self):
        return True, ""

    def condense(self, prompt):
        return None

    def stream(self, request, usage=None) -> Iterator[str]:
        ctx = request.hits[0].chunk.text[:600] if request.hits else ""
        prompt = f"{self.SHOTS}Context [1]: {ctx}\nQuestion: {request.question}\nAnswer:"
        ids = self.tok(prompt, return_tensors="pt")["input_ids"]
        ids = ids[:, -(self.model.config.max_position_embeddings - self.max_new):]
        with torch.no_grad():
            out = self.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=self.max_new,
                                      do_sample=False, pad_token_id=self.tok.pad_token_id)
        yield self.tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True).split("\n\n")[0].strip()


def eval_cases(kb_dir: Path, limit: int | None) -> list[dict]:
    from assistant.evaluation import load_cases

    cases = load_cases(kb_dir / "eval.jsonl")
    cases = [c for c in cases if c["audience"] == "public" or c["must_refuse"]]  # a customer-facing model
    if limit:
        ins = [c for c in cases if not c["must_refuse"]]
        oos = [c for c in cases if c["must_refuse"]]
        cases = ins[: limit - limit // 3] + oos[: limit // 3]
    return cases


def run(cfg: TrainConfig, run_dir: Path, out: Path) -> dict:
    from assistant.evaluation import evaluate
    from assistant.pipeline import Assistant
    from assistant.settings import get_settings
    from assistant.store import KnowledgeStore
    from training.sft import kb_dirs

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out.mkdir(parents=True, exist_ok=True)
    texts = [d["text"] for d in read_jsonl(run_dir / "data" / "heldout.jsonl")]
    general_file = run_dir / "data" / "heldout_general.jsonl"
    general = [d["text"] for d in read_jsonl(general_file)] if general_file.exists() else []
    open_base = cfg.base != "scratch"
    stages = {"base": run_dir / "pretrain" / "model", "sft": run_dir / "sft" / "model", "aligned": run_dir / "align" / "model"}
    if open_base:  # the un-fine-tuned open base first, then what each stage made of it
        from training.pretrain import base_path

        stages = {"base": Path(base_path(run_dir)), "pretrain": run_dir / "pretrain" / "model", **{
            k: v for k, v in stages.items() if k != "base"}}
    ppl = {name: perplexity(path, texts, cfg.pretrain.seq_len, cfg.eval.heldout_batches)
           for name, path in stages.items() if (path / "config.json").exists()}
    conversations = held_out_conversations(run_dir, cfg.seed)
    if conversations:
        for name, path in stages.items():
            if name in ppl:
                ppl[name]["answer_perplexity"] = answer_perplexity(path, conversations, cfg.sft.seq_len)["perplexity"]
    if open_base and general:  # forgetting: the same on general text no stage trained on
        for name, path in stages.items():
            if name in ppl:
                ppl[name]["general_perplexity"] = perplexity(path, general, cfg.pretrain.seq_len,
                                                             cfg.eval.heldout_batches)["perplexity"]

    # answer_fallback off: the report card measures what each model writes, never the extractive quote standing in
    settings = get_settings().model_copy(update={"private_model_path": str(stages["aligned"]), "temperature": 0.0,
                                                 "store_dir": run_dir / "sft" / "store", "answer_fallback": "off"})
    assistant = Assistant(settings, store=KnowledgeStore(settings.store_dir, settings.collection))
    if open_base:  # the general model given the same RAG prompt and rails: what fine-tuning must beat
        from assistant.generators.private import PrivateGenerator
        from training.sft import prompt_budget

        baseline = "base-rag"
        assistant.register(baseline, PrivateGenerator(settings.model_copy(update={"private_model_path": stages["base"]}),
                                                      prompt={"context_chunks": cfg.sft_context_chunks,
                                                              "max_new_tokens": cfg.eval.max_new_tokens,
                                                              "prompt_tokens": prompt_budget(cfg)}))
    else:
        baseline = "base-few-shot"
        assistant.register(baseline, FewShotBase(stages["base"], cfg.eval.max_new_tokens))
    cases = eval_cases(kb_dirs(cfg)[0], cfg.eval.max_questions)
    rag = {}
    for backend in ("private", "extractive", baseline):
        r = evaluate(assistant, cases, backend, internal=False)
        rag[backend] = {"answer_f1": round(r["answer_f1"], 3), "citation_accuracy": round(r["in_scope"][0], 3),
                        "out_of_scope_refused": round(r["out_of_scope"][0], 3), "in_scope_cases": r["in_scope"][1],
                        "out_of_scope_cases": r["out_of_scope"][1],
                        "out_of_scope_reaching_model": r["out_of_scope_reaching_backend"],
                        "out_of_scope_declined_by_model": r["out_of_scope_declined_by_backend"],
                        "latency_p50_ms": round(r["latency_p50_ms"], 1),
                        "unsupported_figures": r.get("unsupported_figures")}
    result = {"heldout": ppl, "rag": rag}
    (out / "eval.json").write_text(json.dumps(result, indent=2))
    return result
