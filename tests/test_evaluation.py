"""The evaluation harness: every backend on the same questions, through the same retrieval and rails; the hosted
backend against a real local HTTP server speaking the OpenAI protocol."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from tests.conftest import SAMPLE_KB
from tests.openai_server import FakeOpenAI


def test_metrics_are_what_they_say():
    from assistant.evaluation.harness import bootstrap_ci
    from assistant.evaluation.metrics import faithfulness, lcs, rouge_l, token_f1

    assert lcs("a b c d".split(), "a c d e".split()) == 3
    assert rouge_l("the excess is EUR 300 [1]", "the excess is EUR 300") == 1.0
    assert 0 < rouge_l("EUR 300 is the excess", "the excess is EUR 300") < token_f1("EUR 300 is the excess", "the excess is EUR 300")
    passage = "Home Insurance.\nThe standard excess is EUR 300\nper claim. Pets are not covered."
    assert faithfulness("The standard excess is EUR 300 per claim [1].", [passage]) == 1.0
    assert faithfulness("The standard excess is EUR 300 per claim [1]. Dragons are covered everywhere [1].", [passage]) == 0.5
    assert faithfulness("Anything.", []) is None
    v = np.array([0.0, 1.0, 1.0, 1.0])
    assert bootstrap_ci(v) == bootstrap_ci(v) and bootstrap_ci(v)[0] <= 0.75 <= bootstrap_ci(v)[1]


@pytest.fixture
def eval_set(tmp_path):
    cases = [json.loads(l) for l in (SAMPLE_KB / "eval.jsonl").read_text().splitlines()]
    pick = [c for c in cases if not c["must_refuse"] and c["audience"] == "public"][:6]
    pick += [c for c in cases if c["must_refuse"]][:2] + [c for c in cases if c["audience"] == "internal"][:1]
    f = tmp_path / "set.jsonl"
    f.write_text("\n".join(json.dumps(c) for c in pick) + "\n")
    return f, pick


def _grounded_reply(body):
    """A well-behaved hosted model: the first sentence of passage 1, cited."""
    user = body["messages"][-1]["content"]
    m = re.search(r'<context n="1"[^>]*>\n(?:[^\n]*\n)?(.+?[.!?])(?:\s|$)', user, re.S)
    return f"{m.group(1).replace(chr(10), ' ')} [1]" if m else "I cannot answer that from the documents."


def test_evaluate_compares_backends_with_intervals(monkeypatch, kb_copy, eval_set, tmp_path):
    from assistant.__main__ import main
    from assistant.settings import get_settings

    set_file, cases = eval_set
    with FakeOpenAI(_grounded_reply) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        get_settings.cache_clear()
        out1, out2 = tmp_path / "run1", tmp_path / "run2"
        args = ["evaluate", "--set", str(set_file), "--backends", "extractive,hosted", "--store", str(kb_copy), "--quiet"]
        assert main(args + ["--out", str(out1)]) == 0
        assert main(args + ["--out", str(out2), "--backends", "extractive"]) == 0
    get_settings.cache_clear()
    assert server.requests  # the hosted backend really went over HTTP

    for name in ("report.md", "results.json", "results.csv", "metrics.png", "latency.png"):
        assert (out1 / name).stat().st_size > 0
    res = json.loads((out1 / "results.json").read_text())
    ext, hosted = res["summary"]["extractive"], res["summary"]["hosted"]
    assert ext["questions"] == hosted["questions"] == len(cases)
    assert hosted["data_left_company"] is True and ext["data_left_company"] is False
    assert hosted["prompt_tokens"] > 0 and hosted["cost_usd"] > 0 and ext["cost_usd"] == 0
    assert ext["refusal_recall"] == 1.0 and ext["citation_accuracy"]["mean"] > 0.5
    assert ext["faithfulness"]["mean"] == 1.0  # the extractive backend only quotes
    lo, hi = ext["answer_f1"]["ci95"]
    assert lo <= ext["answer_f1"]["mean"] <= hi
    # The same retrieval for every backend.
    assert ext["retrieval_hit@5"] == hosted["retrieval_hit@5"]

    comp = res["comparisons"][0]
    assert (comp["a"], comp["b"]) == ("extractive", "hosted")
    from assistant.evaluation.harness import METRICS

    assert set(comp["differences"]) == set(METRICS)  # an interval for every metric
    report = (out1 / "report.md").read_text()
    assert "hosted vs extractive" in report and "data left the company" in report
    rows = (out1 / "results.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 * len(cases)

    # Deterministic backends give the same numbers again (latency aside).
    again = json.loads((out2 / "results.json").read_text())["summary"]["extractive"]
    for metric in METRICS:
        if metric != "latency_ms":
            assert again[metric] == ext[metric], metric


def test_feedback_export_is_an_input_set(kb_copy, embedder, tmp_path):
    from assistant.evaluation import load_cases
    from assistant.evaluation.harness import run, summarize
    from assistant.pipeline import Assistant
    from assistant.session import Session
    from tests.conftest import make_settings

    a = Assistant(make_settings(kb_copy), embedder=embedder)
    up = a.ask("What is the deductible for escape of water claims?", session=Session(user_id="u"))
    down = a.ask("How long is the cooling-off period?", session=Session(user_id="u"))
    a.audit.rate(up.interaction_id, 1)
    a.audit.rate(down.interaction_id, -1, "too short")
    a.audit.export(tmp_path / "fb")
    cases = load_cases(tmp_path / "fb" / "eval_cases.jsonl")
    records = run(a, cases, ["extractive"], progress=False)
    s = summarize(records)["extractive"]
    assert s["questions"] == 2 and s["answer_f1"]["n"] == 1  # the thumbs-down case awaits review: not scored
    assert records[0].answer_f1 == 1.0 and records[0].citation_accuracy == 1.0
