"""Personal data detection and redaction: typed placeholders (`<EMAIL_1>`), a per-session map to restore the
customer's own references in what that customer sees, and nothing personal in logs or outgoing requests."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# Most specific first: a card number also looks like a phone number.
PATTERNS: list[tuple[str, re.Pattern]] = [
    ("EMAIL", re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")),
    ("IBAN", re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){3,7}(?: ?[A-Z0-9]{1,3})?\b")),
    ("CARD", re.compile(r"\b(?:\d[ -]?){13,19}\b")),
    ("POLICY", re.compile(r"\b(?:[A-Z]{2,4}-\d{4,}(?:-\d+)*|(?:policy|claim|reference)\s*(?:no\.?|number|#|ref\.?)\s*:?\s*[A-Z0-9][A-Z0-9-]{4,})\b", re.I)),
    ("ACCOUNT", re.compile(r"\b(?:account|acct|sort code)\s*(?:no\.?|number|#)?\s*:?\s*\d[\d -]{5,}\b", re.I)),
    ("NATIONAL_ID", re.compile(r"\b(?:\d{3}-\d{2}-\d{4}|[A-CEGHJ-PR-TW-Z]{2} ?\d{2} ?\d{2} ?\d{2} ?[A-D])\b")),
    # Whole digit runs only (never the tail of a longer number), 7-15 digits.
    ("PHONE", re.compile(r"(?<![\w<])(?<!\d[ .-])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,5}\)[ .-]?)?\d{2,6}(?:[ .-]\d{2,6}){1,4}(?![ .-]?\d)(?![\w>])")),
]
_DATE = re.compile(r"\d{4}[-.]\d{1,2}[-.]\d{1,2}|\d{1,2}[-.]\d{1,2}[-.]\d{2,4}")
# "My name is Jane Doe" / "I'm John Smith": names only where the phrasing announces them.
NAME = re.compile(r"\b(?i:my name is|i am|i'm|this is|name:)\s+([A-Z][a-z]+(?:\s+[A-Z][a-z]+){0,2})")


def luhn_ok(number: str) -> bool:
    digits = [int(d) for d in re.sub(r"\D", "", number)]
    if not 13 <= len(digits) <= 19:
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2:
            d = d * 2 - 9 if d * 2 > 9 else d * 2
        total += d
    return total % 10 == 0


@dataclass
class Redaction:
    text: str
    found: dict[str, str] = field(default_factory=dict)  # placeholder -> original (kept in the session only)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for ph in self.found:
            kind = ph.strip("<>").rsplit("_", 1)[0]
            out[kind] = out.get(kind, 0) + 1
        return out

    def restore(self, text: str) -> str:
        """The customer's own references back in the text shown to that customer."""
        for ph, original in self.found.items():
            text = text.replace(ph, original)
        return text


def redact(text: str, keep: set[str] = frozenset(), names: bool = True, known: dict[str, str] | None = None) -> Redaction:
    """`known`: the session's placeholders so far, so a value keeps its placeholder across turns."""
    found: dict[str, str] = dict(known or {})
    seen: dict[str, str] = {v: ph for ph, v in found.items()}

    def placeholder(kind: str, value: str) -> str:
        if value in seen:
            return seen[value]
        n = sum(1 for p in found if p.startswith(f"<{kind}_")) + 1
        ph = f"<{kind}_{n}>"
        found[ph] = value
        seen[value] = ph
        return ph

    for kind, pattern in PATTERNS:
        def sub(m, kind=kind):
            value = m.group(0).strip()
            if value in keep or (kind == "CARD" and not luhn_ok(value)):
                return m.group(0)
            if kind == "PHONE" and (not 7 <= sum(ch.isdigit() for ch in value) <= 15 or _DATE.fullmatch(value)):
                return m.group(0)
            return placeholder(kind, value)
        text = pattern.sub(sub, text)
    if names:
        text = NAME.sub(lambda m: m.group(0).replace(m.group(1), placeholder("NAME", m.group(1))), text)
    return Redaction(text, found)
