"""The reranker: trained by `python -m training reranker` into its registry, then reordering the retriever's
candidates in a real store, through settings, without ever widening what a role may see."""

from __future__ import annotations

import json

import pytest

from tests.conftest import SAMPLE_KB, make_settings


@pytest.fixture(scope="module")
def reranker(tmp_path_factory):
    from training.__main__ import main

    reg = tmp_path_factory.mktemp("rerankers")
    # Three passes over the sample KB's pairs: enough to see the objective move, seconds on 2 cores.
    assert main(["--models-dir", str(reg), "reranker", "--set", "epochs=3", "--set", "batch_size=8",
                 "--set", "negatives=2", "--set", "lr=1e-4"]) == 0
    version = json.loads((reg / "audit.jsonl").read_text().splitlines()[0])["version"]
    return reg, version


def test_training_registers_a_hugging_face_cross_encoder_that_learned_its_pairs(reranker, capsys):
    from sentence_transformers.cross_encoder import CrossEncoder
    from transformers import AutoModelForSequenceClassification

    from assistant.settings import get_settings
    from training.__main__ import main
    from training.reranker import rerank_recall
    from training.retriever import kb_pairs

    reg, version = reranker
    meta = json.loads((reg / version / "metadata.json").read_text())
    m = meta["metrics"]
    assert meta["status"] == "ready" and m["sources"]["kb"] >= 15 and m["mined"] == m["questions"] and m["steps"] > 0
    folder = reg / version / "model"
    hf = AutoModelForSequenceClassification.from_pretrained(folder)  # plain transformers loads it: one logit
    assert hf.config.num_labels == 1

    # On the pairs it trained on, the positive now beats passages of other sections far more often than the
    # untrained head (the same base model with a fresh classifier) ranks it first.
    pairs = kb_pairs([SAMPLE_KB], [])[:20]
    passages = [p["passage"] for p in pairs]
    cands = [[p["passage"]] + ([x for x in passages if x != p["passage"]] * 2)[i:i + 4] for i, p in enumerate(pairs)]
    golds = [{p["passage"]} for p in pairs]
    questions = [p["question"] for p in pairs]
    trained = rerank_recall(CrossEncoder(str(folder), device="cpu"), questions, [c[::-1] for c in cands], golds)
    fresh = rerank_recall(CrossEncoder(get_settings().embedding_model_path, num_labels=1, device="cpu"), questions,
                          [c[::-1] for c in cands], golds)
    assert trained["first_stage_recall@1"] == 0.0  # the gold passage put last: only the scores can lift it
    assert trained["reranked_recall@1"] >= 0.5 and trained["reranked_recall@1"] > fresh["reranked_recall@1"] + 0.25, (trained, fresh)

    assert main(["--models-dir", str(reg), "rerankers", "list"]) == 0
    assert version in capsys.readouterr().out


def test_a_second_round_starts_from_a_reranker_version_and_a_wrong_name_fails_before_any_work(reranker, tmp_path,
                                                                                             capsys):
    from training.__main__ import main
    from training.registry import Registry
    from training.reranker import resolve_base

    reg, version = reranker
    embedders = Registry(tmp_path / "embedders", "embedders")
    # `--base <reranker version>` continues training that reranker (rounds over a large pair set), not the stock model.
    assert resolve_base(version, Registry(reg, "rerankers"), embedders) == str(reg / version / "model")
    versions = sorted(p.name for p in reg.iterdir() if p.is_dir())
    assert main(["--models-dir", str(reg), "reranker", "--base", "no-such-version"]) == 2
    assert "base 'no-such-version' is neither a folder nor a version" in capsys.readouterr().err
    assert main(["--models-dir", str(reg), "reranker", "--miner", "no-such-version"]) == 2
    assert "see `python -m training embedders list`" in capsys.readouterr().err
    assert sorted(p.name for p in reg.iterdir() if p.is_dir()) == versions  # nothing half-made in the registry


def test_reranking_reorders_fused_candidates_within_the_role(reranker, kb_store_dir, embedder):
    from assistant.pipeline import Assistant
    from assistant.rerank import RerankerError, get_reranker
    from assistant.retrieve import HybridRetriever
    from assistant.store import KnowledgeStore

    reg, version = reranker
    settings = make_settings(kb_store_dir, reranker_model=version, rerankers_dir=reg, rerank_candidates=12)
    store = KnowledgeStore.from_settings(settings)
    retriever = HybridRetriever(store, embedder, settings)  # the reranker comes from settings
    assert retriever.reranker is get_reranker(version, reg, settings.cpu_bf16)
    question = "How long do I have to report a car accident?"
    fused = retriever.retrieve(question, role="customer", k=12, rerank=False)
    reranked = retriever.retrieve(question, role="customer", k=5)
    assert len(reranked) == 5 and all(h.rerank_score is not None for h in reranked)
    scores = [h.rerank_score for h in reranked]
    assert scores == sorted(scores, reverse=True)
    assert {h.chunk.chunk_id for h in reranked} <= {h.chunk.chunk_id for h in fused}  # reorders, never adds
    internal_q = "When does an agent escalate a complaint to a team leader?"
    assert any(h.chunk.audience == "internal" for h in retriever.retrieve(internal_q, role="staff", k=10))
    assert all(h.chunk.audience == "public" for h in retriever.retrieve(internal_q, role="customer", k=10))
    # Every candidate was scored, and the top 5 are the 5 best of them.
    all_scores = retriever.reranker.score(question, [h.chunk.text for h in fused])
    assert sorted(scores, reverse=True) == pytest.approx(sorted(all_scores, reverse=True)[:5], abs=1e-4)
    assert reranked[0].to_json()["rerank_score"] == pytest.approx(scores[0], abs=1e-4)

    ans = Assistant(settings, embedder=embedder).ask(question)  # the whole pipeline runs with it
    assert not ans.refused and ans.citations

    with pytest.raises(RerankerError, match="not found"):
        HybridRetriever(store, embedder, make_settings(kb_store_dir, reranker_model="no-such-version",
                                                       rerankers_dir=reg))


def test_a_missing_reranker_is_a_clear_error_in_the_cli_the_api_and_the_ui(monkeypatch, kb_store_dir, tmp_path, capsys):
    from streamlit.testing.v1 import AppTest

    from assistant.__main__ import main
    from assistant.settings import get_settings
    from tests.conftest import ROOT

    monkeypatch.setenv("ASSISTANT_STORE_DIR", str(kb_store_dir))
    monkeypatch.setenv("ASSISTANT_RERANKER_MODEL", "no-such-version")
    monkeypatch.setenv("ASSISTANT_RERANKERS_DIR", str(tmp_path / "rerankers"))
    monkeypatch.setenv("ASSISTANT_API_KEYS", "a-key:customer")
    get_settings.cache_clear()
    try:
        assert main(["retrieve", "How do I make a claim?"]) == 2
        assert main(["serve", "--port", "8799"]) == 2  # refused before uvicorn starts
        err = capsys.readouterr().err
        assert err.count("ASSISTANT_RERANKER_MODEL: reranker 'no-such-version' not found") == 2, err

        at = AppTest.from_file(str(ROOT / "ui" / "app.py"), default_timeout=180).run()
        assert not at.exception and "no-such-version" in at.error[0].value
    finally:
        get_settings.cache_clear()
