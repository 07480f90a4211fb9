"""Solution B: the company's own model (trained by `training/`), loaded from a local Hugging Face folder.

The model is found through the registry pointer `<models_dir>/PROMOTED` (a version name) or an explicit
`ASSISTANT_PRIVATE_MODEL_PATH`. It gets the same grounded prompt as the hosted backend, rendered with the
model's own chat template, and streams tokens from a background generation thread.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

from assistant.generators.base import GenerationRequest, GeneratorUnavailable, Usage


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

    def __init__(self, settings):
        self.settings = settings
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
                model = AutoModelForCausalLM.from_pretrained(path)
                model.eval()
                self._loaded = (path, tok, model)
        return self._loaded[1], self._loaded[2]

    def stream(self, request: GenerationRequest, usage: Usage | None = None) -> Iterator[str]:
        import torch
        from transformers import TextIteratorStreamer

        tok, model = self._load()
        ids = tok.apply_chat_template(request.messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        max_ctx = getattr(model.config, "max_position_embeddings", 2048)
        input_ids = ids["input_ids"][:, -(max_ctx - self.settings.max_answer_tokens):]
        streamer = TextIteratorStreamer(tok, skip_prompt=True, skip_special_tokens=True)
        kwargs = dict(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), streamer=streamer,
                      max_new_tokens=self.settings.max_answer_tokens, do_sample=self.settings.temperature > 0,
                      pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
        if self.settings.temperature > 0:
            kwargs["temperature"] = self.settings.temperature
        thread = threading.Thread(target=lambda: torch.no_grad()(model.generate)(**kwargs), daemon=True)
        thread.start()
        n = 0
        for piece in streamer:
            n += 1
            yield piece
        thread.join()
        if usage is not None:
            usage.prompt_tokens, usage.completion_tokens = int(input_ids.shape[1]), n

    def condense(self, prompt: str) -> str | None:
        return None  # a small private model rewrites poorly: use the heuristic
