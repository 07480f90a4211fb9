"""The offline default: the answer is the best-supported sentences of the retrieved chunks, quoted and cited.

No model generates text, so nothing can be invented; the risk is answering a question the context does not
really address. Two checks guard that: the quoted sentences must be similar to the question (embedding cosine),
and together with their passages they must contain most of the question's key terms (IDF-weighted coverage —
"pet insurance" is not answered by a passage about home insurance just because both say "insurance").
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import numpy as np

from assistant.generators.base import GenerationRequest, Usage
from assistant.store import analyze

_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])|\n+")
_BLOCK_START = re.compile(r"^\s*([-*•#|]|\d+(\.\d+)*[.)]?\s|[A-Z][\w ]{0,40}:\s|Section \d)")
_LABEL = re.compile(r"^(Q|A):\s*")
# Words that shape a question but carry no subject: not required to appear in the answer.
_QUESTION_WORDS = set("how mani much long soon often can could do doe keep get need must should would will tell "
                      "know want pleas ok okay there ani what which who when where whi".split())
_NUMBER = re.compile(r"\d[\d,.]*\d|\d")
REFUSAL_PREFIX = "I'm sorry, I can't find the answer to that in our documents."


def unwrap(text: str) -> str:
    """Re-join lines that a PDF or a text file wrapped mid-sentence; keep list items, headings, table rows."""
    lines = text.split("\n")
    out: list[str] = []
    for line in lines:
        if out and out[-1] and line.strip() and not _BLOCK_START.match(line) and out[-1][-1] not in ".!?:|":
            out[-1] = f"{out[-1]} {line.strip()}"
        else:
            out.append(line.strip())
    return "\n".join(out)


def split_sentences(text: str) -> list[str]:
    out = []
    for s in _SENTENCE.split(unwrap(text)):
        s = _LABEL.sub("", s.replace("**", "").strip(" -•*|\t"))
        if len(s) >= 25 and len(s.split()) >= 4 and not s.startswith("#"):
            out.append(s)
    return out


class ExtractiveGenerator:
    name = "extractive"
    can_condense = False  # has a language model to rewrite follow-up questions
    leaves_company = False

    def __init__(self, store, embedder, settings):
        self.store = store
        self.embedder = embedder
        self.settings = settings

    def available(self) -> tuple[bool, str]:
        return True, ""

    def condense(self, prompt: str) -> str | None:
        return None

    def support(self, question: str, texts: list[str]) -> float:
        """IDF-weighted share of the question's terms found in `texts`."""
        bm25 = self.store.bm25()
        q_terms = set(analyze([question])[0]) - _QUESTION_WORDS
        if not q_terms:
            return 0.0
        found = set(t for toks in analyze(texts) for t in toks)
        # The stemmer leaves some families apart ("burgled" → burgl, "burglary" → burglari): a shared 5-letter
        # prefix counts as the same word.
        prefixes = {t[:5] for t in found if len(t) >= 5}
        weights = {t: bm25.idf(t) for t in q_terms}
        total = sum(weights.values())
        hit = lambda t: t in found or (len(t) >= 5 and t[:5] in prefixes)  # noqa: E731
        return sum(w for t, w in weights.items() if hit(t)) / total if total else 0.0

    def select(self, request: GenerationRequest) -> tuple[list[tuple[int, str]], float, float]:
        """[(context number, sentence)], best sentence similarity, support."""
        candidates: list[tuple[int, str, float]] = []  # (n, sentence, prior)
        for n, hit in enumerate(request.hits, start=1):
            lines = hit.chunk.text.split("\n")
            body = "\n".join(lines[1:]) if len(lines) > 1 and hit.chunk.title and lines[0].startswith(hit.chunk.title) else hit.chunk.text
            for s in split_sentences(body):
                candidates.append((n, s, hit.similarity))
        if not candidates:
            return [], 0.0, 0.0
        # Cheap lexical pre-ranking, then embed only the best candidates (embedding is the slow part on a CPU).
        bm25 = self.store.bm25()
        q_terms = set(analyze([request.question])[0])
        weights = {t: bm25.idf(t) for t in q_terms}
        total = sum(weights.values()) or 1.0
        lexical = [sum(weights[t] for t in q_terms & set(toks)) / total for toks in analyze([c[1] for c in candidates])]
        pre = sorted(range(len(candidates)), key=lambda i: -(0.5 * lexical[i] + 0.5 * candidates[i][2]))[:16]
        q_vec = self.embedder.embed_one(request.question)
        sims = self.embedder.embed_cached([candidates[i][1] for i in pre], batch_size=16) @ q_vec
        scored = []
        for i, sim in zip(pre, sims):
            n, s, prior = candidates[i]
            scored.append((0.6 * float(sim) + 0.25 * lexical[i] + 0.15 * prior, n, s, float(sim)))
        scored.sort(key=lambda x: -x[0])
        best = scored[0]
        chosen = [best]
        for cand in scored[1:]:
            if len(chosen) >= self.settings.extractive_max_sentences:
                break
            # Keep sentences nearly as good as the best one, from the same or an adjacent passage.
            if cand[0] >= best[0] - 0.12 and cand[3] >= 0.35:
                chosen.append(cand)
        support = self.support(request.question, [s for _, _, s, _ in chosen] + [request.hits[best[1] - 1].chunk.text])
        # Reading order: by passage number, then as they appear.
        order = {(n, s): i for i, (n, s, _) in enumerate(candidates)}
        picked: list[tuple[int, str]] = []
        for _, n, s, _ in sorted(chosen, key=lambda c: order[(c[1], c[2])]):
            if s.rstrip().endswith("?"):
                # An FAQ's question matches the user's best but answers nothing: quote the sentence after it.
                nxt = order[(n, s)] + 1
                if nxt >= len(candidates) or candidates[nxt][0] != n:
                    continue
                n, s = candidates[nxt][0], candidates[nxt][1]
            if (n, s) not in picked:
                picked.append((n, s))
        return picked, best[3], support

    def answerable(self, request: GenerationRequest, picked, best_sim: float, support: float) -> bool:
        s = self.settings
        if not picked or support < s.extractive_min_support or best_sim + support < s.extractive_min_confidence:
            return False
        # A question naming a figure ("above EUR 25,000") is not answered by passages that never state it.
        quoted = " ".join(t for _, t in picked) + " " + " ".join(h.chunk.text for h in request.hits[:2])
        return all(num in quoted for num in _NUMBER.findall(request.question))

    def stream(self, request: GenerationRequest, usage: Usage | None = None) -> Iterator[str]:
        picked, best_sim, support = self.select(request)
        if not self.answerable(request, picked, best_sim, support):
            yield f"{REFUSAL_PREFIX} Please contact us: {self.settings.contact_fallback}."
            return
        for i, (n, sentence) in enumerate(picked):
            sentence = sentence if sentence[-1] in ".!?:" else sentence + "."
            yield ("" if i == 0 else " ") + f"{sentence} [{n}]"
