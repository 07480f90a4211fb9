"""The one interface every generation backend implements."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

from assistant.schema import Hit


class GeneratorUnavailable(RuntimeError):
    """The backend cannot run here (no key, no model): the message says what to do."""


@dataclass
class GenerationRequest:
    question: str  # standalone question
    hits: list[Hit]  # the numbered context: hits[0] is [1]
    messages: list[dict]  # the grounded prompt (system rules + context + question) for model backends
    history: list[tuple[str, str]] = field(default_factory=list)
    decision: object | None = None  # the answerability model's Decision (scored sentences), when one is configured


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0


class Generator(Protocol):
    name: str
    leaves_company: bool  # does the prompt leave the company's machines?
    can_condense: bool  # can it rewrite a follow-up question (has a language model)?

    def available(self) -> tuple[bool, str]:
        """(usable, reason if not)."""

    def stream(self, request: GenerationRequest, usage: Usage | None = None) -> Iterator[str]:
        """Yield the answer text in pieces; may fill `usage`."""

    def condense(self, prompt: str) -> str | None:
        """Answer a short rewriting prompt, or None when the backend has no language model."""
