"""Stage 2 — the insurance tokenizer: byte-level BPE trained on the mix, insurance terms kept whole, chat tokens.

Saved as a `PreTrainedTokenizerFast` folder (`AutoTokenizer.from_pretrained` loads it). The same-size tokenizer
trained on the general part alone is the baseline for bytes per token on held-out insurance text.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from pathlib import Path

from training.config import TrainConfig
from training.data import read_jsonl

PAD, EOT, IM_START, IM_END = "<|pad|>", "<|endoftext|>", "<|im_start|>", "<|im_end|>"
SPECIAL = [PAD, EOT, IM_START, IM_END]

# The assistant's own chat format (ChatML). `{% generation %}` marks the tokens the model is trained to produce.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|im_start|>assistant\\n' }}{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}{{ '\\n' }}"
    "{% else %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# Field vocabulary an insurer's texts repeat constantly; mined KB terms are added to these.
CURATED_TERMS = [
    "insurance", "insurer", "insured", "policyholder", "policy", "premium", "premiums", "deductible", "deductibles",
    "excess", "coverage", "cover", "claim", "claims", "claimant", "underwriting", "underwriter", "exclusion",
    "exclusions", "endorsement", "liability", "indemnity", "beneficiary", "rider", "annuity", "actuarial", "waiting period",
    "pre-existing", "no-claims", "comprehensive", "third-party", "collision", "roadside", "renters", "homeowners",
    "reimbursement", "co-payment", "copay", "out-of-pocket", "cooling-off", "cancellation", "subrogation",
    "adjuster", "loss adjuster", "sum insured", "per claim", "per year", "per trip", "Brightwater", "Brightwater Mutual",
]
_WORD = re.compile(r"[A-Za-z][A-Za-z-]{3,}")


def mine_terms(insurance: list[str], general: list[str], n: int) -> list[str]:
    """Words much more frequent in insurance text than in general text (smoothed log-ratio × frequency)."""
    ins = Counter(w.lower() for t in insurance for w in _WORD.findall(t))
    gen = Counter(w.lower() for t in general for w in _WORD.findall(t))
    n_ins, n_gen = sum(ins.values()) or 1, sum(gen.values()) or 1
    scored = []
    for w, c in ins.items():
        if c < 3 or len(w) < 5:
            continue
        ratio = math.log((c / n_ins) / ((gen[w] + 1) / n_gen))
        if ratio > 1.0:
            scored.append((ratio * math.log(c), w))
    return [w for _, w in sorted(scored, reverse=True)[:n]]


def train_bpe(texts: list[str], vocab_size: int, min_frequency: int = 2, terms: list[str] = ()):
    """A byte-level BPE as a `PreTrainedTokenizerFast`, with `terms` as whole tokens (with and without a leading
    space, lower and capitalized) and the chat template."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    n_terms = len(_term_forms(terms))
    trainer = trainers.BpeTrainer(
        vocab_size=max(vocab_size - n_terms, 300), min_frequency=min_frequency, special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    if terms:
        tok.add_tokens([AddedToken(t, normalized=False) for t in _term_forms(terms)])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=PAD, eos_token=IM_END, bos_token=None, unk_token=None,
        additional_special_tokens=[EOT, IM_START], model_max_length=1 << 30,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def _term_forms(terms) -> list[str]:
    forms: list[str] = []
    for t in terms:
        for f in (" " + t, " " + t[:1].upper() + t[1:], t):
            if f not in forms:
                forms.append(f)
    return forms


def bytes_per_token(tokenizer, texts: list[str]) -> float:
    n_bytes = sum(len(t.encode()) for t in texts)
    n_tokens = sum(len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"])
    return n_bytes / max(n_tokens, 1)


def run(cfg: TrainConfig, data_dir: Path, out: Path) -> dict:
    if cfg.base != "scratch":
        return keep_base(cfg, data_dir, out)
    train = [d["text"] for d in read_jsonl(data_dir / "train.jsonl")]
    general = [d["text"] for d in read_jsonl(data_dir / "general.jsonl")]
    insurance = [d["text"] for d in read_jsonl(data_dir / "insurance.jsonl")]
    heldout = [d["text"] for d in read_jsonl(data_dir / "heldout.jsonl")]
    terms = list(dict.fromkeys(CURATED_TERMS + mine_terms(insurance, general, cfg.tokenizer.mined_terms)))
    tok = train_bpe(train, cfg.tokenizer.vocab_size, cfg.tokenizer.min_frequency, terms)
    tok.save_pretrained(out)
    (out / "insurance_terms.txt").write_text("\n".join(terms) + "\n")
    baseline = train_bpe(general, cfg.tokenizer.vocab_size, cfg.tokenizer.min_frequency) if general else None
    eval_texts = heldout or insurance
    ours = bytes_per_token(tok, eval_texts)
    metrics = {"vocab_size": len(tok), "insurance_terms": len(terms), "bytes_per_token": round(ours, 3)}
    if baseline is not None:
        base = bytes_per_token(baseline, eval_texts)
        metrics.update(general_only_bytes_per_token=round(base, 3),
                       token_reduction=round(1 - base / ours, 3))  # fewer tokens for the same bytes
    return metrics


def keep_base(cfg: TrainConfig, data_dir: Path, out: Path) -> dict:
    """An open base keeps its own tokenizer (its embeddings were trained with it); the base is resolved — converted
    once and cached — and recorded beside the run (`base.json`) for the registry."""
    import json

    from transformers import AutoTokenizer

    from assistant.settings import get_settings
    from training.base import as_dict, resolve

    info = resolve(cfg.base, get_settings().bases_dir)
    tok = AutoTokenizer.from_pretrained(info.path)
    tok.save_pretrained(out)
    (out.parent / "base.json").write_text(json.dumps(as_dict(info), indent=2))
    texts = [d["text"] for d in read_jsonl(data_dir / "heldout.jsonl")] or \
        [d["text"] for d in read_jsonl(data_dir / "insurance.jsonl")]
    return {"vocab_size": len(tok), "kept": f"the base's ({info.name})", "bytes_per_token": round(bytes_per_token(tok, texts), 3),
            "base": info.name, "base_licence": info.licence, "base_sha256": info.sha256}
