"""Grounded decoding for the private model: while it decodes, it cannot write a figure — amount, percentage, duration,
date, phone or policy number — that the retrieved passages do not contain, nor cite a passage that does not exist.

A transformers LogitsProcessor. Every figure is a run of digits (with `,`, `.` or `:` between digits: "2,000",
"13:00"); the runs of the passages are the allowed set. At each step the run being written is a prefix: a digit or a
separator is allowed only if it extends the prefix towards an allowed run, anything else only once the run is
complete. So "20" cannot be cut out of a passage's "20:00" or "2,000", nor "13, 00" pieced together. After `[`, only
the numbers of the passages shown ([1]..[k]) may follow, and of those only the passages that hold every figure of the
sentence being cited (when one does): the output rail checks a sentence's figures against the passages it cites, and
a figure copied from [2] under a reflexive [1] made it refuse a right answer. Tokenizers that split numbers into
single digits (SmolLM2, Llama 3, the project's own) make this exact; a token that mixes digits with other characters
is never allowed.

Beside it: CopySpans (the stricter form, off), and the two that act once the answerability decision has passed the
question — NoRefusalOpening (the model does not overrule it) and FocusOpening (the answer opens where it pointed).
"""

from __future__ import annotations

import re

import torch

_RUN = re.compile(r"\d(?:\d|[.,:](?=\d))*")
_TAIL = re.compile(r"(\d[\d.,:]*)$")
_SEPARATORS = ".,:"
_PUNCTUATION = {"", ".", ",", ";", ":", "[", "]", "(", ")", "-"}
_ENDS = {".", "]", "?", "!"}
_CITE = re.compile(r"\[\s*(\d*)$")
_CITED_SENTENCE = re.compile(r"(?:[.!?]\s+|\])([^\]]*)$")  # what follows the last sentence end or citation
_COPY_WORDS = 4  # a sentence this long found word for word in a passage was copied from it


def flat(text: str) -> str:
    """Lower case, whitespace collapsed: a sentence copied across a wrapped line still reads as copied."""
    return " ".join(text.lower().split())


def allowed_figures(texts: list[str], variants: bool = True) -> set[str]:
    """Every digit run of the passages, with (variants) and without its thousands separators removed ("2,000" and
    "2000"). The decoder gets the runs exactly as written: the output rail compares figures as written, and "EUR 1500"
    for a passage's "EUR 1,500" would be refused there."""
    runs: set[str] = set()
    for t in texts:
        for m in _RUN.finditer(t):
            runs.add(m.group(0))
            if variants:
                runs.add(m.group(0).replace(",", ""))
    return runs


class _Vocab:
    """Per tokenizer, once: which token ids are single digits and which mix digits with other characters."""

    _cache: dict[int, "_Vocab"] = {}

    def __init__(self, tokenizer):
        pieces = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
        self.digit = {}  # "7" -> token id, and the separators: "," -> token id
        mixed, self.punctuation, self.ends = [], set(), set()  # the last two for CopySpans
        for i, p in enumerate(pieces):
            text = tokenizer.convert_tokens_to_string([p]) if p else ""
            if (text.isdigit() or text in _SEPARATORS) and len(text) == 1:
                self.digit[text] = i
            elif any(c.isdigit() for c in text):
                mixed.append(i)
            if p and text.strip() in _PUNCTUATION:
                self.punctuation.add(i)
            if p and text.strip() in _ENDS:
                self.ends.add(i)
        self.mixed = torch.tensor(mixed, dtype=torch.long)
        self.digit_ids = torch.tensor(sorted(self.digit.values()), dtype=torch.long)
        self.numerals = [self.digit[d] for d in "0123456789" if d in self.digit]  # digits only, no separators
        # a citation as the model writes it: " [", digits, "]" (FocusOpening and CiteBeforeEnd read and write them)
        self.cite_open = tokenizer(" [", add_special_tokens=False)["input_ids"][-1]
        self.cite_close = tokenizer.convert_tokens_to_ids("]")
        self.size = len(pieces)

    @classmethod
    def of(cls, tokenizer) -> "_Vocab":
        key = id(tokenizer)
        if key not in cls._cache:
            cls._cache[key] = cls(tokenizer)
        return cls._cache[key]


