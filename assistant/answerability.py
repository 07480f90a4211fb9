"""Does the retrieved context answer the question, and which of its sentences do? A learned, calibrated decision.

A cross-encoder (`python -m training answerability`) reads the question with one candidate sentence of a retrieved
passage (prefixed by its document and heading) and scores whether that sentence answers it. Its best score and a few
retrieval signals (the best sentence's and passage's similarity, how many of the question's rare terms the context
holds) are combined by a logistic regression fitted on the evaluation set's dev split, which is also where the
threshold is chosen: one calibrated probability that the context answers. The extractive backend quotes the
sentences the cross-encoder scores highest. This replaces hand-set cosine and word-overlap thresholds, which
rewarded sentences that share the question's words rather than the ones that answer it.

Only the sentences the embedding model pre-ranks highest are scored (`answerability_candidates`): one forward pass
each, the slow part on a CPU.
"""

from __future__ import annotations

import json
import math
import re
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np

from assistant.precision import autocast
from assistant.schema import Hit


class AnswerabilityError(ValueError):
    setting = "ASSISTANT_ANSWERABILITY_MODEL"  # what a person fixes


_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])|\n+")
_MARK, _LABELLED = r"[-*•#|]", r"[A-Z][\w ]{0,40}:\s|Section \d"  # a list item or table row; "Storm: ", "Section 3"
_BLOCK_START = re.compile(rf"^\s*({_MARK}|\d+(\.\d+)*[.)]?\s|{_LABELLED})")
# Read for the output rail: a line starting with a figure that is no item number ("1. ", "2) ", "4.2 ", "3 Exclusions")
# goes on its sentence ("24 hours." after "... snow of at least 30 cm in": the PDF broke the line before the figure).
# Not for what the answerability model learns from: joining them there moved the briefly trained model of the
# held-out-document test (docs/answerability.md).
_ITEM_START = re.compile(rf"^\s*({_MARK}|\d+(\.\d+)+[.)]?\s|\d+[.)]\s|\d+\s+(?=[A-Z])|{_LABELLED})")
_LABEL = re.compile(r"^(Q|A):\s*")


def unwrap(text: str, figures: bool = False) -> str:
    """Re-join lines that a PDF or a text file wrapped mid-sentence; keep list items, headings, table rows.
    `figures`: a line starting with a figure that is no item number goes on the line before (_ITEM_START)."""
    block = _ITEM_START if figures else _BLOCK_START
    out: list[str] = []
    for line in text.split("\n"):
        if out and out[-1] and line.strip() and not block.match(line) and out[-1][-1] not in ".!?:|":
            out[-1] = f"{out[-1]} {line.strip()}"
        else:
            out.append(line.strip())
    return "\n".join(out)


def text_sentences(text: str, figures: bool = False) -> list[str]:
    """Every sentence, list item and table row of `text`, its wrapped lines joined (`figures`: see unwrap)."""
    return [s for s in _SENTENCE.split(unwrap(text, figures)) if s.strip()]


def clean_sentence(s: str) -> str:
    """A sentence as it is quoted: no Markdown bold, list bullet, table bar or FAQ label."""
    return _LABEL.sub("", s.replace("**", "").strip(" -•*|\t"))


def split_sentences(text: str) -> list[str]:
    """The sentences that can state an answer (not headings, labels or fragments)."""
    out = []
    for s in text_sentences(text):
        s = clean_sentence(s)
        if len(s) >= 25 and len(s.split()) >= 4 and not s.startswith("#"):
            out.append(s)
    return out


def passage_parts(chunk) -> tuple[str, str]:
    """(header, body): a chunk's first line is "Title › Heading" when the chunker put one there."""
    lines = chunk.text.split("\n")
    if len(lines) > 1 and chunk.title and lines[0].startswith(chunk.title):
        return lines[0], "\n".join(lines[1:])
    return chunk.title or chunk.source, chunk.text


