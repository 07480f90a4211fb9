"""Scoring answers against `eval.jsonl`: shared by bench/answers.py, training's eval stage, `python -m assistant
evaluate` and the UI. Metrics live in metrics.py, the harness (every backend, same questions) in harness.py.

A case is in scope (answered with a citation of its reference document/page or an accepted alternative), out of
scope (`must_refuse`: refused), or internal (answered for staff, refused for customers).
"""

from __future__ import annotations

import json

import numpy as np

from assistant.evaluation.metrics import cites_source, token_f1  # noqa: F401  (public API)
from assistant.pipeline import BEFORE_BACKEND



def load_cases(path) -> list[dict]:
    """The cases of an eval.jsonl file."""
    from pathlib import Path

    return [json.loads(ln) for ln in Path(path).read_text().splitlines() if ln.strip()]


def group_of(case: dict, role: str) -> str:
    if case["must_refuse"]:
        return "out_of_scope"
    if case.get("audience") == "internal":
        return f"internal_{role}"
    return "in_scope"


def evaluate(assistant, cases: list[dict], backend: str, verbose: bool = False, internal: bool = True) -> dict:
    """The sample set's headline figures, by group: in-scope answered with a correct citation, out-of-scope refused,
    internal answered for staff and refused for customers. Scored by the harness (one implementation)."""
    from assistant.evaluation.harness import run

    if not internal:
        cases = [c for c in cases if c.get("audience") != "internal" or c["must_refuse"]]
    staff_cases = [c for c in cases if c.get("audience") == "internal" and not c["must_refuse"]]
    scored = [(r, c, "customer") for r, c in zip(run(assistant, cases, [backend], "customer", progress=False), cases)]
    scored += [(r, c, "staff") for r, c in zip(run(assistant, staff_cases, [backend], "staff", progress=False), staff_cases)]
    rows: dict[str, list[bool]] = {"in_scope": [], "out_of_scope": [], "internal_staff": [], "internal_customer": []}
    # Out-of-scope refusals split by who refused: a rail or retrieval (before any backend ran), or the backend itself.
    oos_reached_backend = oos_declined_by_backend = 0
    for r, case, role in scored:
        group = group_of(case, role)
        ok = bool(r.citation_accuracy) if group in ("in_scope", "internal_staff") else r.refused
        if group == "out_of_scope" and (r.refusal_reason or "").split(":")[0] not in BEFORE_BACKEND:
            oos_reached_backend += 1
            oos_declined_by_backend += r.refused
        rows[group].append(ok)
        if verbose and not ok:
            print(f"  MISS [{group}] {case['id']} {case['question']!r}\n     -> refused={r.refused}\n     {r.answer[:200]!r}")
    f1s = [r.answer_f1 for r, c, role in scored if group_of(c, role) in ("in_scope", "internal_staff") and r.answer_f1 is not None]
    latencies = [r.latency_ms for r, _, _ in scored]
    result: dict = {g: (float(np.mean(v)) if v else None, len(v)) for g, v in rows.items()}
    result["answer_f1"] = float(np.mean(f1s)) if f1s else None
    faithful = [r.faithfulness for r, _, _ in scored if r.faithfulness is not None]
    result["faithfulness"] = float(np.mean(faithful)) if faithful else None
    result["unsupported_figures"] = sum(r.unsupported_figures for r, _, _ in scored)
    result["out_of_scope_reaching_backend"] = oos_reached_backend
    result["out_of_scope_declined_by_backend"] = oos_declined_by_backend
    result["latency_p50_ms"] = float(np.percentile(latencies, 50)) if latencies else None
    result["latency_p95_ms"] = float(np.percentile(latencies, 95)) if latencies else None
    return result


