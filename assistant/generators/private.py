"""Solution B: the company's own model (trained by `training/`), loaded from a local Hugging Face folder.

The model is found through the registry pointer `<models_dir>/PROMOTED` (a version name) or an explicit
`ASSISTANT_PRIVATE_MODEL_PATH`. It gets the grounded prompt in its compact form, fitted to the model's context
window exactly as the training data was (`fit_messages` is shared with `training/`), rendered with the model's own
chat template, and streams tokens from a background generation thread.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

from assistant.generators.base import GenerationRequest, GeneratorUnavailable, Usage
from assistant.precision import bf16_enabled
from assistant.prompt import COMPACT_RULES, REFUSAL, build_messages, trim_hit

# Written by training beside the weights: how many chunks the model was trained to read, its answer budget.
PROMPT_FILE = "assistant_prompt.json"
DEFAULT_PROMPT = {"context_chunks": 3, "max_new_tokens": 256, "prompt_tokens": None}


def fit_messages(tokenizer, question: str, hits, contact: str, history, budget_tokens: int, n_chunks: int,
                 focus: dict[int, str] | None = None):
    """(messages, hits used): the compact grounded prompt, chunk texts shortened until it fits `budget_tokens`;
    `focus`: passage number -> the sentence of it that answers (kept when the passage is cut)."""
    hits = list(hits[:n_chunks])
    history = list(history or [])[-1:]
    focus = focus or {}
    chars = 900
    while True:
        trimmed = [trim_hit(h, chars, focus.get(n)) for n, h in enumerate(hits, start=1)]
        messages = build_messages(question, trimmed, contact, history, rules=COMPACT_RULES)
        n = len(tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"])
        if n <= budget_tokens or chars <= 120:
            return messages, trimmed
        if history:
            history = []  # the earlier turn goes before the context does
            continue
        chars = int(chars * 0.8)


def promoted_model_path(settings) -> Path | None:
    if settings.private_model_path:
        return Path(settings.private_model_path)
    pointer = Path(settings.models_dir) / "PROMOTED"
    if pointer.exists():
        version = pointer.read_text().strip()
        path = Path(settings.models_dir) / version / "model"
        return path if path.exists() else Path(settings.models_dir) / version
    return None


class PrivateGenerator:
    name = "private"
    can_condense = False  # has a language model to rewrite follow-up questions
    leaves_company = False

    def __init__(self, settings, prompt: dict | None = None):
        self.settings = settings
        self._prompt = prompt  # overrides the model folder's PROMPT_FILE (a base model evaluated with a run's prompt)
        self._loaded = None
        self._lock = threading.Lock()

    def available(self) -> tuple[bool, str]:
        path = promoted_model_path(self.settings)
        if path is None:
            return False, "no private model is promoted yet: train one with `python -m training all` (Solution B)"
        if not (path / "config.json").exists():
            return False, f"the promoted private model folder {path} holds no Hugging Face model (config.json missing)"
        return True, ""

    def _load(self):
        ok, why = self.available()
        if not ok:
            raise GeneratorUnavailable(why)
        path = promoted_model_path(self.settings)
        with self._lock:
            if self._loaded is None or self._loaded[0] != path:
                from transformers import AutoModelForCausalLM, AutoTokenizer

                tok = AutoTokenizer.from_pretrained(path)
                import torch

                bf16 = bf16_enabled(self.settings.private_bf16) and not self.settings.private_int8  # int8: fp32 in
                model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16 if bf16 else torch.float32)
                model.eval()
                if self.settings.private_int8:
                    from torch.ao.quantization import quantize_dynamic

                    model = quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
                prompt = dict(DEFAULT_PROMPT)
                if (path / PROMPT_FILE).exists():
                    prompt.update(json.loads((path / PROMPT_FILE).read_text()))
                prompt.update(self._prompt or {})
                self._loaded = (path, tok, model, prompt)
        return self._loaded[1], self._loaded[2], self._loaded[3]

    def stream(self, request: GenerationRequest, usage: Usage | None = None) -> Iterator[str]:
        import torch
        from transformers import TextIteratorStreamer

        tok, model, prompt = self._load()
        max_new = min(self.settings.max_answer_tokens, prompt["max_new_tokens"])
        max_ctx = getattr(model.config, "max_position_embeddings", 2048)
        # the prompt as long as the model saw in training (a long context is slow on a CPU and unfamiliar to it)
        budget = min(max_ctx - max_new, prompt.get("prompt_tokens") or max_ctx)
        focus = None
        if request.decision is not None:
            from assistant.answerability import best_sentences

            focus = best_sentences(request.decision, self.settings.extractive_choice_logit_weight)
        question = request.question
        if self.settings.private_question_tokens:
            from assistant.answerability import question_tail

            question = question_tail(tok, question, self.settings.private_question_tokens)
        messages, shown = fit_messages(tok, question, request.hits, self.settings.contact_fallback,
                                       request.history, budget, prompt["context_chunks"], focus)
        ids = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        input_ids = ids["input_ids"][:, -(max_ctx - max_new):]
        streamer = TextIteratorStreamer(tok, skip_prompt=True, skip_special_tokens=True)
        kwargs = dict(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), streamer=streamer,
                      max_new_tokens=max_new, do_sample=self.settings.temperature > 0,
                      pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
        if self.settings.temperature > 0:
            kwargs["temperature"] = self.settings.temperature
        processors = []
        passages, start, extra = [h.chunk.text for h in shown], int(input_ids.shape[1]), [self.settings.contact_fallback]
        if self.settings.private_grounded_decoding:
            from assistant.generators.grounding import GroundedFigures

            # the passages' figures, and the contact channel's (the prompt gives it for refusals)
            processors.append(GroundedFigures(tok, passages, start, extra=extra))
        answers = request.decision is not None and request.decision.answerable  # the decision passed the question
        if self.settings.private_defer_refusal and answers:
            from assistant.generators.grounding import NoRefusalOpening

            processors.append(NoRefusalOpening(tok, REFUSAL, start))
        if answers and self.settings.private_focus_bonus:
            from assistant.answerability import best_sentence, chosen_sentences
            from assistant.generators.extractive import HEADING, headed
            from assistant.generators.grounding import FocusOpening, flat

            s = self.settings
            opening = best_sentence(request.decision, s.extractive_choice_logit_weight)
            if opening:
                # then the other sentences the extractive backend would quote, of the passages the model is shown;
                # a heading by what it heads ("Section 2 - Waiting periods. [1]" alone answered nothing)
                chosen = chosen_sentences(request.decision, s.extractive_choice_logit_weight,
                                          s.extractive_evidence_margin, s.extractive_max_sentences)
                picked = headed(request.hits, [(e.n, e.sentence) for e in chosen], s.extractive_max_sentences)
                shown = [flat(p) for p in passages]  # a sentence wrapped over two lines is still shown
                sequence = [t for _, t in picked if not HEADING.match(t) and any(flat(t) in p for p in shown)]
                if HEADING.match(opening) and sequence:
                    opening = sequence[0]
                then = [t for t in sequence if t != opening]
                processors.append(FocusOpening(tok, opening, start, s.private_focus_bonus,
                                               then[:max(0, s.private_focus_sentences - 1)], s.private_focus_end))
        if answers and self.settings.private_cite_before_end:
            from assistant.generators.grounding import CiteBeforeEnd

            processors.append(CiteBeforeEnd(tok, start, max_new))
        if self.settings.private_copy_spans:
            from assistant.generators.grounding import CopySpans

            processors.append(CopySpans(tok, passages, start, self.settings.private_copy_spans, extra=extra))
        if processors:
            from transformers import LogitsProcessorList

            kwargs["logits_processor"] = LogitsProcessorList(processors)
        if self.settings.private_prompt_lookup:
            kwargs["prompt_lookup_num_tokens"] = self.settings.private_prompt_lookup
        thread = threading.Thread(target=lambda: torch.no_grad()(model.generate)(**kwargs), daemon=True)
        thread.start()
        parts = []
        for piece in streamer:
            parts.append(piece)
            yield piece
        thread.join()
        if usage is not None:
            usage.prompt_tokens = int(input_ids.shape[1])
            usage.completion_tokens = len(tok("".join(parts), add_special_tokens=False)["input_ids"])

    def condense(self, prompt: str) -> str | None:
        return None  # a small private model rewrites poorly: use the heuristic
