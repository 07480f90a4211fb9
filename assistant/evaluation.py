"""Scoring answers against `eval.jsonl`: shared by bench/answers.py, training's eval stage and (later) the UI.

A case is in scope (answered with a citation of its reference document/page or an accepted alternative), out of
scope (`must_refuse`: refused), or internal (answered for staff, refused for customers).
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter

import numpy as np

from assistant.pipeline import BEFORE_BACKEND

_TOKEN = re.compile(r"\w+")
_CITE = re.compile(r"\[\d+\]")


def load_cases(path) -> list[dict]:
    """The cases of an eval.jsonl file."""
    from pathlib import Path

    return [json.loads(ln) for ln in Path(path).read_text().splitlines() if ln.strip()]


def cites_source(answer, case: dict) -> bool:
    """A citation of the reference document (and page, where it has one) or of an accepted alternative."""
    accepted = [(case["source"], case["page"])] + [tuple(a) for a in case.get("alt_sources", [])]
    return any(c.source == s and (p is None or c.page == p) for c in answer.citations for s, p in accepted)


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD-style token F1 (lower-cased words, citation marks removed)."""
    pred = _TOKEN.findall(_CITE.sub(" ", prediction).lower())
    ref = _TOKEN.findall(reference.lower())
    common = sum((Counter(pred) & Counter(ref)).values())
    if not pred or not ref or not common:
        return 0.0
    p, r = common / len(pred), common / len(ref)
    return 2 * p * r / (p + r)


def evaluate(assistant, cases: list[dict], backend: str, verbose: bool = False, internal: bool = True) -> dict:
    rows: dict[str, list[bool]] = {"in_scope": [], "out_of_scope": [], "internal_staff": [], "internal_customer": []}
    f1s, latencies = [], []
    # Out-of-scope refusals split by who refused: retrieval (nothing relevant enough) or the backend itself.
    oos_reached_backend, oos_declined_by_backend = 0, 0
    for case in cases:
        runs = []
        if case["must_refuse"]:
            runs.append(("out_of_scope", "customer"))
        elif case["audience"] == "internal":
            if internal:
                runs += [("internal_staff", "staff"), ("internal_customer", "customer")]
        else:
            runs.append(("in_scope", "customer"))
        for group, role in runs:
            t0 = time.perf_counter()
            ans = assistant.ask(case["question"], role=role, backend=backend)
            latencies.append((time.perf_counter() - t0) * 1000)
            if group in ("in_scope", "internal_staff"):
                ok = not ans.refused and cites_source(ans, case)
                f1s.append(0.0 if ans.refused else token_f1(ans.answer, case["reference"]))
            else:
                ok = ans.refused
                if group == "out_of_scope" and (ans.refusal_reason or "").split(":")[0] not in BEFORE_BACKEND:
                    oos_reached_backend += 1
                    oos_declined_by_backend += ans.refused
            rows[group].append(ok)
            if verbose and not ok:
                cited = [(c.source, c.page) for c in ans.citations]
                print(f"  MISS [{group}] {case['id']} {case['question']!r}\n     -> refused={ans.refused} cited={cited}\n"
                      f"     {ans.answer[:200]!r}")
    result: dict = {g: (float(np.mean(v)) if v else None, len(v)) for g, v in rows.items()}
    result["answer_f1"] = float(np.mean(f1s)) if f1s else None
    result["out_of_scope_reaching_backend"] = oos_reached_backend
    result["out_of_scope_declined_by_backend"] = oos_declined_by_backend
    result["latency_p50_ms"] = float(np.percentile(latencies, 50)) if latencies else None
    result["latency_p95_ms"] = float(np.percentile(latencies, 95)) if latencies else None
    return result
