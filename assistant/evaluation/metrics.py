"""Per-answer scores: token F1, ROUGE-L, semantic similarity, faithfulness, citation and retrieval checks.

Faithfulness is scored independently of the output guard (assistant/guards/output.py, which uses bag-of-stems
overlap over all cited passages, number matching and embedding similarity): here an answer sentence counts as
supported when the longest common word subsequence with ONE sentence of a passage it cites covers at least
`FAITHFUL_MIN` of the sentence's words — an order-aware, per-sentence test the guard never applies.
"""

from __future__ import annotations

import re
from collections import Counter

_WORD = re.compile(r"\w+")
_CITE = re.compile(r"\s*\[\d{1,3}\]")
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
FAITHFUL_MIN = 0.6


def words(text: str) -> list[str]:
    return _WORD.findall(_CITE.sub(" ", text).lower())


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD-style token F1 (lower-cased words, citation marks removed)."""
    pred, ref = words(prediction), words(reference)
    common = sum((Counter(pred) & Counter(ref)).values())
    if not pred or not ref or not common:
        return 0.0
    p, r = common / len(pred), common / len(ref)
    return 2 * p * r / (p + r)


def lcs(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence (dynamic programming, one row)."""
    if not a or not b:
        return 0
    row = [0] * (len(b) + 1)
    for x in a:
        prev = 0
        for j, y in enumerate(b, 1):
            cur = row[j]
            row[j] = prev + 1 if x == y else max(row[j], row[j - 1])
            prev = cur
    return row[-1]


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F1 over words (Lin 2004, β = 1)."""
    pred, ref = words(prediction), words(reference)
    n = lcs(pred, ref)
    if not n:
        return 0.0
    p, r = n / len(pred), n / len(ref)
    return 2 * p * r / (p + r)


def sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE.split(_CITE.sub("", text)) if len(words(s)) >= 3]


def unsupported_figures(answer: str, cited_texts: list[str]) -> int:
    """Figures (digit runs: amounts, %, durations, dates, phone numbers) of the answer that no cited passage states;
    citation markers [n] are not figures."""
    from assistant.generators.grounding import allowed_figures

    allowed = allowed_figures(cited_texts)
    said = allowed_figures([re.sub(r"\[\d+\]", " ", answer)])
    return len({f for f in said if "," not in f} - allowed)


def faithfulness(answer: str, cited_texts: list[str]) -> float | None:
    """Share of the answer's sentences supported by one sentence of a cited passage; None without citations."""
    if not cited_texts:
        return None
    said = sentences(answer)
    if not said:
        return None
    from assistant.answerability import unwrap  # PDF lines wrap mid-sentence

    sources = [words(s) for t in cited_texts for s in _SENTENCE.split(unwrap(t)) if s.strip()]
    supported = 0
    for s in said:
        w = words(s)
        if any(lcs(w, src) / len(w) >= FAITHFUL_MIN for src in sources):
            supported += 1
    return supported / len(said)


def accepted_sources(case: dict) -> list[tuple[str, int | None]]:
    out = [(case["source"], case.get("page"))] if case.get("source") else []
    for alt in case.get("alt_sources") or []:
        out.append(tuple(alt) if isinstance(alt, (list, tuple)) else (alt, None))
    return out


def matches(source: str, page, accepted) -> bool:
    """`source` is an accepted document (an e-mail's attachment counts as its message: "mail.eml › guide.pdf")."""
    return any((source == s or source.startswith(f"{s} › ")) and (p is None or page == p) for s, p in accepted)


def cites_source(answer, case: dict) -> bool:
    """A citation of the reference document (and page, where it has one; the sheet and row where the case names
    one) or of an accepted alternative."""
    accepted = accepted_sources(case)
    locator = case.get("locator")
    return any(matches(c.source, c.page, accepted) and (not locator or getattr(c, "locator", "") == locator)
               for c in answer.citations)


def retrieval_rank(hits, case: dict) -> int | None:
    """1-based rank of the first retrieved chunk from an accepted source; None if none was retrieved."""
    accepted = accepted_sources(case)
    for i, h in enumerate(hits, 1):
        if matches(h.chunk.source, h.chunk.page, accepted):
            return i
    return None


def reliability(probs, labels, bins: int = 10) -> list[dict]:
    """Per probability bin: the mean predicted probability, the share that was actually positive, and the count
    (a calibrated score's points lie on the diagonal)."""
    import numpy as np

    probs, labels = np.asarray(probs, dtype=float), np.asarray(labels, dtype=float)
    out = []
    for i in range(bins):
        m = (probs >= i / bins) & ((probs < (i + 1) / bins) if i < bins - 1 else (probs <= 1.0))
        if m.any():
            out.append({"bin": [round(i / bins, 2), round((i + 1) / bins, 2)], "predicted": round(float(probs[m].mean()), 4),
                        "observed": round(float(labels[m].mean()), 4), "n": int(m.sum())})
    return out
