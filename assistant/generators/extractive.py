"""The offline default: the answer is the sentences of the retrieved chunks that answer the question, quoted and cited.

No model generates text, so nothing can be invented; the risk is answering a question the context does not
really address. With an answerability model (assistant/answerability.py, the default once trained) the pipeline has
already decided that the context answers, and this backend quotes the sentences the model scores highest. Without
one, two lexical checks decide: the quoted sentences must be similar to the question (embedding cosine), and with
their passages they must contain most of the question's key terms (IDF-weighted coverage), and a figure the question
names must be stated in what is quoted or its passages (the model weighs that as one of its signals instead).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator

from assistant.answerability import candidates as passage_sentences
from assistant.answerability import (chosen_sentences, clean_sentence, passage_parts, split_sentences, term_support,
                                     text_sentences)
from assistant.generators.base import GenerationRequest, Usage
from assistant.store import analyze
from assistant.vocabulary import expand

_NUMBER = re.compile(r"\d[\d,.]*\d|\d")
# a heading split out as a sentence: it names a list ("Section 3 - What is not covered") and states nothing itself
HEADING = re.compile(r"^(?i:section|part|chapter)\s+\d+\b[^.!?]{0,80}$|^\d+(\.\d+)*\s+[A-Z][^.!?:]{0,60}$")
# a sentence opening with a word that points back ("It is deducted from the amount we pay.") says nothing alone
ANAPHOR = re.compile(r"^(It|This|That|These|Those|They|Such|Its|Their)\b")
REFUSAL_PREFIX = "I'm sorry, I can't find the answer to that in our documents."


def headed(hits, picked: list[tuple[int, str]], max_sentences: int) -> list[tuple[int, str]]:
    """A heading quoted alone says nothing ("what isn't covered by home insurance?" -> "Section 3 - What is not
    covered."): what it heads follows it, in its passage's order, in the room the other quoted sentences leave
    under `max_sentences` (at least one), never in their place. `picked`: (passage number, sentence)."""
    room = max(1, max_sentences - sum(not HEADING.match(t) for _, t in picked))
    out: list[tuple[int, str]] = []
    for n, sentence in picked:
        if (n, sentence) in out:
            continue
        out.append((n, sentence))
        if HEADING.match(sentence):
            body = [e.sentence for e in passage_sentences([hits[n - 1]])]
            following = body[body.index(sentence) + 1:] if sentence in body else []
            for item in itertools.takewhile(lambda t: not HEADING.match(t), following[:room]):
                if (n, item) not in out and (n, item) not in picked:
                    out.append((n, item))
    return out


def with_antecedents(hits, picked: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """A quoted sentence that points back ("It", "These") is preceded by the sentence of its passage it points to
    ("The deductible is the part of each claim that you pay yourself." before "It is deducted from the amount we
    pay."), unless that one is a question or a heading or already quoted."""
    out: list[tuple[int, str]] = []
    for n, sentence in picked:
        if ANAPHOR.match(sentence):
            body = split_sentences(passage_parts(hits[n - 1].chunk)[1])
            i = body.index(sentence) if sentence in body else 0
            before = body[i - 1] if i > 0 else None
            if (before and not before.rstrip().endswith("?") and not HEADING.match(before)
                    and (n, before) not in out and (n, before) not in picked):
                out.append((n, before))
        if (n, sentence) not in out:
            out.append((n, sentence))
    return out


def whole(hits, picked: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """A sentence the candidates cut where a wrapped line starts with a figure ("We send your renewal notice at
    least" | "21 days before the renewal date, ...": the decision reads lines so, see answerability.unwrap) is quoted
    whole, once, in place of its pieces. Only a piece that ends without a full stop can have been cut."""
    out: list[tuple[int, str]] = []
    for n, sentence in picked:
        cut = sentence[-1] not in ".!?:"
        for w in text_sentences(passage_parts(hits[n - 1].chunk)[1], figures=True) if cut else []:
            w = clean_sentence(w)  # as the candidates were cleaned, so that the piece is its start
            if len(w) > len(sentence) and w.startswith(sentence):
                sentence = w
                break
        if not any(m == n and sentence in t for m, t in out):
            out.append((n, sentence))
    return out


def figures_stated(request: GenerationRequest, picked: list[tuple[int, str]]) -> bool:
    """A question naming a figure ("above EUR 25,000") is not answered by passages that never state it."""
    quoted = " ".join(t for _, t in picked) + " " + " ".join(h.chunk.text for h in request.hits[:2])
    return all(num in quoted for num in _NUMBER.findall(request.question))


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
        return term_support(question, texts, self.store.bm25())

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
        support = self.support(expand(request.question), [s for _, _, s, _ in chosen] + [request.hits[best[1] - 1].chunk.text])
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
        return figures_stated(request, picked)

    def quote(self, request: GenerationRequest) -> list[tuple[int, str]]:
        """With the answerability model's decision: the best sentence by the pre-ranking score (similarity to the
        question of the sentence with its heading, shared rare terms, the passage's similarity) plus the
        cross-encoder's probability, then those within `extractive_evidence_margin` of it. The passage holding the
        best sentence comes first ("how do i file a claim" opens with how to report it, not with a retrieved-first
        passage's "keep the damaged items"); within a passage, reading order ("It" still follows what it names)."""
        s = self.settings
        chosen = chosen_sentences(request.decision, s.extractive_choice_logit_weight, s.extractive_evidence_margin,
                                  s.extractive_max_sentences)
        rank = {}  # passage -> place of its best chosen sentence
        for i, e in enumerate(chosen):
            rank.setdefault(e.n, i)
        picked = headed(request.hits, [(e.n, e.sentence) for e in sorted(chosen, key=lambda e: (rank[e.n], e.order))],
                        s.extractive_max_sentences)
        picked = whole(request.hits, picked)
        return with_antecedents(request.hits, picked) if s.extractive_antecedents else picked

    def stream(self, request: GenerationRequest, usage: Usage | None = None) -> Iterator[str]:
        if request.decision is not None:  # the pipeline's answerability model already decided it is answerable
            picked = self.quote(request)
            ok = bool(picked)
        else:
            picked, best_sim, support = self.select(request)
            ok = self.answerable(request, picked, best_sim, support)
        if not ok:
            yield f"{REFUSAL_PREFIX} Please contact us: {self.settings.contact_fallback}."
            return
        for i, (n, sentence) in enumerate(picked):
            sentence = sentence if sentence[-1] in ".!?:" else sentence + "."
            yield ("" if i == 0 else " ") + f"{sentence} [{n}]"
