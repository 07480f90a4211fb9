"""Corpus sanitizing: normalization, PII scrubbing, garbage filters, exact and near-duplicate removal."""

from __future__ import annotations

import hashlib
import re
import unicodedata

from datasketch import MinHash, MinHashLSH

from assistant.guards.pii import PATTERNS as PII_PATTERNS, redact

# Typographic punctuation folded to ASCII so the tokenizer does not learn two spellings of every quote and dash.
_PUNCT = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": " - ",
                        "\u2026": "...", "\u00a0": " ", "\u2022": "-", "\u00b7": "-"})
_SPACES = re.compile(r"[ \t]+")
_BLANKS = re.compile(r"\n{3,}")
_REPEAT_PUNCT = re.compile(r"([!?.,;:\-=_*#])\1{3,}")

def normalize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).translate(_PUNCT)
    text = "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch)[0] != "C")
    text = _REPEAT_PUNCT.sub(r"\1\1\1", text)
    lines = [_SPACES.sub(" ", ln).rstrip() for ln in text.replace("\r\n", "\n").split("\n")]
    return _BLANKS.sub("\n\n", "\n".join(lines)).strip()


def scrub_pii(text: str, keep: set[str] = frozenset()) -> tuple[str, dict[str, int]]:
    """Replace personal data by typed placeholders (`<EMAIL>`, `<PHONE>`...) with the assistant's own detector.
    `keep`: strings that are not personal (the insurer's published phone numbers and addresses)."""
    r = redact(text, keep, names=False)
    out = r.text
    for ph in r.found:  # a training corpus needs the type, not which one
        out = out.replace(ph, "<" + ph.strip("<>").rsplit("_", 1)[0] + ">")
    return out, r.counts()


def is_garbage(text: str, min_chars: int, max_symbol_ratio: float) -> str | None:
    """Why a document is dropped, or None."""
    if len(text) < min_chars:
        return "too_short"
    symbols = sum(1 for ch in text if not (ch.isalnum() or ch.isspace()))
    if symbols / len(text) > max_symbol_ratio:
        return "symbols"
    words = text.split()
    if words and len(set(words)) / len(words) < 0.1:
        return "repetitive"
    return None


def exact_key(text: str) -> str:
    return hashlib.sha1(" ".join(text.lower().split()).encode()).hexdigest()


def _minhash(text: str, num_perm: int) -> MinHash:
    words = text.lower().split()
    shingles = {" ".join(words[i:i + 5]) for i in range(max(1, len(words) - 4))}
    m = MinHash(num_perm=num_perm)
    m.update_batch([s.encode() for s in shingles])
    return m


def dedup(texts: list[str], threshold: float, num_perm: int = 64) -> tuple[list[int], dict[str, int]]:
    """Indices of the documents to keep: the first of each exact or near-duplicate group (MinHash LSH on word
    5-gram shingles)."""
    seen: set[str] = set()
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    keep, dropped = [], {"exact_duplicate": 0, "near_duplicate": 0}
    for i, text in enumerate(texts):
        key = exact_key(text)
        if key in seen:
            dropped["exact_duplicate"] += 1
            continue
        seen.add(key)
        mh = _minhash(text, num_perm)
        if lsh.query(mh):
            dropped["near_duplicate"] += 1
            continue
        lsh.insert(str(i), mh)
        keep.append(i)
    return keep, dropped
