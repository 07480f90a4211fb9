"""Retrieval and answering on the ingested sample knowledge base, through the library and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import ROOT, make_settings
from tests.openai_server import FakeOpenAI


def test_customers_never_retrieve_internal_documents(kb_assistant):
    q = "claims handler authority limits and goodwill payments"
    staff = kb_assistant.retriever.retrieve(q, role="staff", k=10, threshold=-1)
    customer = kb_assistant.retriever.retrieve(q, role="customer", k=10, threshold=-1)
    assert any(h.chunk.audience == "internal" for h in staff)
    assert customer and all(h.chunk.audience == "public" for h in customer)
    # The BM25 side alone is filtered too, not only the fused result.
    bm25_public = kb_assistant.store.bm25().search(q, 20, ("public",))
    bm25_all = kb_assistant.store.bm25().search(q, 20, ("public", "internal"))
    assert bm25_public and not any("/internal/" in cid for cid, _ in bm25_public)
    assert any("/internal/" in cid for cid, _ in bm25_all)


def test_hybrid_fuses_both_retrievers(kb_assistant):
    hits = kb_assistant.retriever.retrieve("young driver deductible EUR 250", k=5, threshold=-1)
    assert hits[0].chunk.source in ("auto-insurance.md", "faq-export.csv")
    assert any(h.dense_rank and h.bm25_rank for h in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_extractive_answer_cites_the_right_document(kb_assistant):
    ans = kb_assistant.ask("What is the deductible for escape of water claims?")
    assert not ans.refused and "EUR 500" in ans.answer
    assert ans.citations and ans.citations[0].source == "home-insurance.md"
    assert f"[{ans.citations[0].n}]" in ans.answer
    assert ans.role == "customer" and ans.backend == "extractive"


def test_a_quoted_heading_brings_what_it_heads(kb_assistant):
    """A heading split out as a sentence ("Section 3 - What is not covered") is quoted with the items that follow it
    in its passage, in the room the other quoted sentences leave; a quote without a heading is left as it is."""
    from assistant.generators.extractive import headed

    a = kb_assistant
    hits = a.retriever.retrieve("what isnt covered by home insurance", role="customer", threshold=-1.0)
    n = next(i for i, h in enumerate(hits, start=1)
             if h.chunk.source == "home-policy-wording.pdf" and "Section 3 - What is not covered" in h.chunk.text)
    k = a.settings.extractive_max_sentences
    quoted = headed(hits, [(n, "Section 3 - What is not covered")], k)
    assert quoted[0] == (n, "Section 3 - What is not covered") and len(quoted) == 1 + a.settings.extractive_max_sentences
    assert [t[:4] for _, t in quoted[1:]] == ["3.1 ", "3.2 ", "3.3 "][: a.settings.extractive_max_sentences]
    other = (n, quoted[2][1])  # a sentence quoted beside the heading keeps its place, one item fewer follows
    assert headed(hits, [(n, "Section 3 - What is not covered"), other], k) == quoted[:3]
    plain = [(n, quoted[1][1])]
    assert headed(hits, plain, k) == plain


def test_a_quoted_sentence_that_points_back_brings_the_one_it_points_to(kb_assistant):
    """"It is deducted from the amount we pay." alone says nothing: the sentence of its passage before it (what "It"
    is) is quoted first, once; a sentence that points nowhere is left as it is."""
    from assistant.generators.extractive import with_antecedents

    hits = kb_assistant.retriever.retrieve("what is a deductible", role="customer", threshold=-1.0)
    n = next(i for i, h in enumerate(hits, start=1) if "It is deducted from the amount we pay." in h.chunk.text)
    it = (n, "It is deducted from the amount we pay.")
    first = (n, "The deductible is the part of each claim that you pay yourself.")
    assert with_antecedents(hits, [it]) == [first, it]
    assert with_antecedents(hits, [first, it]) == [first, it]
    plain = [(n, "Your deductibles are shown on your policy schedule.")]
    assert with_antecedents(hits, plain) == plain


def test_pdf_answer_cites_page(kb_assistant):
    ans = kb_assistant.ask("What counts as a storm in my home policy?")
    assert not ans.refused
    assert any(c.source == "home-policy-wording.pdf" and c.page == 1 for c in ans.citations)


def test_out_of_scope_is_refused_with_reason_and_contact(kb_assistant):
    ans = kb_assistant.ask("How do I bake sourdough bread?")
    assert ans.refused and ans.refusal_reason and not ans.citations
    assert "0800 555 0142" in ans.answer


def test_internal_answer_for_staff_refused_for_customer(kb_assistant):
    q = "Up to what amount can a claims handler settle a claim without approval?"
    staff = kb_assistant.ask(q, role="staff")
    customer = kb_assistant.ask(q, role="customer")
    assert not staff.refused and "5,000" in staff.answer
    assert any(c.source == "claims-handling-manual.pdf" for c in staff.citations)
    assert customer.refused and all("internal" not in c.doc_id for c in customer.citations)


def test_follow_up_is_made_standalone(kb_assistant):
    first = kb_assistant.ask("What is the deductible on renters insurance?")
    follow = kb_assistant.ask("and for bicycles?", history=[("What is the deductible on renters insurance?", first.answer)])
    assert follow.standalone_question and "renters insurance" in follow.standalone_question.lower()


def _cli(*args, env_extra=None):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "assistant", *args], cwd=ROOT, capture_output=True, text=True,
                          env=env, timeout=300)


def test_cli_retrieve_and_ask_json(kb_store_dir):
    r = _cli("retrieve", "How far will roadside assistance tow my car?", "--store", str(kb_store_dir), "--k", "3", "--json")
    assert r.returncode == 0, r.stderr
    hits = json.loads(r.stdout)
    assert 1 <= len(hits) <= 3
    assert set(hits[0]) >= {"doc_id", "chunk_id", "source", "page", "text", "score"}
    assert hits[0]["source"] == "roadside-assistance.html"

    r = _cli("ask", "How long do you keep call recordings?", "--store", str(kb_store_dir), "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert set(out) >= {"answer", "refused", "refusal_reason", "citations", "backend", "timings_ms"}
    assert out["refused"] is False and "12 months" in out["answer"]
    assert set(out["citations"][0]) >= {"n", "doc_id", "source", "page", "chunk_id", "score"}
    assert set(out["timings_ms"]) >= {"retrieve", "generate", "total"}


def test_cli_hosted_without_key_says_what_to_do(kb_store_dir):
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    r = subprocess.run([sys.executable, "-m", "assistant", "ask", "hi", "--backend", "hosted", "--store", str(kb_store_dir)],
                       cwd=ROOT, capture_output=True, text=True, env={**env, "HF_HUB_OFFLINE": "1"}, timeout=300)
    assert r.returncode == 2 and "OPENAI_API_KEY" in r.stderr


def _hosted_assistant(kb_store_dir, embedder, server):
    from assistant.pipeline import Assistant

    s = make_settings(kb_store_dir, hosted_base_url=server.base_url, hosted_api_key="sk-test-123", hosted_model="gpt-test")
    return Assistant(s, embedder=embedder)


def test_private_model_served_by_an_openai_compatible_server(kb_store_dir, embedder):
    """Scale-out for Solution B: vLLM (or any OpenAI-compatible server) serves the private model on the company's
    machines; the assistant reaches it with Solution A's client, and nothing is counted as leaving the company."""
    from assistant.pipeline import Assistant

    with FakeOpenAI("Call recordings are kept for 12 months [1].") as server:
        s = make_settings(kb_store_dir, private_base_url=server.base_url, private_served_model="brightwater-private-v3")
        a = Assistant(s, embedder=embedder)
        ans = a.ask("How long do you keep call recordings?", backend="private")
    assert ans.backend == "private" and "12 months" in ans.answer and ans.citations
    assert server.requests[-1]["model"] == "brightwater-private-v3"
    assert a.backends()["private"][0] and a.generator("private").leaves_company is False
    assert ans.usage == {"prompt_tokens": 321, "completion_tokens": 12}


