"""One harness for every backend: the same questions, through the same retrieval, rails and pipeline.

`run()` asks every case of an eval set to each backend and returns one record per (case, backend);
`summarize()` turns them into metrics with bootstrap 95% intervals; `compare()` gives paired A-vs-B differences.
The UI's compare page and bench/answers.py call these, not copies of them.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np

from assistant.evaluation.metrics import (cites_source, faithfulness, retrieval_rank, rouge_l, token_f1,
                                          unsupported_figures)
from assistant.schema import Answer
from assistant.session import Session

# Per-question metrics (means over the questions where they apply) and whether higher is better.
METRICS = {
    "answer_f1": True, "rouge_l": True, "semantic": True, "faithfulness": True, "citation_accuracy": True,
    "refusal_correct": True, "retrieval_hit@1": True, "retrieval_hit@5": True, "retrieval_mrr@10": True,
    "latency_ms": False,
}


@dataclass
class Record:
    id: str
    backend: str
    role: str
    question: str
    reference: str
    expected_refusal: bool | None  # None: unknown (e.g. a thumbs-down awaiting review)
    answer: str = ""
    refused: bool = False
    refusal_reason: str | None = None
    handoff: str | None = None
    fallback: str | None = None  # the backend that quoted the answer because the one asked failed the checks
    answer_f1: float | None = None
    rouge_l: float | None = None
    semantic: float | None = None
    faithfulness: float | None = None
    unsupported_figures: int = 0  # figures of the answer that none of its cited passages contains
    citation_accuracy: float | None = None
    refusal_correct: float | None = None
    retrieval_rank: int | None = None
    retrieval_hit_1: float | None = None
    retrieval_hit_5: float | None = None
    retrieval_mrr_10: float | None = None
    latency_ms: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    left_company: bool = False
    answerability: float | None = None  # the answerability model's probability (reliability plot)

    def metric(self, name: str):
        return getattr(self, name.replace("@", "_"), None) if name.startswith("retrieval") else getattr(self, name)

    def to_json(self) -> dict:
        return asdict(self)


def expected_refusal(case: dict, role: str) -> bool | None:
    if case.get("must_refuse") is None:
        return None
    return bool(case["must_refuse"] or (role == "customer" and case.get("customer_must_refuse")))


def cost(settings, backend: str, prompt_tokens: int, completion_tokens: int, latency_ms: float) -> float:
    """Hosted: the API's token prices; private: the serving machine's hourly price × time; extractive: nothing."""
    if backend == "hosted":
        return (prompt_tokens * settings.hosted_price_input_per_mtok + completion_tokens * settings.hosted_price_output_per_mtok) / 1e6
    if backend == "private":
        return settings.private_price_per_hour * latency_ms / 3.6e6
    return 0.0


def run(assistant, cases: list[dict], backends: list[str], role: str = "customer", progress: bool = True,
        on_progress=None) -> list[Record]:
    """Every case through every backend. `on_progress(done, total, backend)` lets a UI draw its own progress bar."""
    from tqdm.auto import tqdm

    retrieval = {}
    for case in cases:  # the same for every backend: computed once
        if case.get("source") and expected_refusal(case, role) is False:
            hits = assistant.retriever.retrieve(case["question"], role=role, k=10, threshold=-1.0)
            retrieval[case["id"]] = retrieval_rank(hits, case)
    records = []
    bar = tqdm(total=len(cases) * len(backends), desc="evaluating", unit="answer", disable=not progress)
    for backend in backends:
        gen = assistant.generator(backend)
        for case in cases:
            bar.set_postfix_str(backend)
            records.append(_score(assistant, case, backend, role, gen, retrieval))
            bar.update()
            if on_progress:
                on_progress(bar.n, bar.total, backend)
    bar.close()
    return records


def side_by_side(assistant, question: str, backends: list[str], role: str = "customer",
                 user_id: str = "compare") -> list[tuple[Answer, Record]]:
    """One question through each backend, scored as the batch evaluation scores it (no reference: the answer, its
    citations, verdicts, latency, tokens, cost and whether data left the company). The UI's compare page uses this."""
    case = {"id": "adhoc", "question": question}
    return [_answer_and_score(assistant, case, b, role, assistant.generator(b), {}, user_id) for b in backends]


def _score(assistant, case: dict, backend: str, role: str, gen, retrieval: dict) -> Record:
    return _answer_and_score(assistant, case, backend, role, gen, retrieval)[1]


