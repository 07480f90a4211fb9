"""Prompt injection and jailbreak detection.

Three layers, cheapest first: phrase patterns on a normalized form of the message (so "1gn0re" and "i g n o r e"
match "ignore"), the same patterns on decoded base64/hex payloads, and embedding similarity to a curated set of
known attacks (catches paraphrases no pattern lists). The same document patterns find instruction-like lines in
documents: neutralized in the context (indirect injection) and flagged at ingest.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
import unicodedata

import numpy as np

from assistant.guards.base import Verdict, compiled, first_match, rail_config, timed

_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s", "!": "i"})
_SPACED = re.compile(r"\b(?:[a-z][ ._-]){3,}[a-z]\b")  # "i g n o r e" / "i.g.n.o.r.e"
_B64 = re.compile(r"[A-Za-z0-9+/]{16,}={0,2}")
_HEX = re.compile(r"\b(?:[0-9a-fA-F]{2}[ ]?){8,}\b")


def normalize(text: str) -> str:
    """The forms an attacker uses to slip past a phrase list, folded back: width, case, leetspeak, spacing."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = "".join(ch for ch in text if unicodedata.category(ch) not in ("Cf", "Mn"))
    text = _SPACED.sub(lambda m: re.sub(r"[ ._-]", "", m.group(0)), text)
    words = [w.translate(_LEET) if re.search(r"[a-z]", w) else w for w in text.split()]
    return " ".join(words)


def decoded_payloads(text: str) -> list[str]:
    """Readable text hidden in base64, hex or rot13 inside the message."""
    out = []
    min_chars = rail_config("injection")["min_encoded_chars"]
    for m in _B64.finditer(text):
        s = m.group(0)
        if len(s) < min_chars or s.isalpha() and (s.islower() or s.isupper()):
            continue  # an ordinary long word
        try:
            raw = base64.b64decode(s + "=" * (-len(s) % 4), validate=False)
        except (binascii.Error, ValueError):
            continue
        decoded = raw.decode("utf-8", errors="ignore")
        if decoded and sum(ch.isprintable() for ch in decoded) / len(decoded) > 0.9 and " " in decoded:
            out.append(decoded)
    for m in _HEX.finditer(text):
        try:
            out.append(bytes.fromhex(m.group(0).replace(" ", "")).decode("utf-8", errors="ignore"))
        except ValueError:
            pass
    if "rot13" in text.lower() or "rot-13" in text.lower():
        out.append(codecs.decode(text, "rot13"))
    return out


class InjectionDetector:
    def __init__(self, embedder=None):
        self.embedder = embedder
        self._anchors: tuple[np.ndarray, np.ndarray] | None = None

    def attack_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """(known attacks, ordinary requests that share their words), embedded once."""
        if self._anchors is None:
            self._anchors = (self.embedder.embed(list(rail_config("injection", "attacks.yaml"))),
                             self.embedder.embed(list(rail_config("injection", "benign.yaml"))))
        return self._anchors

    def check(self, text: str, vector: np.ndarray | None = None) -> Verdict:
        with timed() as t:
            verdict = self._check(text, vector)
        verdict.ms = t.ms
        return verdict

    def _check(self, text: str, vector) -> Verdict:
        patterns = compiled("injection", "patterns")
        for form in [normalize(text), text.lower()]:
            hit = first_match(patterns, form)
            if hit:
                return Verdict("injection", False, f"pattern: {hit[:80]}")
        for payload in decoded_payloads(text):
            if first_match(patterns, normalize(payload)):
                return Verdict("injection", False, "encoded payload with instructions")
        if self.embedder is not None:
            vector = self.embedder.embed_one(text) if vector is None else vector
            attacks, benign = self.attack_vectors()
            attack, ordinary = float(np.max(attacks @ vector)), float(np.max(benign @ vector))
            cfg = rail_config("injection")
            if attack >= cfg["similarity_threshold"] and attack - ordinary >= cfg["similarity_margin"]:
                return Verdict("injection", False, f"similar to a known attack ({attack:.2f} vs {ordinary:.2f})",
                               data={"similarity": round(attack, 3), "benign": round(ordinary, 3)})
        return Verdict("injection", True)


_DOC_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def _sentences(line: str) -> list[str]:
    return _DOC_SENTENCE.split(line)


def instruction_lines(text: str) -> list[str]:
    """Sentences of a document that read as commands to an AI (a sentence, not a line: some sources keep a whole
    answer on one line, and one bad sentence must not cost the rest)."""
    patterns = compiled("injection", "document_patterns")
    return [s.strip() for line in text.splitlines() for s in _sentences(line)
            if s.strip() and first_match(patterns, normalize(s))]


def neutralize(text: str) -> tuple[str, int]:
    """The text with instruction-like sentences replaced, and how many were."""
    patterns = compiled("injection", "document_patterns")
    replacement = rail_config("injection")["neutralized_text"]
    lines, n = [], 0
    for line in text.split("\n"):
        parts = []
        for s in _sentences(line):
            if s.strip() and first_match(patterns, normalize(s)):
                parts.append(replacement)
                n += 1
            else:
                parts.append(s)
        lines.append(" ".join(parts))
    return "\n".join(lines), n
