"""The rails in the order they run, for the pipeline: redact → injection → abuse → hand-off → topic → account on the
way in; context sanitizing between retrieval and generation; sentence checks on the way out."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from assistant.guards.abuse import check_abuse
from assistant.guards.account import check_account
from assistant.guards.base import Verdict, rail_config
from assistant.guards.context import sanitize_hits
from assistant.guards.handoff import detect_handoff, handoff_message
from assistant.guards.injection import InjectionDetector
from assistant.guards.output import OutputGuard
from assistant.guards.pii import PATTERNS, Redaction, redact
from assistant.guards.topic import TopicDetector
from assistant.answerability import unwrap
from assistant.prompt import COMPACT_RULES, COMPANY, RULES
from assistant.schema import Citation


@dataclass
class InputDecision:
    verdicts: list[Verdict] = field(default_factory=list)
    blocked_by: str | None = None  # the rail that refused the message
    message: str | None = None  # what the user is told when blocked
    handoff: str | None = None  # request | escalation | self_harm | distress | anger


class Guardrails:
    def __init__(self, settings, store, embedder, retriever):
        self.settings = settings
        self.store = store
        self.embedder = embedder
        self.retriever = retriever
        self.injection = InjectionDetector(embedder)
        self.topic = TopicDetector(embedder)
        # The system prompts without the contact line: repeating a phone number is not a leak.
        prompts = [r.format(company=COMPANY, contact="") for r in (RULES, COMPACT_RULES)]
        self.output = OutputGuard(embedder, store, prompts)
        # The insurer's published contact details are not personal data.
        self.published = {m.group(0).strip() for _, p in PATTERNS for m in p.finditer(settings.contact_fallback)}

    def warm_up(self) -> None:
        """Embed the attack and topic anchors now rather than on the first customer's message."""
        self.injection.attack_vectors()
        self.topic.anchors()
        self.output.internal_shingles()

    def redact(self, text: str, known: dict[str, str]) -> tuple[Redaction, Verdict]:
        t0 = time.perf_counter()
        r = redact(text, keep=self.published, names=rail_config("pii")["redact_names"], known=known)
        new = {ph: v for ph, v in r.found.items() if ph not in known}
        detail = ", ".join(f"{k}×{n}" for k, n in Redaction(r.text, new).counts().items())
        return r, Verdict("pii", not new, f"redacted {detail}" if new else "", (time.perf_counter() - t0) * 1000)

    def check_input(self, clean: str, vector, role: str = "customer") -> InputDecision:
        """`clean` has passed the hygiene rail and been redacted; `vector` is its embedding (shared with retrieval).
        Staff asking how to escalate, or who takes a call for a manager, ask about a procedure: a request for a
        person is a customer's hand-off only."""
        decision = InputDecision()
        contact = self.settings.contact_fallback
        for rail, check in (("injection", lambda: self.injection.check(clean, vector)),
                            ("abuse", lambda: check_abuse(clean))):
            v = check()
            decision.verdicts.append(v)
            if not v.passed:
                decision.blocked_by, decision.message = rail, rail_config(rail)["message"].format(contact=contact)
                return decision
        v = detect_handoff(clean)
        if role != "customer" and v.data.get("kind") in ("request", "escalation"):
            v = Verdict("handoff", True, "a request for a person, asked by staff: a procedure question", v.ms)
        decision.verdicts.append(v)
        if not v.passed:
            decision.handoff = v.data["kind"]
            if decision.handoff == "request":  # nothing to answer: the person is the answer
                return decision
        v = self.topic.check(clean, vector)
        decision.verdicts.append(v)
        if not v.passed and decision.handoff is None:
            decision.blocked_by, decision.message = "topic", rail_config("topic")["message"].format(contact=contact)
            return decision
        if role == "customer":  # staff ask about procedures, not their own records
            v = check_account(clean)
            decision.verdicts.append(v)
            if not v.passed:
                decision.blocked_by, decision.message = "account", rail_config("account")["message"].format(contact=contact)
        return decision

    def sanitize(self, hits):
        return sanitize_hits(hits)

    def contact(self, role: str) -> tuple[str, list[Citation]]:
        """How to reach a person, from the knowledge base's own contact page (else the configured fallback)."""
        cfg = rail_config("handoff")
        hits = self.retriever.retrieve(cfg["contact_query"], role=role, k=5, threshold=0.0)
        if not hits:
            return self.settings.contact_fallback, []
        best = next((h for h in hits if cfg["contact_document"] in h.chunk.source), hits[0])
        c = best.chunk
        text = unwrap(c.text)
        if c.title and text.startswith(c.title):
            text = text[len(c.title):].strip()
        citation = Citation(n=1, doc_id=c.doc_id, source=c.source, page=c.page, chunk_id=c.chunk_id, locator=c.locator,
                            score=round(best.score, 6), snippet=c.text[:400])
        return f"{text} [1]", [citation]

    def handoff_answer(self, kind: str, role: str) -> tuple[str, list[Citation]]:
        contact, citations = self.contact(role)
        return handoff_message(kind, contact), citations
