"""The assistant: question → input rails → standalone question → retrieve → sanitize → generate → output rails → answer.

`stream()` yields events so every entry point (CLI, Streamlit, HTTP) shares one code path:
("status", text) while working, ("token", text) for answer text that has passed the output rails, and finally
("answer", Answer). The concatenated tokens are exactly the final answer: nothing unchecked is ever shown.
Personal data is redacted before retrieval, before any backend and before the audit log; the customer's own
references are restored only in what this session shows.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from assistant.generators import BACKENDS, GenerationRequest, GeneratorUnavailable, Usage, build_generator
from assistant.guards.base import Verdict, rail_config
from assistant.guards.guardrails import Guardrails
from assistant.guards.hygiene import check_input
from assistant.guards.pii import Redaction
from assistant.memory import condense_with_llm, heuristic_standalone
from assistant.prompt import REFUSAL, build_messages
from assistant.retrieve import HybridRetriever
from assistant.schema import Answer, Citation, Hit
from assistant.session import Session

# Refusals decided before any backend ran (the rail's name is the reason's prefix).
BEFORE_BACKEND = ("invalid_input", "injection", "abuse", "topic", "account", "no_context", "not_answerable")


_SENTENCES = re.compile(r"(?<=[.!?])\s+")
_PLACEHOLDER = re.compile(r"<[A-Z_]+_\d+>")


def without_introductions(text: str) -> str:
    """The message without sentences that only introduce the customer ("My name is <NAME_1>, policy <POLICY_1>."):
    personal references do not help retrieval, and their words would dilute the question."""
    parts = _SENTENCES.split(text)
    kept = [p for p in parts if not _PLACEHOLDER.search(p) or p.rstrip().endswith("?")]
    return " ".join(kept) if kept else text


@dataclass
class _Turn:
    """What one turn produced, before hand-off, restoring and logging."""

    text: str  # redacted: what backends and the log may see
    refused: bool
    reason: str | None = None
    citations: list[Citation] = field(default_factory=list)
    streamed: bool = False  # its text already went out as tokens
    usage: dict = field(default_factory=dict)
    answerability: float | None = None
    fallback: str | None = None  # the backend that quoted the answer when the one asked failed the checks


class Assistant:
    def __init__(self, settings=None, store=None, embedder=None):
        from assistant.settings import get_settings

        self.settings = settings or get_settings()
        if store is None:
            from assistant.store import KnowledgeStore

            store = KnowledgeStore.from_settings(self.settings)
        if embedder is None:
            from assistant.embeddings import get_embedder

            embedder = get_embedder(store.embedding_model or self.settings.embedding_model_path)
        self.store = store
        self.embedder = embedder
        # the passages of known questions join retrieval under the served model's matcher, whose cosines the
        # paraphrase bar was chosen on; with no model served, retrieval is dense + BM25 alone
        self.retriever = HybridRetriever(store, embedder, self.settings,
                                         known=lambda: self.known if self.answerability else None)
        from assistant.answerability import get_answerability

        self.answerability = get_answerability(self.settings)  # None: the backends' own rules decide
        self._known: dict = {}  # the known-question index per encoder (the served model's matcher, or the store's)
        self.guards = Guardrails(self.settings, store, embedder, self.retriever)
        self._audit = None
        self._generators: dict = {}

    @property
    def known(self):
        """The known-question index the served answerability model matches with."""
        return self.known_for(self.answerability)

    def known_for(self, model):
        """The known-question index for `model`: over its question matcher's vectors, or the store embedder's."""
        from assistant.known_questions import KnownQuestions

        path = getattr(model, "matcher_path", None)
        if path not in self._known:
            from assistant.embeddings import get_embedder

            encoder = get_embedder(path) if path else self.embedder
            self._known[path] = KnownQuestions.from_settings(self.store, encoder, self.settings)
        return self._known[path]

    @property
    def audit(self):
        if self._audit is None and self.settings.audit_enabled:
            from assistant.audit import AuditLog

            self._audit = AuditLog(self.settings.audit_path, keep=self.guards.published)
        return self._audit

    def generator(self, name: str):
        if name not in self._generators:
            self._generators[name] = build_generator(name, self.settings, self.store, self.embedder)
        return self._generators[name]

    def register(self, name: str, generator) -> None:
        """Add or replace a generation backend (evaluation baselines, an experimental model)."""
        self._generators[name] = generator

    def backends(self) -> dict[str, tuple[bool, str]]:
        """Each backend's availability and, if unavailable, why (the built-in ones and any registered)."""
        return {name: self.generator(name).available() for name in dict.fromkeys([*BACKENDS, *self._generators])}

    def standalone(self, question: str, history: list[tuple[str, str]], backend: str) -> str:
        gen = self.generator(backend)
        if history and gen.can_condense and gen.available()[0]:
            return condense_with_llm(question, history, gen.condense)
        return heuristic_standalone(question, history)

    def ask(self, question: str, role: str = "customer", backend: str | None = None,
            history: list[tuple[str, str]] | None = None, session: Session | None = None) -> Answer:
        answer = None
        for kind, value in self.stream(question, role, backend, history, session):
            if kind == "answer":
                answer = value
        return answer

    def stream(self, question: str, role: str = "customer", backend: str | None = None,
               history: list[tuple[str, str]] | None = None, session: Session | None = None
               ) -> Iterator[tuple[str, object]]:
        backend = backend or self.settings.backend
        session = session or Session(history=list(history or []))
        if role not in ("customer", "staff"):
            raise ValueError(f"unknown role {role!r}: customer or staff")
        t0 = time.perf_counter()
        timings: dict[str, float] = {}
        verdicts: list[Verdict] = []
        standalone = None
        question, problem, message = check_input(question)
        t = time.perf_counter()
        redaction, pii_verdict = self.guards.redact(question, session.pii)
        session.pii, redacted, handoff = redaction.found, redaction.text, None
        if problem:  # nothing is retrieved or sent for an unusable message
            verdicts += [pii_verdict, Verdict("hygiene", False, problem)]
            turn = _Turn(message, True, f"invalid_input: {problem}")
        else:
            gen = self.generator(backend)
            ok, why = gen.available()
            if not ok:
                raise GeneratorUnavailable(why)
            t_embed = time.perf_counter()
            vector = self.embedder.embed_one(redacted)  # shared by the rails and retrieval (cached)
            timings["embed"] = (time.perf_counter() - t_embed) * 1000
            decision = self.guards.check_input(redacted, vector, role)
            verdicts += [pii_verdict, *decision.verdicts]
            timings["guard_input"] = (time.perf_counter() - t) * 1000 - timings["embed"]
            handoff = decision.handoff
            if decision.blocked_by:
                turn = _Turn(decision.message, True, f"{decision.blocked_by}: {verdicts[-1].detail}")
            elif handoff == "request":  # the person is the answer: nothing to retrieve
                text, citations = self.guards.handoff_answer(handoff, role)
                turn = _Turn(text, False, citations=citations)
            else:
                asked = without_introductions(redacted)
                standalone = self.standalone(asked, session.history, backend) if session.history else asked
                turn = yield from self._generate(standalone, role, gen, session, timings, verdicts)

        counted = turn.refused and (turn.reason or "").split(":")[0] in rail_config("handoff")["counted_refusals"]
        session.refusals_in_row = session.refusals_in_row + 1 if counted else (0 if not turn.refused else session.refusals_in_row)
        if counted and handoff is None and session.refusals_in_row >= rail_config("handoff")["refusals_in_row"]:
            handoff, session.refusals_in_row = "refusals", 0
        if handoff and handoff != "request":
            note, citations = self.guards.handoff_answer(handoff, role)
            if turn.refused:  # the escalation replaces the refusal
                turn = _Turn(note, True, turn.reason, citations)
            else:  # the answer stands; a person is offered too
                n = len(turn.citations) + 1
                addition = "\n\n" + note.replace("[1]", f"[{n}]")
                turn.text += addition
                yield "token", session.restore(addition)
                turn.citations += [Citation(**{**c.to_json(), "n": n}) for c in citations]
        if not turn.streamed:
            yield "token", session.restore(turn.text)

        timings["guard"] = sum(timings.get(k, 0.0) for k in ("guard_input", "guard_context", "guard_output"))
        timings["total"] = (time.perf_counter() - t0) * 1000
        answer = Answer(answer=session.restore(turn.text), refused=turn.refused, backend=backend, role=role,
                        refusal_reason=turn.reason, citations=turn.citations, handoff=handoff,
                        standalone_question=standalone if standalone not in (None, redacted) else None,
                        timings_ms=timings, guards=[v.to_json() for v in verdicts], session_id=session.session_id)
        answer.usage = turn.usage
        answer.answerability = turn.answerability
        answer.fallback = turn.fallback
        session.history.append((redacted, turn.text))
        if self.audit is not None:
            answer.interaction_id = self.audit.record(
                user_id=session.user_id, session_id=session.session_id, role=role, backend=backend, question=redacted,
                answer=turn.text, refused=turn.refused, refusal_reason=turn.reason, handoff=handoff,
                citations=[c.to_json() | {"snippet": ""} for c in turn.citations], verdicts=answer.guards,
                timings=timings, pii_counts=Redaction("", session.pii).counts())
        yield "answer", answer

    def _generate(self, standalone: str, role: str, gen, session: Session, timings: dict, verdicts: list[Verdict]):
        """Retrieve, sanitize, generate and check sentence by sentence; yields checked tokens, returns the _Turn."""
        yield "status", "searching the documents"
        t = time.perf_counter()
        # With an answerability model, it decides whether the passages answer: no similarity cut-off first.
        hits = self.retriever.retrieve(standalone, role=role, threshold=-1.0 if self.answerability else None)
        timings["retrieve"] = (time.perf_counter() - t) * 1000
        if not hits:
            return _Turn(REFUSAL.format(contact=self.settings.contact_fallback), True,
                         "no_context: nothing in the documents is relevant enough to answer")
        hits, ctx = self.guards.sanitize(hits)
        verdicts.append(ctx)
        timings["guard_context"] = ctx.ms
        decision = None
        if self.answerability is not None:
            t = time.perf_counter()
            decision = self.decide(standalone, hits, role)
            timings["decide"] = (time.perf_counter() - t) * 1000
            known = (f"; nearest known question {decision.known.similarity:.2f}"
                     + (f" (>= {self.answerability.known_threshold_for(role):.2f}: answered by it)" if decision.by_known else "")
                     + f": {decision.known.question!r}" if decision.known else "")
            verdicts.append(Verdict("answerability", decision.answerable,
                                    f"p={decision.probability:.2f} (threshold {self.answerability.threshold_for(role):.2f})"
                                    + known, ms=timings["decide"]))
            if not decision.answerable:
                return _Turn(REFUSAL.format(contact=self.settings.contact_fallback), True,
                             f"not_answerable: {decision.why} (p={decision.probability:.2f})",
                             answerability=decision.probability)
        if decision is not None and self.settings.evidence_first:
            from assistant.answerability import evidence_first

            hits = evidence_first(hits, decision, self.settings.extractive_choice_logit_weight)
        request = GenerationRequest(standalone, hits, build_messages(standalone, hits, self.settings.contact_fallback,
                                                                     session.history), session.history, decision)
        usage = Usage()
        yield "status", "writing the answer"
        t_gen = time.perf_counter()
        check, streamed, guard_ms = yield from self._checked(gen, request, role, session, usage)
        fallback = None
        dropped = [v for v in check.verdicts if not v.passed] if check.refused and check.raw_cited else []
        if (dropped and decision is not None and decision.answerable and self.settings.answer_fallback != "off"
                and gen is not self.generator(self.settings.answer_fallback)):
            # The passages answer (the decision said so) but all the backend wrote failed the checks: the customer
            # gets the sentences the decision chose, quoted, rather than a refusal of an answerable question
            fallback = self.settings.answer_fallback
            verdicts += check.verdicts
            verdicts.append(Verdict("fallback", True, f"{dropped[0].rail}: {dropped[0].detail} — quoted by {fallback}"))
            check, streamed, more_ms = yield from self._checked(self.generator(fallback), request, role, session, usage)
            guard_ms += more_ms
        timings["generate"] = (time.perf_counter() - t_gen) * 1000 - guard_ms
        timings["guard_output"] = guard_ms
        verdicts += check.verdicts or [Verdict("output", True, ms=guard_ms)]
        used = {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens}
        if check.refused:
            # A grounded answer cites its context: an answer citing nothing is the model declining (or everything
            # it said failed the checks). Either way the user gets the safe fallback, never the raw text.
            dropped = [v for v in check.verdicts if not v.passed] if check.raw_cited else []
            reason = (f"output_guard: {dropped[0].rail}: {dropped[0].detail}" if dropped else
                      "not_in_context: the retrieved passages do not answer the question")
            text = (rail_config("output")["fallback"] if dropped else REFUSAL).format(contact=self.settings.contact_fallback)
            return _Turn(text, True, reason, usage=used, answerability=decision and decision.probability)
        citations = [self._citation(n, hits[n - 1]) for n in check.cited]
        return _Turn(check.text, False, citations=citations, streamed=streamed, usage=used,
                     answerability=decision and decision.probability, fallback=fallback)

    def _checked(self, gen, request: GenerationRequest, role: str, session: Session, usage: Usage):
        """Streams `gen`'s answer through the output rails sentence by sentence; yields the sentences that pass,
        returns (the check, whether any went out, ms spent checking)."""
        check = self.guards.output.start(request.hits, role, own_pii=set(session.pii.values()))
        guard_ms, streamed = 0.0, False
        for piece in gen.stream(request, usage):
            t = time.perf_counter()
            ready = check.feed(piece)
            guard_ms += (time.perf_counter() - t) * 1000
            for sentence in ready:
                streamed = True
                yield "token", session.restore(sentence)
        t = time.perf_counter()
        for sentence in check.finish():
            streamed = True
            yield "token", session.restore(sentence)
        guard_ms += (time.perf_counter() - t) * 1000
        return check, streamed, guard_ms

    def decide(self, question: str, hits: list[Hit], role: str = "customer", model=None):
        """The answerability model's (or `model`'s: one being calibrated) decision over the passages' best
        pre-ranked sentences."""
        from assistant.answerability import (favour_known_sentence, internal_gap, penalize_other_products,
                                             penalize_other_rows, prerank)
        from assistant.vocabulary import expand

        bm25 = self.store.bm25()
        bonus = self.settings.staff_internal_bonus if role == "staff" else 0.0
        evidence = prerank(question, hits, self.embedder, bm25, self.settings.answerability_candidates, bonus)
        gap, internal = internal_gap(self.store, self.embedder, question, hits, role)
        scored = (internal, prerank(question, [internal], self.embedder, bm25, 4)) if internal else None
        # the nearest known question the passages answer (shown to staff); for a customer, a known question of an
        # internal document that comes closer than it is a staff procedure
        model = model or self.answerability
        index = self.known_for(model)
        vector = index.embedder.embed_one(expand(question))
        match = index.best(vector, [h.chunk.chunk_id for h in hits])
        staff_match = index.best_internal(vector) if role == "customer" else None
        unanswerable = index.best_unanswerable(vector, question)
        similarity = match.similarity if match else 0.0
        known = {"known_similarity": similarity,
                 "known_unanswerable_similarity": unanswerable[1] if unanswerable else 0.0,
                 "known_internal_gap": max(0.0, staff_match.similarity - similarity) if staff_match else 0.0}
        decision = model.decide(expand(question), hits, evidence, bm25, gap, scored, role, known)
        decision.known = match
        best = next((e for e in decision.evidence if e.logit is not None), None)
        decision.features["known_document"] = float(best is not None and index.covers(hits[best.n - 1].chunk.doc_id))
        penalize_other_products(question, hits, decision.evidence, self.settings.product_mismatch_penalty)
        penalize_other_rows(question, decision.evidence, self.settings.row_mismatch_penalty)
        if role == "customer":
            favour_known_sentence(match, hits, decision.evidence, self.settings.known_sentence_bonus,
                                  self.settings.known_paraphrase_similarity)
        # A question that comes as close to a known question as customers' paraphrases of it do is answered though
        # the probability falls short ("whats the excess on a cracked windshield" for the windscreen deductible): the
        # cross-encoder misses such paraphrases, the known questions were written in customers' words. A new
        # document without known questions is decided by the probability alone. A customer asking what only an
        # internal document answers is refused, nothing internal shown (the margins are the model's, chosen on dev).
        ruling = model.rule(decision.features, role, internal_margin=self.settings.answerability_internal_margin)
        decision.answerable, decision.by_known = ruling.answered, ruling.by_known
        if ruling.staff_only:
            decision.why = "only an internal document answers it"
        elif ruling.vetoed:
            decision.why = "it is closer to a question the documents do not answer than to any they do"
        return decision

    @staticmethod
    def _citation(n: int, hit: Hit) -> Citation:
        c = hit.chunk
        return Citation(n=n, doc_id=c.doc_id, source=c.source, page=c.page, chunk_id=c.chunk_id, locator=c.locator,
                        score=round(hit.score, 6), snippet=c.text[:400])

