"""Customers' words → the documents' words (assistant/data/vocabulary.yaml).

Customers say "excess", "windshield", "my flat got broken into"; policy documents say deductible, windscreen,
burglary. Neither BM25 nor a small embedding model bridges all of these, so a question that uses a customer's word
gets the documents' term appended before retrieval and scoring — the question itself is kept, only added to.
"""

from __future__ import annotations

import random
import re
from functools import lru_cache
from pathlib import Path

import yaml

VOCABULARY = Path(__file__).parent / "data" / "vocabulary.yaml"


@lru_cache(maxsize=4)
def vocabulary(path: Path = VOCABULARY) -> tuple[tuple[re.Pattern, str, str], ...]:
    """(pattern, customer's word, documents' words), longest phrases first so "flat tyre" wins over "tyre"."""
    entries = yaml.safe_load(Path(path).read_text()) or {}
    return tuple((re.compile(rf"(?<![\w-]){re.escape(k.lower())}(?![\w-])", re.I), k.lower(), str(v))
                 for k, v in sorted(entries.items(), key=lambda kv: -len(kv[0])))


def expand(question: str) -> str:
    """The question with the documents' terms for any customer's word in it appended (none: unchanged)."""
    lower = question.lower()
    present = set(re.findall(r"[\w-]+", lower))
    added: list[str] = []
    for pattern, _, terms in vocabulary():
        if pattern.search(lower):
            added += [t for t in terms.split() if t not in present and t not in added]
    return f"{question} ({' '.join(added)})" if added else question


def customer_words(text: str, rng: random.Random, rate: float = 0.5) -> str:
    """The reverse, for training data: some of the documents' terms in `text` swapped for a customer's word
    ("courtesy car" → "hire car", "deductible" → "excess")."""
    options: dict[str, list[str]] = {}
    for _, word, terms in vocabulary():
        options.setdefault(terms.lower(), []).append(word)
    for terms in sorted(options, key=len, reverse=True):
        pattern = re.compile(rf"(?<![\w-]){re.escape(terms)}(?![\w-])", re.I)
        if pattern.search(text) and rng.random() < rate:
            text = pattern.sub(rng.choice(options[terms]), text, count=1)
    return text
