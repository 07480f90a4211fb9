"""The records that flow ingest → store → retrieve → generate → answer."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

Audience = Literal["public", "internal"]
Role = Literal["customer", "staff"]

# A role sees these audiences; enforced in the store query itself, not only in the prompt.
ROLE_AUDIENCES: dict[str, tuple[str, ...]] = {"customer": ("public",), "staff": ("public", "internal")}


@dataclass
class Chunk:
    chunk_id: str
    doc_id: str
    text: str
    source: str
    audience: str = "public"
    page: int | None = None
    title: str = ""
    heading: str = ""
    locator: str = ""  # where in the source, besides the page: "sheet Premiums, row 7", "slide 3"
    meta: dict = field(default_factory=dict)  # loader facts kept with the chunk (ocr_confidence)

    def metadata(self) -> dict:
        # Chroma metadata cannot hold None: absent keys mean "no page" / "no heading".
        meta = {"doc_id": self.doc_id, "source": self.source, "audience": self.audience, "title": self.title}
        if self.page is not None:
            meta["page"] = self.page
        if self.heading:
            meta["heading"] = self.heading
        if self.locator:
            meta["locator"] = self.locator
        meta.update({k: v for k, v in self.meta.items() if isinstance(v, (str, int, float, bool))})
        return meta

    def where(self) -> str:
        """What a citation shows: the source, and the page, sheet/row or slide."""
        return self.source + (f", {self.locator}" if self.locator else f", page {self.page}" if self.page else "")

    @classmethod
    def from_store(cls, chunk_id: str, text: str, meta: dict) -> "Chunk":
        return cls(
            chunk_id=chunk_id,
            doc_id=meta["doc_id"],
            text=text,
            source=meta.get("source", ""),
            audience=meta.get("audience", "public"),
            page=meta.get("page"),
            title=meta.get("title", ""),
            heading=meta.get("heading", ""),
            locator=meta.get("locator", ""),
            meta={k: meta[k] for k in ("ocr_confidence",) if k in meta},
        )


@dataclass
class Hit:
    """A retrieved chunk with its scores: `score` is the fused one, `similarity` the cosine to the question,
    `rerank_score` the reranker's (when one is configured)."""

    chunk: Chunk
    score: float
    similarity: float
    dense_rank: int | None = None
    bm25_rank: int | None = None
    rerank_score: float | None = None

    def to_json(self) -> dict:
        c = self.chunk
        return {
            "doc_id": c.doc_id,
            "chunk_id": c.chunk_id,
            "source": c.source,
            "page": c.page,
            "text": c.text,
            "score": round(self.score, 6),
            "similarity": round(self.similarity, 4),
            **({"rerank_score": round(self.rerank_score, 4)} if self.rerank_score is not None else {}),
            "audience": c.audience,
        }


@dataclass
class Citation:
    n: int
    doc_id: str
    source: str
    page: int | None
    chunk_id: str
    score: float
    snippet: str = ""
    locator: str = ""  # sheet/row, slide, table: beside the page

    def where(self) -> str:
        return self.source + (f", {self.locator}" if self.locator else f", page {self.page}" if self.page else "")

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class Answer:
    answer: str
    refused: bool
    backend: str
    role: str
    refusal_reason: str | None = None
    citations: list[Citation] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
    standalone_question: str | None = None
    usage: dict[str, int] = field(default_factory=dict)
    handoff: str | None = None  # why a person was offered: request | escalation | self_harm | distress | anger | refusals
    guards: list[dict] = field(default_factory=list)  # every rail's verdict
    session_id: str | None = None
    interaction_id: str | None = None  # the audit log's id: feedback refers to it
    answerability: float | None = None  # the answerability model's P(the passages answer), when it decided
    fallback: str | None = None  # the backend that quoted the answer because the one asked failed the checks

    def to_json(self) -> dict:
        return {
            "answer": self.answer,
            "refused": self.refused,
            "refusal_reason": self.refusal_reason,
            "citations": [c.to_json() for c in self.citations],
            "backend": self.backend,
            "role": self.role,
            "standalone_question": self.standalone_question,
            "usage": self.usage,
            "handoff": self.handoff,
            "guards": self.guards,
            "session_id": self.session_id,
            "interaction_id": self.interaction_id,
            "answerability": None if self.answerability is None else round(self.answerability, 4),
            "fallback": self.fallback,
            "timings_ms": {k: round(v, 1) for k, v in self.timings_ms.items()},
        }