def _answer_and_score(assistant, case: dict, backend: str, role: str, gen, retrieval: dict,
                      user_id: str | None = None) -> tuple[Answer, Record]:
    expected = expected_refusal(case, role)
    t0 = time.perf_counter()
    ans = assistant.ask(case["question"], role=role, backend=backend, session=Session(user_id=user_id or f"eval-{case['id']}"))
    latency = (time.perf_counter() - t0) * 1000
    usage = ans.usage or {}
    r = Record(id=case["id"], backend=backend, role=role, question=case["question"], reference=case.get("reference") or "",
               expected_refusal=expected, answer=ans.answer, refused=ans.refused, refusal_reason=ans.refusal_reason,
               handoff=ans.handoff, fallback=ans.fallback, latency_ms=latency, prompt_tokens=usage.get("prompt_tokens", 0),
               completion_tokens=usage.get("completion_tokens", 0), left_company=bool(getattr(gen, "leaves_company", False)),
               answerability=ans.answerability)
    r.cost_usd = cost(assistant.settings, backend, r.prompt_tokens, r.completion_tokens, latency)
    if expected is not None:
        r.refusal_correct = float(ans.refused == expected)
    if expected is False:
        if r.reference:
            r.answer_f1 = 0.0 if ans.refused else token_f1(ans.answer, r.reference)
            r.rouge_l = 0.0 if ans.refused else rouge_l(ans.answer, r.reference)
            r.semantic = 0.0 if ans.refused else float(np.dot(*assistant.embedder.embed([ans.answer, r.reference])))
        if case.get("source"):
            r.citation_accuracy = float(not ans.refused and cites_source(ans, case))
            rank = retrieval.get(case["id"])
            r.retrieval_rank = rank
            r.retrieval_hit_1 = float(rank is not None and rank <= 1)
            r.retrieval_hit_5 = float(rank is not None and rank <= 5)
            r.retrieval_mrr_10 = 1.0 / rank if rank else 0.0
    if ans.citations and not ans.refused:
        fetched = assistant.store.fetch([c.chunk_id for c in ans.citations])
        cited = [fetched[c.chunk_id][0].text for c in ans.citations if c.chunk_id in fetched]
        r.faithfulness = faithfulness(ans.answer, cited)
        r.unsupported_figures = unsupported_figures(ans.answer, cited)
    elif not ans.refused:
        r.unsupported_figures = unsupported_figures(ans.answer, [])
    return ans, r


def bootstrap_ci(values: np.ndarray, n: int = 1000, seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of the mean (seeded: the same inputs give the same interval)."""
    if len(values) == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(n, len(values)))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def summarize(records: list[Record]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for backend in dict.fromkeys(r.backend for r in records):
        rs = [r for r in records if r.backend == backend]
        m: dict = {"questions": len(rs)}
        for name in METRICS:
            vals = np.array([v for r in rs if (v := r.metric(name)) is not None], dtype=float)
            if name == "latency_ms":
                m["latency_p50_ms"] = float(np.percentile(vals, 50)) if len(vals) else None
                m["latency_p95_ms"] = float(np.percentile(vals, 95)) if len(vals) else None
            m[name] = {"mean": float(vals.mean()) if len(vals) else None, "ci95": bootstrap_ci(vals), "n": int(len(vals))}
        known = [r for r in rs if r.expected_refusal is not None]
        tp = sum(r.refused and r.expected_refusal for r in known)
        refused, expected = sum(r.refused for r in known), sum(r.expected_refusal for r in known)
        m["refusal_precision"] = tp / refused if refused else None  # of the refusals, the right ones
        m["refusal_recall"] = tp / expected if expected else None  # of the questions to refuse, those refused
        m["handoff_rate"] = sum(r.handoff is not None for r in rs) / len(rs)
        m["prompt_tokens"] = sum(r.prompt_tokens for r in rs)
        m["completion_tokens"] = sum(r.completion_tokens for r in rs)
        m["cost_usd"] = sum(r.cost_usd for r in rs)
        m["cost_usd_per_1000_questions"] = m["cost_usd"] / len(rs) * 1000
        m["data_left_company"] = any(r.left_company for r in rs)
        out[backend] = m
    return out


def compare(records: list[Record], a: str, b: str, top: int = 5) -> dict:
    """Paired differences (b − a) per metric over the questions both answered, with bootstrap 95% intervals, and
    the questions where the two disagree most."""
    ra = {r.id: r for r in records if r.backend == a}
    rb = {r.id: r for r in records if r.backend == b}
    ids = [i for i in ra if i in rb]
    diffs = {}
    for name, higher_better in METRICS.items():
        pairs = [(ra[i].metric(name), rb[i].metric(name)) for i in ids]
        d = np.array([y - x for x, y in pairs if x is not None and y is not None], dtype=float)
        diffs[name] = {"mean_diff": float(d.mean()) if len(d) else None, "ci95": bootstrap_ci(d), "n": int(len(d)),
                       "higher_is_better": higher_better}

    def gap(i):
        x, y = ra[i], rb[i]
        return (x.refused != y.refused) + abs((x.answer_f1 or 0) - (y.answer_f1 or 0)) + abs((x.citation_accuracy or 0) - (y.citation_accuracy or 0))

    worst = sorted(ids, key=gap, reverse=True)[:top]
    disagreements = [{"id": i, "question": ra[i].question, "gap": round(gap(i), 3),
                      a: {"answer": ra[i].answer, "refused": ra[i].refused, "f1": ra[i].answer_f1},
                      b: {"answer": rb[i].answer, "refused": rb[i].refused, "f1": rb[i].answer_f1}} for i in worst if gap(i) > 0]
    return {"a": a, "b": b, "questions": len(ids), "differences": diffs, "disagreements": disagreements}
