"""The domain-tuned retriever: training pairs without evaluation leakage, a registered embedding-model version, and
switching a live store to it (new collections, atomic swap, the old ones kept until dropped)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import SAMPLE_KB, make_settings


def test_kb_pairs_never_contain_evaluation_questions():
    from training.retriever import _norm, kb_pairs

    questions = [json.loads(l)["question"] for l in (SAMPLE_KB / "eval.jsonl").read_text().splitlines()]
    pairs = kb_pairs([SAMPLE_KB], questions)
    assert len(pairs) >= 15 and all(p["passage"] for p in pairs)
    asked = {_norm(q) for q in questions}
    assert not [p for p in pairs if _norm(p["question"]) in asked]
    # Without the exclusion some FAQ questions would be in: the filter is doing work.
    assert len(kb_pairs([SAMPLE_KB], [])) > len(pairs)


def test_split_matches_the_benchmark_samples():
    from training.retriever import split_insuranceqa

    qs = [{"question_id": f"q{i}"} for i in range(3000)]
    train, val, test = split_insuranceqa(qs)
    ids = lambda xs: {q["question_id"] for q in xs}  # noqa: E731
    assert len(test) == 1000 and len(val) == 500 and len(train) == 1500
    assert not ids(train) & ids(test) and not ids(train) & ids(val) and not ids(val) & ids(test)
    import random

    assert ids(test) == ids(random.Random(0).sample(qs, 1000))  # what bench/retrieval.py samples


def test_insuranceqa_pairs_first_or_every_gold_answer_never_a_held_out_question(tmp_path):
    from training.retriever import insuranceqa_pairs, split_insuranceqa

    questions = [{"question_id": f"q{i}", "question": f"question {i}?", "answer_ids": [f"a{i}", f"b{i}"]}
                 for i in range(1600)]
    (tmp_path / "questions_dev.jsonl").write_text("\n".join(json.dumps(q) for q in questions))
    (tmp_path / "answers.jsonl").write_text("\n".join(json.dumps({"answer_id": a, "text": f"answer {a}"})
                                                       for q in questions for a in q["answer_ids"]))
    first, val, pool = insuranceqa_pairs(tmp_path)
    every, _, _ = insuranceqa_pairs(tmp_path, all_answers=True)
    _, _, test = split_insuranceqa(questions)
    held_out = {q["question"] for q in val + test}
    assert len(first) == 100 and len(every) == 200 and len(pool) == 3200
    number = lambda p: p["question"].split()[1].rstrip("?")  # noqa: E731
    assert all(p["passage"] == f"answer a{number(p)}" for p in first)  # the first gold answer
    assert {(number(p), p["passage"]) for p in every} == {(number(p), f"answer {x}{number(p)}") for p in every for x in "ab"}
    assert all(p["gold"] == {f"a{number(p)}", f"b{number(p)}"} for p in every)  # mining never picks a gold answer
    assert not {p["question"] for p in every} & held_out


@pytest.fixture(scope="module")
def tuned_model(tmp_path_factory):
    from training.__main__ import main

    reg = tmp_path_factory.mktemp("embedders")
    assert main(["--models-dir", str(reg), "retriever", "--set", "max_steps=2", "--set", "batch_size=8"]) == 0
    version = json.loads((reg / "audit.jsonl").read_text().splitlines()[0])["version"]
    return reg, version


def test_switching_a_store_to_the_tuned_model(tuned_model, kb_copy, embedder, capsys):
    from assistant.pipeline import Assistant
    from assistant.store import KnowledgeStore
    from ingest.__main__ import main as ingest_main
    from ingest.pipeline import Ingestor

    reg, version = tuned_model
    meta = json.loads((reg / version / "metadata.json").read_text())
    assert meta["status"] == "ready" and meta["metrics"]["steps"] == 2 and meta["metrics"]["sources"]["kb"] > 0
    model = reg / version / "model"

    before = KnowledgeStore(kb_copy)
    old, chunks = before.collection_name, before.count()
    assert ingest_main(["--store", str(kb_copy), "--switch-embedding", str(model), "--quiet"]) == 0
    after = KnowledgeStore(kb_copy)
    assert after.collection_name != old and after.count() == chunks
    assert after.embedding_model == str(model.resolve())
    sets = {c["name"]: c for c in after.collection_sets()}
    assert sets[after.collection_name]["live"] and sets[old]["chunks"] == chunks  # the old one is kept

    # Queries are embedded with the store's model, whatever the caller's default.
    a = Assistant(make_settings(kb_copy))
    assert a.embedder.model_path == str(model.resolve())
    ans = a.ask("What is the deductible for escape of water claims?")
    assert not ans.refused and ans.citations[0].source == "home-insurance.md"

    # Nothing changed in the documents: re-ingesting embeds nothing.
    summary = Ingestor(after, make_settings(kb_copy), progress=False).ingest([SAMPLE_KB])
    assert summary.ok and summary.chunks_embedded == 0
    with pytest.raises(ValueError, match="switch models"):
        Ingestor(after, make_settings(kb_copy), embedder, progress=False)  # vectors of two models never mix

    assert ingest_main(["--store", str(kb_copy), "--drop-collection", after.collection_name]) == 2  # live: refused
    assert ingest_main(["--store", str(kb_copy), "--drop-collection", old, "--collections"]) == 0
    assert old not in {c["name"] for c in KnowledgeStore(kb_copy).collection_sets()}


def test_fast_encoder_is_a_shallower_student(tmp_path):
    from assistant.embeddings import Embedder
    from training.__main__ import main

    reg = tmp_path / "embedders"
    assert main(["--models-dir", str(reg), "fast-encoder", "--method", "distill", "--set", "max_steps=2",
                 "--set", "batch_size=8", "--set", "layers=[0,3]"]) == 0
    (version,) = [p.name for p in reg.iterdir() if p.is_dir()]
    meta = json.loads((reg / version / "metadata.json").read_text())
    m = meta["metrics"]
    assert meta["status"] == "ready" and m["layers"] == [0, 3] and m["objective"] == "pairs" and m["examples"] >= 20
    assert m["texts_per_s_student"] > 0 and m["speedup"] > 0 and -1 <= m["cosine_to_teacher"] <= 1
    config = json.loads((reg / version / "model" / "config.json").read_text())
    assert config["num_hidden_layers"] == 2  # saved in Hugging Face format, loadable by anything
    e = Embedder(str(reg / version / "model"))
    v = e.embed(["How do I make a claim?"])
    assert v.shape == (1, 384) and abs(float((v ** 2).sum()) - 1) < 1e-4


def test_fast_encoder_onnx_int8_keeps_the_teachers_vectors_and_serves_a_store(tmp_path):
    """The default fast encoder: the teacher exported to ONNX, fused and quantized; the store runs on it."""
    import numpy as np
    from sentence_transformers import SentenceTransformer

    from assistant.embeddings import Embedder
    from assistant.onnx_encoder import ONNX_FILE
    from assistant.retrieve import HybridRetriever
    from assistant.settings import get_settings
    from assistant.store import KnowledgeStore
    from ingest.pipeline import Ingestor
    from training.__main__ import main

    reg = tmp_path / "embedders"
    assert main(["--models-dir", str(reg), "fast-encoder"]) == 0
    (version,) = [p.name for p in reg.iterdir() if p.is_dir()]
    meta = json.loads((reg / version / "metadata.json").read_text())
    m = meta["metrics"]
    assert meta["status"] == "ready" and m["method"] == "onnx-int8" and m["max_seq_length"] == 128
    assert m["cosine_to_teacher"] > 0.98 and m["texts_per_s_student"] > 0
    folder = reg / version / "model"
    assert (folder / ONNX_FILE).stat().st_size < 40e6  # int8: a quarter of the fp32 weights (90 MB)
    assert (folder / "config.json").exists() and (folder / "tokenizer.json").exists()  # still a Hugging Face folder

    fast = Embedder(str(folder))
    assert type(fast._model).__name__ == "OnnxSentenceEncoder"
    texts = ["How do I make a claim?", "Is flood damage covered by my home policy?", "storm"]
    teacher = SentenceTransformer(get_settings().embedding_model_path, device="cpu")
    teacher.max_seq_length = 128
    cos = np.sum(fast.embed(texts) * teacher.encode(texts, normalize_embeddings=True), axis=1)
    assert cos.min() > 0.97, cos

    settings = make_settings(tmp_path / "store")
    store = KnowledgeStore(settings.store_dir, settings.collection)
    assert Ingestor(store, settings, fast, progress=False).ingest([SAMPLE_KB]).ok
    hits = HybridRetriever(store, fast, settings).retrieve("How do I report a car accident?", role="customer")
    assert hits and any("claim" in (h.chunk.doc_id + h.chunk.text).lower() for h in hits[:3])