def question_tail(tokenizer, question: str, max_tokens: int | None) -> str:
    """The question's last `max_tokens` tokens, cut at a word boundary. The cross-encoder truncates a pair from its
    longer side's end, and a customer's story states its question last: cut from the front instead, and what it
    reads is the question and the details nearest it."""
    if not max_tokens:
        return question
    offsets = tokenizer(question, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    if len(offsets) <= max_tokens:
        return question
    start = offsets[-max_tokens][0]
    while start < len(question) and start > 0 and not question[start - 1].isspace():  # on to the next whole word
        start += 1
    return question[start:]


def evidence_text(header: str, sentence: str) -> str:
    """What the model reads beside the question: the sentence with where it stands ("which product?")."""
    return f"{header}: {sentence}"


@dataclass
class Evidence:
    n: int  # the passage's number in the context ([n])
    sentence: str
    order: int  # position among all candidate sentences (reading order)
    prior: float  # the pre-ranking score
    similarity: float = 0.0  # embedding cosine to the question
    lexical: float = 0.0  # IDF-weighted share of the question's terms in the sentence
    logit: float | None = None  # the cross-encoder's score
    probability: float | None = None  # sigmoid(logit): how well this sentence answers, for choosing quotes
    penalty: float = 0.0  # taken from its choice_score (its document is about another product than the question)
    bonus: float = 0.0  # added to its choice_score (it answers a known question paraphrasing the asked one)


def candidates(hits: list[Hit]) -> list[Evidence]:
    """Every quotable sentence of the context, in reading order. A question sentence (an FAQ's "Q:") answers
    nothing itself and is left out."""
    out = []
    for n, hit in enumerate(hits, start=1):
        header, body = passage_parts(hit.chunk)
        for s in split_sentences(body):
            if not s.rstrip().endswith("?"):
                out.append(Evidence(n, s, len(out), hit.similarity))
    return out


# The product lines a question or a document title names: "the excess on my car insurance" is not the health
# policy's annual excess, however alike the sentences read to the embedding model.
PRODUCTS = {
    "auto": re.compile(r"\b(car|cars|auto|motor|vehicle|vehicles|driver|drivers|driving|windscreen|roadside)\b", re.IGNORECASE),
    "home": re.compile(r"\b(home|house|buildings|contents|household)\b", re.IGNORECASE),
    "travel": re.compile(r"\b(travel|trip|trips|holiday|holidays)\b", re.IGNORECASE),
    "health": re.compile(r"\b(health|medical|hospital|doctor|dental)\b", re.IGNORECASE),
    "life": re.compile(r"\blife (insurance|cover|policy)\b", re.IGNORECASE),
    "renters": re.compile(r"\b(renters|tenant|tenants)\b", re.IGNORECASE),
}


def products(text: str) -> set[str]:
    return {name for name, pattern in PRODUCTS.items() if pattern.search(text)}


def penalize_other_products(question: str, hits: list[Hit], evidence: list[Evidence], penalty: float) -> None:
    """Sets `penalty` on each sentence whose document's title names only product lines the question does not: what
    the extractive backend quotes first, never what decides (the decision's features are untouched)."""
    asked = products(question)
    for e in evidence if asked and penalty else ():
        named = products(hits[e.n - 1].chunk.title or "")
        e.penalty = penalty if named and not named & asked else 0.0


def favour_known_sentence(match, hits: list[Hit], evidence: list[Evidence], bonus: float, min_similarity: float) -> None:
    """Gives the sentence that answers `match` (the nearest known question the passages answer) `bonus` when it
    paraphrases the asked question: that sentence was quoted as the answer to this very question in
    other words, where the embedding and the cross-encoder favour the sentence that shares the question's words
    ("do i have to pay for the new battery" quoted the FAQ's "Yes, by direct debit…"). What is quoted, never what
    decides."""
    if not bonus or match is None or match.similarity < min_similarity:
        return
    for e in evidence:
        if e.sentence == match.sentence and hits[e.n - 1].chunk.chunk_id == match.chunk_id:
            e.bonus = bonus


# Amounts a customer names: "385,000", "EUR 700,000", "480k", "1.2m"; at least 1,000, not a year.
_AMOUNT = re.compile(r"(?<![\d.,:/+-])(\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?)\s*(?:(k|m|thousand|million)\b)?"
                     r"(?![\w,/-]*\d)", re.IGNORECASE)
_PHONE = re.compile(r"\+?\d+(?:[ -]\d+){2,}")  # "0800 555 0142", "+353 1 234 5678": no amount in them
_SCALE = {"k": 1e3, "thousand": 1e3, "m": 1e6, "million": 1e6}
_BAND = re.compile(r"(\d[\d,]*)\s*(?:-|–|to)\s*(?:EUR\s*)?(\d[\d,]*)"
                   r"|\b(up to|under|below|less than|over|above|more than)\s+(?:EUR\s*)?(\d[\d,]*)"
                   r"|(\d[\d,]*)(\s+(?:and|or)\s+(?:above|over|more))?", re.IGNORECASE)


def _year(number: str, value: float) -> bool:
    return "," not in number and 1900 <= value <= 2100


def amounts(text: str) -> list[float]:
    """The amounts of money `text` names (at least 1,000; "2026" alone is a year, a phone number is none)."""
    out = []
    for m in _AMOUNT.finditer(_PHONE.sub(" ", text)):
        number, scale = m.group(1), (m.group(2) or "").lower()
        value = float(number.replace(",", "")) * _SCALE.get(scale, 1)
        if value >= 1000 and not (not scale and _year(number, value)):
            out.append(value)
    return out


def row_key(sentence: str) -> tuple[float, float] | None:
    """The amounts a table row's first cell covers ("Rebuild value band: EUR 250,001 - 400,000" -> 250,001 to
    400,000; "Up to EUR 250,000"; "EUR 750,001 and above"; "Contents limit: EUR 150,000" -> exactly that), or None
    (not a row keyed by an amount)."""
    if " · " not in sentence and "|" not in sentence:
        return None
    first = next((c for c in re.split(r"\s+·\s+|\s*\|\s*", sentence) if c.strip()), "")
    m = _BAND.search(first)
    if not m:
        return None
    num = lambda g: float(m.group(g).replace(",", ""))  # noqa: E731
    if m.group(1):
        low, high = num(1), num(2)
    elif m.group(3):
        below = m.group(3).lower() in ("up to", "under", "below", "less than")
        low, high = (0.0, num(4)) if below else (num(4), float("inf"))
    elif _year(m.group(5), num(5)):
        return None
    else:
        low, high = num(5), (float("inf") if m.group(6) else num(5))
    return (low, high) if max(low, min(high, 1e18)) >= 1000 else None


def penalize_other_rows(question: str, evidence: list[Evidence], penalty: float) -> None:
    """A table looked up by an amount ("rebuild value is around 420k") answers from the row whose first cell holds
    it: where some candidate row's key holds an amount the question names, `penalty` goes on the rows whose key holds
    none (MiniLM reads "EUR 250,001 - 400,000" and "EUR 400,001 - 550,000" alike). What is quoted, never what
    decides."""
    asked = amounts(question) if penalty else []
    keys = {id(e): row_key(e.sentence) for e in evidence} if asked else {}
    holds = {i: k is not None and any(k[0] <= a <= k[1] for a in asked) for i, k in keys.items()}
    if any(holds.values()):
        for e in evidence:
            if keys[id(e)] is not None and not holds[id(e)]:
                e.penalty += penalty


def prerank(question: str, hits: list[Hit], embedder, bm25, limit: int, internal_bonus: float = 0.0) -> list[Evidence]:
    """The `limit` candidate sentences most likely to answer: embedding similarity to the question (sentences are
    cached vectors), IDF-weighted shared terms and the passage's own similarity; `internal_bonus` added for an
    internal passage's sentence (staff: their procedures answer before the customer-facing text that shares words)."""
    from assistant.store import analyze
    from assistant.vocabulary import expand

    evidence = candidates(hits)
    if not evidence:
        return []
    q = expand(question)
    q_terms = set(analyze([q])[0])
    weights = {t: bm25.idf(t) for t in q_terms}
    total = sum(weights.values()) or 1.0
    lexical = [sum(weights[t] for t in q_terms & set(toks)) / total for toks in analyze([e.sentence for e in evidence])]
    # the sentence with its document and heading: "the deductible is EUR 100" differs between travel and health
    headers = {n: passage_parts(h.chunk)[0] for n, h in enumerate(hits, start=1)}
    sims = embedder.embed_cached([evidence_text(headers[e.n], e.sentence) for e in evidence], batch_size=32) @ embedder.embed_one(q)
    for e, lex, sim in zip(evidence, lexical, sims):
        e.similarity, e.lexical = float(sim), lex
        e.prior = 0.6 * float(sim) + 0.25 * lex + 0.15 * e.prior
        if internal_bonus and hits[e.n - 1].chunk.audience == "internal":
            e.prior += internal_bonus
    return sorted(evidence, key=lambda e: -e.prior)[:limit]


def term_support(question: str, texts: list[str], bm25) -> float:
    """IDF-weighted share of the question's terms found in `texts` (a shared 5-letter prefix counts: the stemmer
    leaves "burgled" and "burglary" apart)."""
    from assistant.store import analyze

    q_terms = set(analyze([question])[0]) - _QUESTION_WORDS
    if not q_terms:
        return 0.0
    found = {t for toks in analyze(texts) for t in toks}
    prefixes = {t[:5] for t in found if len(t) >= 5}
    weights = {t: bm25.idf(t) for t in q_terms}
    total = sum(weights.values())
    hit = lambda t: t in found or (len(t) >= 5 and t[:5] in prefixes)  # noqa: E731
    return sum(w for t, w in weights.items() if hit(t)) / total if total else 0.0


# Words that shape a question but carry no subject (stemmed): not required to appear in the answer.
_QUESTION_WORDS = set("how mani much long soon often can could do doe keep get need must should would will tell "
                      "know want pleas ok okay there ani what which who when where whi".split())
FEATURES = ("best_logit", "second_logit", "best_similarity", "best_lexical", "passage_similarity", "support",
            "missing_figures", "type_mismatch", "internal_gap")
_NUMBER = re.compile(r"\d[\d,.]*\d|\d")
# a period a sentence states ("within 5 business days"); training/answerability.py templates questions from it too
DURATION = re.compile(r"\b\d+\s*((business|working|calendar)\s+)?(day|days|hour|hours|week|weeks|month|months|year|years)\b",
                      re.IGNORECASE)
_OFFICE = r"\b(chief executive|ceo|chair(man|woman|person)?|president|founder|managing director|board of directors)\b"
# What kind of fact a question asks for, and how a sentence that states one looks.
ANSWER_TYPES = (
    (re.compile(r"\b(how much|cost|costs|price|premium for|pay out|payout|limit|maximum|minimum|fee)\b", re.IGNORECASE),
     re.compile(r"(EUR|€|\$|£)\s?\d|\d\s?%|\bno (fee|charge|limit)\b|\bfree\b|\bunlimited\b", re.IGNORECASE)),
    (re.compile(r"\b(how long|how soon|how many (days|weeks|months|years|hours)|deadline|time limit|how quickly)\b", re.IGNORECASE),
     re.compile(DURATION.pattern + r"|\bimmediately\b|\bas soon as\b", re.IGNORECASE)),
    (re.compile(r"\b(phone number|number (to|do i|should i) call|what number|hotline|e-?mail address)\b", re.IGNORECASE),
     re.compile(r"\b0800\b|\+\d{2}|@|\b\d{3,4} \d{3,4}\b")),
    # who holds an office of the company ("who is your chief executive?"): only a passage that names the office can
    # say, and the contact page, close in words, names none
    (re.compile(rf"\bwho('?s|\s+(is|are|was|runs|heads|leads))\b[^?]{{0,40}}{_OFFICE}", re.IGNORECASE),
     re.compile(_OFFICE, re.IGNORECASE)),
)


def features(question: str, hits: list[Hit], evidence: list[Evidence], bm25, gap: float = 0.0,
             internal: list[Evidence] = (), known: dict[str, float] | None = None) -> dict[str, float]:
    """What the calibrated decision reads; `evidence` scored by the cross-encoder; `gap` from internal_gap();
    `internal`: the best internal passage's sentences, scored (a customer's question only); `known`: the
    known-question signals Assistant.decide measured (assistant/known_questions.py)."""
    logits = sorted((e.logit for e in evidence if e.logit is not None), reverse=True) or [-10.0]
    internal_best = max((e.logit for e in internal if e.logit is not None), default=None)
    return {"best_logit": logits[0], "second_logit": logits[1] if len(logits) > 1 else logits[0],
            "best_similarity": max((e.similarity for e in evidence), default=0.0),
            "best_lexical": max((e.lexical for e in evidence), default=0.0),
            "passage_similarity": max((h.similarity for h in hits), default=0.0),
            "support": term_support(question, [h.chunk.text for h in hits[:3]], bm25),
            # a figure the question names ("above EUR 25,000") that no passage states; in a story, often a detail
            "missing_figures": missing_figures(question, hits[:3]),
            "type_mismatch": type_mismatch(question, [e.sentence for e in evidence[:3]]),
            "internal_gap": gap,
            # Known questions, for rules beside the regression (Assistant.decide): the cosine to the nearest one the
            # passages answer, to the nearest written question the documents do not answer, and for a customer how
            # much closer the nearest known question of an internal document comes than any the passages answer
            "known_similarity": 0.0, "known_unanswerable_similarity": 0.0, "known_internal_gap": 0.0,
            **(known or {}),
            # an internal sentence answers it better than any public one: a staff procedure, not for a customer
            # (a rule beside the regression, not in it: Assistant.decide refuses above the calibrated internal margin)
            "internal_logit_gap": max(0.0, internal_best - logits[0]) if internal_best is not None else 0.0}


# Cross-encoder logits closer than this are one score: bf16 moves them by ~0.01, and a sentence an internal and a
# public document both state scores the same up to such noise (it is not a staff procedure for being in both)
LOGIT_TIE = 0.05


def known_shortcut(feats: dict[str, float]) -> bool:
    """Whether a question the probability refuses may be answered for its nearness to a known question
    (Assistant.decide; the similarity it needs is chosen at calibration): not when it asks for an amount, a period or
    a number the best sentences do not state, not when an internal sentence outscores the public ones (a customer
    asking a staff procedure; a tie is no outscoring), and not when a written question the documents do not answer
    comes closer."""
    return (not feats["type_mismatch"] and feats["internal_logit_gap"] <= LOGIT_TIE
            and feats["known_unanswerable_similarity"] < feats["known_similarity"])


def internal_gap(store, embedder, question: str, hits: list[Hit], role: str) -> tuple[float, Hit | None]:
    """For a customer: (how much better the best internal passage matches the question than the best public one,
    that passage). A question about staff procedures ("who signs off a claim above EUR 25,000?") finds public
    passages that share its words but an internal one that answers it; the customer is refused, and nothing
    internal is shown (the internal passage is only scored, never quoted)."""
    if role != "customer":
        return 0.0, None
    from assistant.vocabulary import expand

    best_internal = store.dense_search(embedder.embed_one(expand(question)), 1, ("internal",))
    if not best_internal:
        return 0.0, None
    chunk_id, similarity = best_internal[0][0], best_internal[0][1]
    chunk = store.fetch([chunk_id], ("internal",)).get(chunk_id)
    hit = Hit(chunk[0], similarity, similarity) if chunk else None
    return max(0.0, similarity - max((h.similarity for h in hits), default=0.0)), hit


def type_mismatch(question: str, sentences: list[str]) -> float:
    """1 when the question asks for an amount, a period or a phone number and none of the best sentences states one
    ("how much does the add-on cost?" against a sentence that names the add-on but no price)."""
    for asks, states in ANSWER_TYPES:
        if asks.search(question) and not any(states.search(s) for s in sentences):
            return 1.0
    return 0.0


def missing_figures(question: str, hits: list[Hit]) -> float:
    numbers = _NUMBER.findall(question)
    context = " ".join(h.chunk.text for h in hits)
    return sum(n not in context for n in numbers) / len(numbers) if numbers else 0.0


class Ruling(NamedTuple):
    answered: bool
    by_known: bool  # answered by the known-question path, not by the probability
    staff_only: bool  # refused: only an internal document answers it (a customer asking a staff procedure)
    vetoed: bool = False  # refused: a written question the documents do not answer comes closer (vetoed)


@dataclass
class Decision:
    probability: float  # calibrated P(the context answers the question)
    answerable: bool
    evidence: list[Evidence]  # the scored sentences, best first
    features: dict[str, float]  # what the probability was computed from (calibration refits on these)
    why: str = "the passages do not answer the question"  # said when it is refused
    known: object = None  # the nearest known question the passages answer (a KnownMatch): shown to staff
    by_known: bool = False  # answered because the question comes close to a known question (not by probability)


class AnswerabilityModel:
    """A version folder: model/ (Hugging Face sequence classification, one logit) and calibration.json
    ({"weights": {feature: w}, "bias", "threshold"}: probability = sigmoid(bias + sum w * feature), answerable when
    >= threshold). Uncalibrated: the best logit alone, threshold 0.5."""

    def __init__(self, folder: str | Path, bf16: str = "auto"):
        from sentence_transformers.cross_encoder import CrossEncoder

        folder = Path(folder)
        self.folder = folder
        self.version = folder.name
        self._model = CrossEncoder(str(folder / "model"), device="cpu")
        config = folder / "config.json"  # the training recipe: how it read questions is how it must read them here
        self.question_tokens = (json.loads(config.read_text()).get("question_tokens") if config.exists() else None)
        cal = folder / "calibration.json"
        self.calibration = (json.loads(cal.read_text()) if cal.exists()
                            else {"weights": {"best_logit": 1.0}, "bias": 0.0, "threshold": 0.5})
        self._lock = threading.Lock()  # one scoring at a time: two torch calls only fight over the cores
        # the known-question path's encoder (training/question_matcher.py); a version without one matches with the
        # store's embedder
        self.matcher_path = str(folder / "matcher") if (folder / "matcher").exists() else None
        self.bf16 = bf16  # the `cpu_bf16` setting: calibration scores as serving does

    def logits(self, question: str, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros(0, dtype=np.float32)
        with self._lock, autocast(self.bf16):
            import torch

            question = question_tail(self._model.tokenizer, question, self.question_tokens)
            return np.asarray(self._model.predict([(question, t) for t in texts], batch_size=32,
                                                  show_progress_bar=False, activation_fn=torch.nn.Identity(),
                                                  convert_to_numpy=True), dtype=np.float32).reshape(-1)

    def probability(self, feats: dict[str, float]) -> float:
        z = self.calibration["bias"] + sum(w * feats.get(k, 0.0) for k, w in self.calibration["weights"].items())
        return _sigmoid(z)

    def threshold_for(self, role: str) -> float:
        """Staff see internal passages too, so the same probability means another thing for them: a threshold of
        their own where calibration chose one (a version calibrated before has one for everybody)."""
        return float((self.calibration.get("thresholds") or {}).get(role, self.calibration["threshold"]))

    @property
    def internal_margin(self) -> float:
        """How far an internal sentence may outscore the public ones before a customer is refused: chosen on dev by
        calibration for this model's logits (a version calibrated before has none: 0)."""
        return float(self.calibration.get("internal_margin", 0.0))

    def known_threshold_for(self, role: str) -> float:
        """How close to a known question the passages answer a question must come to be answered whatever its
        probability: chosen on dev by calibration, per role (a version calibrated before has none: off)."""
        t = (self.calibration.get("known_thresholds") or {}).get(role)
        return math.inf if t is None else float(t)

    @property
    def known_internal_margin(self) -> float:
        """How much closer a known question of an internal document may come than any the passages answer before a
        customer is refused: chosen on dev by calibration (a version calibrated before has none: the rule is off)."""
        return float(self.calibration.get("known_internal_margin", math.inf))

    def unanswerable_margin_for(self, role: str) -> float:
        """How much closer than the nearest known question a written not-answerable one must come to veto an answer:
        chosen per role on dev by calibration (a version calibrated before has none: no veto)."""
        m = (self.calibration.get("unanswerable_margins") or {}).get(role)
        return math.inf if m is None else float(m)

    def vetoed(self, feats: dict[str, float], role: str) -> bool:
        """A question much nearer to a written question the documents were checked not to answer ("how much does
        the cruise extension cost") than to any known question the passages answer is refused, whatever the
        probability: the cross-encoder reads the cruise sentence as an answer, the written questions know the price
        is not stated. Only where the best sentence's document had questions written from it (`known_document`): a
        document ingested since has no known questions to come close to."""
        return bool(feats.get("known_document", 0.0)) and (
            feats["known_unanswerable_similarity"] - feats["known_similarity"] >= self.unanswerable_margin_for(role))

    def rule(self, feats: dict[str, float], role: str, known_threshold: float | None = None,
             internal_margin: float | None = None) -> Ruling:
        """The decision as served (Assistant.decide), and as calibration chooses its thresholds with it: answered by
        the probability, or by the known-question path when the probability falls short (`known_threshold`: the
        cosine it needs, the calibrated one unless given); then, for a customer, refused as a staff procedure when
        an internal sentence outscores the public ones by more than the margin (the setting's, else the model's),
        or when an answered question comes closer to a known question of an internal document than to any the
        passages answer. The probability's answer is vetoed by a written not-answerable question (vetoed)."""
        likely = self.probability(feats) >= self.threshold_for(role)
        vetoed = likely and self.vetoed(feats, role)
        by_probability = likely and not vetoed
        known_threshold = self.known_threshold_for(role) if known_threshold is None else known_threshold
        by_known = not by_probability and known_shortcut(feats) and feats["known_similarity"] >= known_threshold
        answered = by_probability or by_known
        margin = self.internal_margin if internal_margin is None else internal_margin
        staff_only = role == "customer" and (feats["internal_logit_gap"] > margin or answered
                                             and feats["known_internal_gap"] > self.known_internal_margin)
        return Ruling(answered and not staff_only, by_known and not staff_only, staff_only, vetoed and not answered)

    def score(self, question: str, hits: list[Hit], evidence: list[Evidence]) -> None:
        """Fills each pre-ranked sentence's logit and probability."""
        headers = {n: passage_parts(h.chunk)[0] for n, h in enumerate(hits, start=1)}
        for e, z in zip(evidence, self.logits(question, [evidence_text(headers[e.n], e.sentence) for e in evidence])):
            e.logit, e.probability = float(z), _sigmoid(float(z))

    def decide(self, question: str, hits: list[Hit], evidence: list[Evidence], bm25, gap: float = 0.0,
               internal: tuple[Hit, list[Evidence]] | None = None, role: str = "customer",
               known: dict[str, float] | None = None) -> Decision:
        """Scores the pre-ranked sentences (and the best internal passage's, for a customer); the calibrated
        combination of the signals decides."""
        self.score(question, hits, evidence)
        if internal:
            self.score(question, [internal[0]], internal[1])
        feats = features(question, hits, evidence, bm25, gap, internal[1] if internal else (), known)
        p = self.probability(feats)
        return Decision(p, p >= self.threshold_for(role), sorted(evidence, key=lambda e: -(e.logit or -1e9)), feats)


def choice_score(e: Evidence, logit_weight: float) -> float:
    """How strongly a scored sentence is chosen as the answer: its pre-ranking score plus the cross-encoder's
    probability (`extractive_choice_logit_weight`, tuned on dev): what the extractive backend quotes first."""
    return e.prior + logit_weight * (e.probability or 0.0) - e.penalty + e.bonus


def chosen_sentences(decision: Decision, logit_weight: float, margin: float, k: int) -> list[Evidence]:
    """What the extractive backend quotes, best first: the sentence of the highest choice_score and those within
    `margin` of it, at most `k`. A sentence two passages both state (the claims line on the claims page and in the
    FAQ) is quoted once, from the passage where it scores best."""
    scored = sorted(decision.evidence, key=lambda e: -choice_score(e, logit_weight))
    if not scored:
        return []
    top = choice_score(scored[0], logit_weight)
    chosen, seen = [], set()
    for e in scored:
        said = " ".join(e.sentence.casefold().split())
        if len(chosen) < k and said not in seen and choice_score(e, logit_weight) >= top - margin:
            chosen.append(e)
            seen.add(said)
    return chosen


def _best_evidence(decision: Decision, logit_weight: float) -> dict[int, Evidence]:
    """Passage number -> its scored sentence of the highest choice_score."""
    best: dict[int, Evidence] = {}
    for e in decision.evidence:
        if e.logit is not None and (e.n not in best or choice_score(e, logit_weight) > choice_score(best[e.n], logit_weight)):
            best[e.n] = e
    return best


def evidence_first(hits: list[Hit], decision: Decision, logit_weight: float) -> list[Hit]:
    """The passages reordered by their best scored sentence's choice_score (unscored ones after, in retrieval
    order), the decision's evidence renumbered to match."""
    best = {n: choice_score(e, logit_weight) for n, e in _best_evidence(decision, logit_weight).items()}
    order = sorted(range(1, len(hits) + 1), key=lambda n: (n not in best, -best.get(n, 0.0), n))
    new = {old: i for i, old in enumerate(order, start=1)}
    for e in decision.evidence:
        e.n = new[e.n]
    return [hits[n - 1] for n in order]


def best_sentences(decision: Decision, logit_weight: float) -> dict[int, str]:
    """Passage number -> its scored sentence of the highest choice_score (what a cut passage keeps)."""
    return {n: e.sentence for n, e in _best_evidence(decision, logit_weight).items()}


def best_sentence(decision: Decision, logit_weight: float) -> str | None:
    """The scored sentence of the highest choice_score: the one the extractive backend quotes first."""
    best = _best_evidence(decision, logit_weight).values()
    return max(best, key=lambda e: choice_score(e, logit_weight)).sentence if best else None


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))


def resolve(name: str | None, folder: Path) -> Path | None:
    """The version folder to serve: `name` (a folder or a version), else the registry's promoted version, else
    None (no model: the extractive backend's lexical rules decide). "off" turns the model off."""
    if name == "off":
        return None
    if name:
        path = Path(name) if Path(name).exists() else Path(folder) / name
        if not (path / "model" / "config.json").exists():
            raise AnswerabilityError(f"answerability model {name!r} not found (neither a version folder nor a "
                                     f"version in {folder}): see `python -m training answerability-models list`")
        return path
    promoted = Path(folder) / "PROMOTED"
    if promoted.exists() and (Path(folder) / promoted.read_text().strip() / "model" / "config.json").exists():
        return Path(folder) / promoted.read_text().strip()
    return None


@lru_cache(maxsize=2)
def _load(path: str, bf16: str) -> AnswerabilityModel:
    return AnswerabilityModel(path, bf16)


def get_answerability(settings) -> AnswerabilityModel | None:
    path = resolve(settings.answerability_model, Path(settings.answerability_dir))
    return _load(str(path.resolve()), settings.cpu_bf16) if path else None
