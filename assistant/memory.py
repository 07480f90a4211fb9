"""Conversation memory: a follow-up question is made standalone before retrieval."""

from __future__ import annotations

import re

_REFERRING = re.compile(r"\b(it|its|that|this|those|these|they|them|their|there|same|one|ones|else|also)\b", re.I)

CONDENSE_PROMPT = (
    "Rewrite the last question of this conversation as one standalone question that can be understood without the "
    "conversation. Keep every product name, amount and detail it refers to. Reply with the question only.\n\n"
    "{conversation}\nLast question: {question}"
)


def needs_context(question: str) -> bool:
    return len(question.split()) <= 5 or bool(_REFERRING.search(question))


def heuristic_standalone(question: str, history: list[tuple[str, str]]) -> str:
    """Offline rewrite: a follow-up that leans on the previous turn is prefixed with the previous question."""
    if not history or not needs_context(question):
        return question
    return f"{history[-1][0].rstrip(' ?.')} — {question}"


def condense_with_llm(question: str, history: list[tuple[str, str]], invoke) -> str:
    """`invoke(prompt) -> str` is a chat model call; falls back to the heuristic on any failure."""
    if not history or not needs_context(question):
        return question
    convo = "\n".join(f"Customer: {u}\nAssistant: {a[:300]}" for u, a in history[-3:])
    try:
        out = invoke(CONDENSE_PROMPT.format(conversation=convo, question=question)).strip()
    except Exception:
        return heuristic_standalone(question, history)
    return out if 3 <= len(out) <= 500 else heuristic_standalone(question, history)