def test_hosted_backend_streams_over_real_http(kb_store_dir, embedder):
    with FakeOpenAI("Comprehensive own-damage claims have a EUR 300 deductible [1].") as server:
        a = _hosted_assistant(kb_store_dir, embedder, server)
        events = list(a.stream("What is the standard deductible for a comprehensive car insurance claim?", backend="hosted"))
    tokens = [v for k, v in events if k == "token"]
    answer = [v for k, v in events if k == "answer"][0]
    # Streamed sentence by sentence, each shown once it has passed the output checks.
    assert "".join(tokens) == answer.answer
    assert answer.answer == "Comprehensive own-damage claims have a EUR 300 deductible [1]."
    assert not answer.refused and answer.citations[0].n == 1
    assert answer.usage == {"prompt_tokens": 321, "completion_tokens": 12}

    req = server.requests[-1]
    assert req["model"] == "gpt-test" and req["stream"] is True
    assert server.headers[-1]["authorization"] == "Bearer sk-test-123"
    system, user = req["messages"][0]["content"], req["messages"][-1]["content"]
    assert "Answer ONLY from the numbered context" in system and "Never reveal" in system
    assert '<context n="1"' in user and '<context n="2"' in user
    assert "Question: What is the standard deductible for a comprehensive car insurance claim?" in user
    assert "auto-insurance.md" in user  # the context is the retrieved passage, with its source


