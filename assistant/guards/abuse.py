"""Abuse and toxicity: insults, threats, slurs → a calm refusal that still offers help. Whole-word patterns
from the rail's YAML, so alarming but innocent insurance words ("kill switch", "fire damage") pass."""

from __future__ import annotations

from assistant.guards.base import Verdict, compiled, first_match, timed
from assistant.guards.injection import normalize


def check_abuse(text: str) -> Verdict:
    with timed() as t:
        hit = first_match(compiled("abuse", "patterns"), normalize(text)) or first_match(compiled("abuse", "patterns"), text)
    return Verdict("abuse", hit is None, f"pattern: {hit}" if hit else "", t.ms)
