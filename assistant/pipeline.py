"""The assistant: question → standalone question → retrieve → grounded prompt → generate → answer.

`stream()` yields events so every entry point (CLI, Streamlit, HTTP) shares one code path:
("status", text) while working, ("token", text) for answer text, and finally ("answer", Answer).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from assistant.generators import BACKENDS, GenerationRequest, GeneratorUnavailable, Usage, build_generator
from assistant.guards.hygiene import check_input
from assistant.memory import condense_with_llm, heuristic_standalone
from assistant.prompt import build_messages, cited_numbers
from assistant.retrieve import HybridRetriever
from assistant.schema import Answer, Citation, Hit


class Assistant:
    def __init__(self, settings=None, store=None, embedder=None):
        from assistant.settings import get_settings

        self.settings = settings or get_settings()
        if store is None:
            from assistant.store import KnowledgeStore

            store = KnowledgeStore.from_settings(self.settings)
        if embedder is None:
            from assistant.embeddings import get_embedder

            embedder = get_embedder(self.settings.embedding_model_path)
        self.store = store
        self.embedder = embedder
        self.retriever = HybridRetriever(store, embedder, self.settings)
        self._generators: dict = {}

    def generator(self, name: str):
        if name not in self._generators:
            self._generators[name] = build_generator(name, self.settings, self.store, self.embedder)
        return self._generators[name]

    def register(self, name: str, generator) -> None:
        """Add or replace a generation backend (evaluation baselines, an experimental model)."""
        self._generators[name] = generator

    def backends(self) -> dict[str, tuple[bool, str]]:
        """Each backend's availability and, if unavailable, why."""
        return {name: self.generator(name).available() for name in BACKENDS}

    def standalone(self, question: str, history: list[tuple[str, str]], backend: str) -> str:
        gen = self.generator(backend)
        if history and gen.can_condense and gen.available()[0]:
            return condense_with_llm(question, history, gen.condense)
        return heuristic_standalone(question, history)

    def ask(self, question: str, role: str = "customer", backend: str | None = None,
            history: list[tuple[str, str]] | None = None) -> Answer:
        answer = None
        for kind, value in self.stream(question, role, backend, history):
            if kind == "answer":
                answer = value
        return answer

    def stream(self, question: str, role: str = "customer", backend: str | None = None,
               history: list[tuple[str, str]] | None = None) -> Iterator[tuple[str, object]]:
        backend = backend or self.settings.backend
        history = history or []
        if role not in ("customer", "staff"):
            raise ValueError(f"unknown role {role!r}: customer or staff")
        t0 = time.perf_counter()
        question, problem, message = check_input(question)
        if problem:  # nothing is retrieved or sent for an unusable message
            answer = Answer(answer=message, refused=True, backend=backend, role=role,
                            refusal_reason=f"invalid_input: {problem}", timings_ms={"total": (time.perf_counter() - t0) * 1000})
            yield "token", message
            yield "answer", answer
            return
        gen = self.generator(backend)
        ok, why = gen.available()
        if not ok:
            raise GeneratorUnavailable(why)

        standalone = self.standalone(question, history, backend) if history else question
        yield "status", "searching the documents"
        hits = self.retriever.retrieve(standalone, role=role)
        t_retrieved = time.perf_counter()
        timings = {"retrieve": (t_retrieved - t0) * 1000}
        if not hits:
            answer = self._refusal(backend, role, "no_context: nothing in the documents is relevant enough to answer")
            answer.standalone_question = standalone if standalone != question else None
            answer.timings_ms = {**timings, "generate": 0.0, "total": timings["retrieve"]}
            yield "token", answer.answer
            yield "answer", answer
            return

        request = GenerationRequest(standalone, hits, build_messages(standalone, hits, self.settings.contact_fallback, history), history)
        usage = Usage()
        parts = []
        yield "status", "writing the answer"
        for piece in gen.stream(request, usage):
            parts.append(piece)
            yield "token", piece
        text = "".join(parts).strip()
        t_done = time.perf_counter()
        numbers = cited_numbers(text, len(hits))
        citations = [self._citation(n, hits[n - 1]) for n in numbers]
        # A grounded answer cites its context; an answer citing nothing is the model declining (rule 3).
        refused = not citations
        if refused and not text:  # a model that produced nothing still owes the customer a way forward
            text = self._refusal(backend, role, "").answer
            yield "token", text
        answer = Answer(
            answer=text, refused=refused, backend=backend, role=role,
            refusal_reason="not_in_context: the retrieved passages do not answer the question" if refused else None,
            citations=citations, standalone_question=standalone if standalone != question else None,
            timings_ms={**timings, "generate": (t_done - t_retrieved) * 1000, "total": (t_done - t0) * 1000},
        )
        answer.usage = {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens}
        yield "answer", answer

    @staticmethod
    def _citation(n: int, hit: Hit) -> Citation:
        c = hit.chunk
        return Citation(n=n, doc_id=c.doc_id, source=c.source, page=c.page, chunk_id=c.chunk_id,
                        score=round(hit.score, 6), snippet=c.text[:400])

    def _refusal(self, backend: str, role: str, reason: str) -> Answer:
        text = ("I'm sorry, I can't find the answer to that in our documents, so I can't answer it reliably. "
                f"Please contact us: {self.settings.contact_fallback}.")
        return Answer(answer=text, refused=True, backend=backend, role=role, refusal_reason=reason)