class GroundedFigures:
    """LogitsProcessor: figures only from `passages`, citations only [1]..[n_passages]."""

    def __init__(self, tokenizer, passages: list[str], prompt_length: int, extra: list[str] = ()):
        from assistant.guards.output import figures  # the output rail's reading of a figure, so both agree

        self.tok, self.vocab = tokenizer, _Vocab.of(tokenizer)
        self.allowed = allowed_figures([*passages, *extra], variants=False)  # extra: other text it may repeat
        self.prefixes = {a[:i] for a in self.allowed for i in range(len(a) + 1)}
        self.figures = figures
        self.holds = {str(i): figures(p) for i, p in enumerate(passages, start=1)}
        self.texts = {str(i): flat(p) for i, p in enumerate(passages, start=1)}
        self.prompt_length = prompt_length
        self.blocked = 0  # steps where the model's first choice was a figure it may not write

    def _citable(self, before: str) -> set[str]:
        """The passages a sentence copied word for word comes from; else those that hold every figure of the
        sentence `before` ends with; all of them when none does. A copied table row "... Police within 24 hours,
        us within 7 days" was cited [2], the claims procedure, which states 24 hours and 7 days too."""
        text = before.rstrip().rstrip(".!?")
        m = _CITED_SENTENCE.search(text)
        sentence = flat(m.group(1) if m else text)
        if len(sentence.split()) >= _COPY_WORDS:
            copied = {n for n, t in self.texts.items() if sentence in t}
            if copied:
                return copied
        needed = self.figures(sentence)
        return {n for n, held in self.holds.items() if needed <= held} or set(self.holds)

    def _masks(self, text: str) -> tuple[set[str], bool]:
        """(digits and separators allowed next, whether anything else is allowed) after the answer so far."""
        cite = _CITE.search(text)
        if cite:
            done, citable = cite.group(1), self._citable(text[:cite.start()])
            return ({d for d in "0123456789" if any(c.startswith(done + d) for c in citable)},
                    not done or done in citable)
        m = _TAIL.search(text)
        prefix = m.group(1) if m else ""
        nxt = {c for c in "0123456789" + _SEPARATORS if prefix + c in self.prefixes}
        if not prefix:
            return nxt - set(_SEPARATORS), True
        if prefix[-1] in _SEPARATORS:  # "EUR 300." ends a sentence; "2," may go on to "2,000"
            digits = nxt - set(_SEPARATORS)
            return digits, prefix[:-1] in self.allowed or not digits
        return nxt, prefix in self.allowed

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        for row in range(input_ids.shape[0]):
            digits, free = self._masks(self.tok.decode(input_ids[row, self.prompt_length:]))
            banned = torch.zeros(scores.shape[1], dtype=torch.bool)
            banned[self.vocab.mixed[self.vocab.mixed < scores.shape[1]]] = True
            if not free:  # inside a figure that must go on: only its continuations
                banned[:] = True
            for d, i in self.vocab.digit.items():
                banned[i] = d not in digits and (d not in _SEPARATORS or not free)
            if bool(banned[int(scores[row].argmax())]):
                self.blocked += 1
            scores[row, banned.to(scores.device)] = float("-inf")
        return scores


class CopySpans:
    """LogitsProcessor, the stricter form (in the spirit of CopyPasteLLM's CP-Link and CoCoLex): the answer is spans
    copied from the passages joined by at most `free_tokens` tokens of its own per sentence. A token continues a span
    when it follows the previous token somewhere in the passages; any other token is free, and once a sentence has
    spent its free tokens only continuations, punctuation, digits (GroundedFigures governs those), citation brackets
    and the end of the answer remain."""

    def __init__(self, tokenizer, passages: list[str], prompt_length: int, free_tokens: int = 6,
                 extra: list[str] = ()):
        self.prompt_length, self.free_tokens = prompt_length, free_tokens
        follows: dict[int, set[int]] = {}
        for text in [*passages, *extra]:
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            for a, b in zip(ids, ids[1:]):
                follows.setdefault(a, set()).add(b)
        self.follows_set = follows
        self.follows = {a: torch.tensor(sorted(b), dtype=torch.long) for a, b in follows.items()}
        vocab = _Vocab.of(tokenizer)
        self.ends = vocab.ends
        self.always_set = {*vocab.punctuation, *vocab.digit.values(), *tokenizer.all_special_ids}
        self.always = torch.tensor(sorted(self.always_set), dtype=torch.long)

    def _spent(self, generated: list[int]) -> int:
        """Free tokens used in the sentence being written."""
        start = max((i + 1 for i, t in enumerate(generated) if t in self.ends), default=0)
        spent = 0
        for i in range(max(start, 1), len(generated)):
            prev, tok = generated[i - 1], generated[i]
            spent += tok not in self.follows_set.get(prev, ()) and tok not in self.always_set
        if start == 0 and generated and generated[0] not in self.always_set:
            spent += 1  # the answer's first token starts a span
        return spent

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        for row in range(input_ids.shape[0]):
            generated = input_ids[row, self.prompt_length:].tolist()
            if self._spent(generated) < self.free_tokens:
                continue
            keep = torch.zeros(scores.shape[1], dtype=torch.bool)
            keep[self.always[self.always < scores.shape[1]]] = True
            nxt = self.follows.get(generated[-1]) if generated else None
            if nxt is not None:
                keep[nxt[nxt < scores.shape[1]]] = True
            scores[row, ~keep.to(scores.device)] = float("-inf")
        return scores