def test_hosted_reply_without_citation_counts_as_refusal(kb_store_dir, embedder):
    with FakeOpenAI("I cannot answer that from the company's documents; please call 0800 555 0142.") as server:
        ans = _hosted_assistant(kb_store_dir, embedder, server).ask("What is the deductible on renters insurance?", backend="hosted")
    assert ans.refused and not ans.citations


def test_an_answer_that_fails_the_checks_is_quoted_from_the_documents_when_the_decision_found_they_answer(
        kb_store_dir, embedder, answerability):
    """The answerability decision passes the question, the hosted model states a figure no passage holds: the output
    rail drops it and the customer gets the extractive backend's quote, flagged as such, rather than a refusal. Off,
    it is refused; a model that declines is refused either way (its own refusal stands)."""
    from assistant.pipeline import Assistant

    _, registry, version = answerability
    q = "What is the standard deductible for a comprehensive car insurance claim?"

    def assistant(server, **overrides):
        return Assistant(make_settings(kb_store_dir, answerability_model=str(registry.path(version)),
                                       hosted_base_url=server.base_url, hosted_api_key="sk-test-123",
                                       hosted_model="gpt-test", **overrides), embedder=embedder)

    with FakeOpenAI("Comprehensive own-damage claims have a EUR 999 deductible [1].") as server:
        a = assistant(server)
        events = list(a.stream(q, backend="hosted"))
        off = assistant(server, answer_fallback="off").ask(q, backend="hosted")
    answer = [v for k, v in events if k == "answer"][0]
    quoted = a.ask(q, backend="extractive")
    assert not quoted.refused and quoted.fallback is None
    assert not answer.refused and answer.fallback == "extractive" and answer.backend == "hosted"
    assert answer.answer == quoted.answer and "999" not in answer.answer and answer.citations
    assert "".join(v for k, v in events if k == "token") == answer.answer  # only the quote went out
    rails = [g["rail"] for g in answer.guards]
    assert "fallback" in rails and rails.index("answerability") < rails.index("fallback")
    assert answer.to_json()["fallback"] == "extractive"
    assert off.refused and off.fallback is None and off.refusal_reason.startswith("output_guard")

    with FakeOpenAI("I cannot answer that from the company's documents; please call 0800 555 0142.") as server:
        declined = assistant(server).ask(q, backend="hosted")
    assert declined.refused and declined.fallback is None and not declined.citations


def test_hosted_follow_up_is_condensed_by_the_model(kb_store_dir, embedder):
    def reply(body):
        last = body["messages"][-1]["content"]
        return "What is the renters insurance deductible for bicycles?" if last.startswith("Rewrite") else "EUR 100 [1]."

    with FakeOpenAI(reply) as server:
        ans = _hosted_assistant(kb_store_dir, embedder, server).ask(
            "and for bicycles?", backend="hosted", history=[("What is the deductible on renters insurance?", "EUR 100 [1].")])
    assert ans.standalone_question == "What is the renters insurance deductible for bicycles?"
    assert server.requests[0]["messages"][0]["content"].startswith("Rewrite the last question")