def breakdown(assistant, cases: list[dict], backend: str) -> dict:
    """A customer-voice set's figures: by category (public answered with a correct citation, internal refused for
    customers and answered for staff, not-answerable refused), by voice, by phenomenon, paraphrase consistency
    (groups decided the same way in all their phrasings) and latency. Scored by the harness."""
    from assistant.evaluation.harness import run

    customer = dict(zip((c["id"] for c in cases), run(assistant, cases, [backend], "customer", progress=False)))
    internal = [c for c in cases if c.get("category") == "internal"]
    staff = dict(zip((c["id"] for c in internal), run(assistant, internal, [backend], "staff", progress=False)))

    def share(values) -> dict:
        values = list(values)
        return {"rate": float(np.mean(values)) if values else None, "n": len(values)}

    public = [c for c in cases if c.get("category") == "public"]
    unanswerable = [c for c in cases if c["must_refuse"]]
    answered_ok = {c["id"]: bool(customer[c["id"]].citation_accuracy) for c in public}
    out: dict = {
        "public_answered_cited": share(answered_ok.values()),
        "public_answer_f1": float(np.mean([customer[c["id"]].answer_f1 or 0.0 for c in public])) if public else None,
        "internal_refused_for_customers": share(customer[c["id"]].refused for c in internal),
        "internal_answered_for_staff": share(bool(staff[c["id"]].citation_accuracy) for c in internal),
        "internal_f1_for_staff": float(np.mean([staff[c["id"]].answer_f1 or 0.0 for c in internal])) if internal else None,
        "unanswerable_refused": share(customer[c["id"]].refused for c in unanswerable),
    }
    for cat in ("unanswerable_near", "unanswerable_off"):
        out[f"{cat}_refused"] = share(customer[c["id"]].refused for c in cases if c.get("category") == cat)
    answered = [r for r in [*customer.values(), *staff.values()] if not r.refused]
    faithful = [r.faithfulness for r in answered if r.faithfulness is not None]
    out["faithfulness"] = float(np.mean(faithful)) if faithful else None
    out["unsupported_figures"] = sum(r.unsupported_figures for r in answered)
    # answers the extractive fallback quoted because the backend's own failed the checks (Settings.answer_fallback)
    out["fallback_answers"] = share(r.fallback is not None for r in answered)
    out["unsupported_answers"] = [{"question": r.question, "answer": r.answer[:300]} for r in answered
                                  if r.unsupported_figures]  # the target is none: each one is read
    refusals = [customer[c["id"]] for c in cases if customer[c["id"]].refused]
    out["refusal_precision"] = (sum(bool(r.expected_refusal) for r in refusals) / len(refusals)) if refusals else None
    out["by_voice"] = {v: share(answered_ok[c["id"]] for c in public if c.get("voice") == v)
                       for v in sorted({c.get("voice") for c in public})}
    out["by_phenomenon"] = {ph: share(answered_ok[c["id"]] for c in public if ph in (c.get("phenomena") or []))
                            for ph in sorted({p for c in public for p in (c.get("phenomena") or [])})}
    groups: dict[str, list[bool]] = {}
    for c in cases:
        if c.get("group"):
            groups.setdefault(c["group"], []).append(customer[c["id"]].refused)
    out["paraphrase_consistency"] = share(len(set(v)) == 1 for v in groups.values())
    latencies = [r.latency_ms for r in customer.values()]
    out["latency_p50_ms"] = float(np.percentile(latencies, 50)) if latencies else None
    out["latency_p95_ms"] = float(np.percentile(latencies, 95)) if latencies else None
    out["misses"] = [{"id": c["id"], "question": c["question"], "answer": customer[c["id"]].answer[:160],
                      "refused": customer[c["id"]].refused, "reason": customer[c["id"]].refusal_reason}
                     for c in public if not answered_ok[c["id"]]]
    out["wrongly_answered"] = [{"id": c["id"], "question": c["question"], "answer": customer[c["id"]].answer[:160]}
                               for c in [*unanswerable, *internal] if not customer[c["id"]].refused]
    out["staff_misses"] = [{"id": c["id"], "question": c["question"], "answer": staff[c["id"]].answer[:160],
                            "reason": staff[c["id"]].refusal_reason}
                           for c in internal if not staff[c["id"]].citation_accuracy]
    return out