class NoRefusalOpening:
    """LogitsProcessor: the answer may not open with the refusal's first token. Used when the calibrated
    answerability decision has passed the question: the decision refuses, measured and calibrated on dev; a small
    model's own refusal of a question it passed is a second, uncalibrated veto."""

    def __init__(self, tokenizer, refusal: str, prompt_length: int):
        self.first = tokenizer(refusal, add_special_tokens=False)["input_ids"][0]
        self.prompt_length = prompt_length

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if input_ids.shape[1] == self.prompt_length:
            scores[:, self.first] = float("-inf")
        return scores


class FocusOpening:
    """LogitsProcessor: a bonus for opening the answer with the sentence the answerability decision found answers
    (`sentence`), token by token while the answer so far is its prefix — and, once it is written and cited, for
    going on with each of `then` (the other sentences the extractive backend would quote) the same way. The
    cross-encoder chose which sentences answer; a small model, left alone, often opens with their neighbour ("the
    glass deductible" for "the excess"). A bonus, not a constraint: once the model writes something else it is on
    its own."""

    def __init__(self, tokenizer, sentence: str, prompt_length: int, bonus: float, then: list[str] = (),
                 end: bool = False):
        self.target = tokenizer(sentence, add_special_tokens=False)["input_ids"]
        # with `end`, the bonus goes last to the end token: what the model adds on its own after the chosen sentences
        # is where it strays ("3.3 Storm and flood." for "3.3 Storm damage to fences, gates and hedges.")
        self.end = tokenizer.eos_token_id if end else None
        self.targets = [self.target, *(tokenizer(" " + t, add_special_tokens=False)["input_ids"] for t in then)]
        vocab = _Vocab.of(tokenizer)
        self.digits, self.cite, self.close = set(vocab.numerals), vocab.cite_open, vocab.cite_close
        self.prompt_length, self.bonus = prompt_length, bonus

    def _next(self, done: list[int]) -> int | None:
        """The token the bonus goes to after `done`, or None (off the sentences, or inside a citation)."""
        pos = 0
        for target in self.targets:
            seg = done[pos:pos + len(target)]
            if seg != target[:len(seg)]:
                return None
            if len(seg) < len(target):
                return target[len(seg)]
            pos += len(target)
            # the model's own citation of it: " [", digits, "]"
            if pos == len(done):
                return None
            if done[pos] != self.cite:
                return None
            pos += 1
            while pos < len(done) and done[pos] in self.digits:
                pos += 1
            if pos == len(done) or done[pos] != self.close:
                return None
            pos += 1
        return self.end if pos == len(done) else None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        for row in range(input_ids.shape[0]):
            nxt = self._next(input_ids[row, self.prompt_length:].tolist())
            if nxt is not None:
                scores[row, nxt] += self.bonus
        return scores


_WORD = re.compile(r"[^\W\d_]{2,}")


class CiteBeforeEnd:
    """LogitsProcessor: an answer does not end — by its end token or by running out of new tokens — on a sentence
    that cites nothing: it opens a citation there instead, which may hold only a passage number (GroundedFigures
    picks the passages that hold the sentence's figures) and its "]". The output rail refuses an uncited sentence,
    and a small model often stopped right after copying a table row ("Baggage | EUR 2,000 (EUR 400 per single item)")
    or ran to the token limit inside one. Only a sentence of at least `min_words` words: "A:" cited would be an
    answer that says nothing."""

    def __init__(self, tokenizer, prompt_length: int, max_new_tokens: int, min_words: int = 3):
        self.tok, self.prompt_length, self.max_new = tokenizer, prompt_length, max_new_tokens
        vocab = _Vocab.of(tokenizer)
        self.open = vocab.cite_open
        self.number, self.close = torch.tensor(vocab.numerals), torch.tensor([*vocab.numerals, vocab.cite_close])
        self.end = tokenizer.eos_token_id
        self.min_words = min_words
        self.forced = 0  # citations opened where the answer would have ended without one

    def _uncited(self, text: str) -> bool:
        tail = text.rsplit("]", 1)[-1]
        return "[" not in tail and len(_WORD.findall(tail)) >= self.min_words

    def _only(self, scores: torch.FloatTensor, row: int, ids: torch.Tensor) -> None:
        keep = scores[row, ids].clone()
        scores[row] = float("-inf")
        scores[row, ids] = keep

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        for row in range(input_ids.shape[0]):
            text = self.tok.decode(input_ids[row, self.prompt_length:])
            opened = _CITE.search(text)
            if opened and self._uncited(text[:opened.start()]):  # a citation after an uncited sentence: a number
                self._only(scores, row, self.close if opened.group(1) else self.number)
                continue
            done = input_ids.shape[1] - self.prompt_length
            # the citation needs " [", a number and "]": start it while three tokens are left
            ending = int(scores[row].argmax()) == self.end or done >= self.max_new - 3
            if ending and self._uncited(text):
                self.forced += 1
                self._only(scores, row, torch.tensor([self.open]))
        return scores
