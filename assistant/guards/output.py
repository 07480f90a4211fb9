"""Output validation: every sentence is checked before the user sees it.

A sentence survives when its citations point at retrieved passages, it is grounded in the passages it cites
(lexical overlap, numbers that match, embedding similarity for paraphrases), it promises nothing and advises
nothing the passages do not say, it repeats neither the system prompt nor (for a customer) an internal document,
and any personal data in it is the customer's own or published in the passages. Sentences without a citation
wait until a cited one has passed; an answer left with no cited sentence becomes the safe fallback.
Because the pipeline only ever shows sentences that came out of `feed`/`finish`, nothing unchecked is shown.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

import numpy as np

from assistant.answerability import text_sentences
from assistant.guards.base import Verdict, compiled, first_match, rail_config
from assistant.guards.pii import redact
from assistant.schema import Hit
from assistant.store import analyze

_CITE = re.compile(r"\s*\[(\d{1,3})\]")
# A sentence ends at . ! ? (closing quotes and citation markers stay with it) before the next sentence starts.
_END = re.compile(r"(?<=[.!?])[\"')]?(?:\s*\[\d{1,3}\])*(?=\s+[^\s\[])|\n+")
_NUMBER = re.compile(r"\d[\d,.]*\d|\d")
_PLACEHOLDER = re.compile(r"<[A-Z_]+_\d+>")
_WORD = re.compile(r"[a-z0-9']+")
_LETTERS = re.compile(r"[^\W\d_]{2}")


def figures(text: str) -> set[str]:
    """The figures of `text` as the grounding check compares them: thousands separators and a final full stop off."""
    return {n.replace(",", "").rstrip(".") for n in _NUMBER.findall(_PLACEHOLDER.sub(" ", text))}


def shingles(text: str, n: int) -> set[tuple[str, ...]]:
    words = _WORD.findall(text.lower())
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def split_ready(buffer: str) -> tuple[list[str], str]:
    """Complete sentences in `buffer` and the unfinished rest."""
    out, start = [], 0
    for m in _END.finditer(buffer):
        piece = buffer[start:m.end()]
        if piece.strip():  # whitespace alone stays as the next sentence's prefix
            out.append(piece)
            start = m.end()
    return out, buffer[start:]


@dataclass
class OutputCheck:
    """The checking state of one answer. Feed it the generated text; it returns what may be shown."""

    guard: "OutputGuard"
    hits: list[Hit]
    role: str
    own_pii: set[str]
    buffer: str = ""
    pending: list[str] = field(default_factory=list)  # uncited sentences, waiting for a cited one to pass
    shown: list[str] = field(default_factory=list)
    cited: list[int] = field(default_factory=list)
    raw_cited: bool = False  # the generated text cited a retrieved passage (before any check)
    verdicts: list[Verdict] = field(default_factory=list)

    def feed(self, piece: str) -> list[str]:
        self.buffer += piece
        ready, self.buffer = split_ready(self.buffer)
        return [s for sentence in ready for s in self._take(sentence)]

    def finish(self) -> list[str]:
        """The rest; [] and `refused` when nothing cited survived."""
        out = self._take(self.buffer) if self.buffer.strip() else []
        self.buffer = ""
        return out

    @property
    def refused(self) -> bool:
        return not self.cited

    @property
    def text(self) -> str:
        return "".join(self.shown).strip()

    def _take(self, sentence: str) -> list[str]:
        cited = [int(m.group(1)) for m in _CITE.finditer(sentence)]
        numbers = [n for n in cited if 1 <= n <= len(self.hits)]
        for n in set(cited) - set(numbers):
            self.verdicts.append(Verdict("citations", False, f"citation [{n}] points at no retrieved passage"))
        if not numbers:  # checked once a cited sentence has passed; dropped unchecked if none ever does
            self.pending.append(sentence)
            return []
        self.raw_cited = True
        checked, numbers = self._check(sentence)
        if checked is None:
            return []
        self.cited += [n for n in numbers if n not in self.cited]
        out = [s for s in (self._check(p)[0] for p in self.pending) if s is not None] + [checked]
        self.pending = []
        self.shown += out
        return out

    def _check(self, sentence: str):
        return self.guard.check_sentence(sentence, self.hits, self.role, self.own_pii, self.verdicts,
                                         [self.hits[n - 1] for n in self.cited])


class OutputGuard:
    def __init__(self, embedder, store, system_prompts: list[str]):
        self.embedder = embedder
        self.store = store
        cfg = rail_config("output")
        self.cfg = cfg
        self.prompt_shingles = set().union(*(shingles(p, cfg["prompt_leak_ngram"]) for p in system_prompts))
        self._internal: tuple[int, set] | None = None

    def start(self, hits: list[Hit], role: str, own_pii: set[str] = frozenset()) -> OutputCheck:
        return OutputCheck(self, hits, role, set(own_pii))

    def internal_shingles(self) -> set:
        """Word n-grams of internal documents (rebuilt when the store changes)."""
        generation = self.store.manifest.generation()
        if self._internal is None or self._internal[0] != generation:
            n = self.cfg["internal_leak_ngram"]
            grams: set = set()
            for text in self.store.texts("internal"):
                grams |= shingles(text, n)
            self._internal = (generation, grams)
        return self._internal[1]

    def check_sentence(self, sentence: str, hits: list[Hit], role: str, own_pii: set[str],
                       verdicts: list[Verdict], context: list[Hit] = ()) -> tuple[str | None, list[int]]:
        """(the sentence as it may be shown or None, the valid citation numbers in it). An uncited sentence is
        checked against `context` (what the answer cites so far), else against every retrieved passage."""
        t0 = time.perf_counter()

        def reject(rail: str, detail: str):
            verdicts.append(Verdict(rail, False, f"{detail}: {sentence.strip()[:120]}", (time.perf_counter() - t0) * 1000))
            return None, []

        numbers = [int(m.group(1)) for m in _CITE.finditer(sentence) if 1 <= int(m.group(1)) <= len(hits)]
        sentence = _CITE.sub(lambda m: m.group(0) if 1 <= int(m.group(1)) <= len(hits) else "", sentence)
        if role == "customer" and any(hits[n - 1].chunk.audience != "public" for n in numbers):
            return reject("access", "cites an internal document for a customer")
        sources = [hits[n - 1] for n in dict.fromkeys(numbers)] or list(context) or hits
        source_text = "\n".join(h.chunk.text for h in sources)
        plain = _CITE.sub("", sentence).strip()
        low, src_low = plain.lower(), source_text.lower()

        for key in ("promises", "advice"):
            hit = first_match(compiled("output", key), low)
            if hit and hit.lower() not in src_low:
                return reject(key, f"'{hit}' not in the cited passages")
        if shingles(plain, self.cfg["prompt_leak_ngram"]) & self.prompt_shingles:
            return reject("prompt_leak", "repeats the system prompt")
        if role == "customer":
            n = self.cfg["internal_leak_ngram"]
            leaked = shingles(plain, n) & self.internal_shingles()
            if leaked and leaked - set().union(*(shingles(h.chunk.text, n) for h in hits)):
                return reject("internal_leak", "repeats an internal document")
        grounded, detail = self.grounded(plain, sources, source_text)
        if not grounded:
            return reject("grounding", detail)

        found = redact(plain, names=False).found
        foreign = [v for v in found.values() if v not in own_pii and v not in source_text]
        if foreign:
            for v in foreign:
                sentence = sentence.replace(v, rail_config("pii")["replacement"])
            verdicts.append(Verdict("pii", False, f"removed {len(foreign)} personal data item(s) not the customer's own"))
        return sentence, numbers

    def grounded(self, plain: str, sources: list[Hit], source_text: str) -> tuple[bool, str]:
        g = self.cfg["grounding"]
        # numbers first: a short sentence ("2.2 Theft.", "(2026) 1.") carries no claim in words but may in figures
        if g["numbers_must_match"]:
            said = figures(plain)
            missing = said - figures(source_text)
            if missing:
                return False, f"numbers {sorted(missing)} not in the cited passages"
            if said and not _LETTERS.search(plain):
                return False, "a figure without a word says nothing"  # "4.2. [2]": a section number quoted alone
            if g["figures_together"] and len(said) > 1 and not any(
                    said <= figures(s) for s in text_sentences(source_text, figures=True)):
                # "EUR 75,000 as standard, up to EUR 2,500": each figure is in the passage, the relation is not
                return False, f"numbers {sorted(said)} not stated together in one sentence of the cited passages"
        words = set(analyze([_PLACEHOLDER.sub(" ", plain)])[0])
        if len(words) < g["min_content_words"]:
            return True, "no claim"
        src_words = set(t for toks in analyze([source_text]) for t in toks)
        lexical = len(words & src_words) / len(words)
        if lexical >= g["lexical_min"]:
            return True, f"lexical {lexical:.2f}"
        if lexical < g["lexical_floor"]:
            return False, f"lexical {lexical:.2f}"
        # Paraphrase: embed the sentence and the passages' sentences (only here: embedding is the slow part).
        from assistant.answerability import split_sentences

        # The passages' sentences sharing most words with this one: embedding them all would cost ~10 ms each.
        candidates = [s for h in sources for s in split_sentences(h.chunk.text)] or [source_text[:1000]]
        overlap = [len(words & set(toks)) for toks in analyze(candidates)]
        candidates = [c for _, c in sorted(zip(overlap, candidates), key=lambda x: -x[0])[:8]]
        vecs = self.embedder.embed_cached([plain] + candidates, batch_size=64)
        cosine = float(np.max(vecs[1:] @ vecs[0]))
        return cosine >= g["cosine_min"], f"lexical {lexical:.2f}, cosine {cosine:.2f}"
