"""Answer quality per backend on data/sample_kb/eval.jsonl.

    python bench/answers.py [--store DIR] [--backends extractive,hosted,private] [--verbose]

For each available backend: share of in-scope questions answered with a citation to the right document (and page,
where the reference has one), share of out-of-scope questions refused, internal questions answered for staff and
refused for customers, and latency. The sample KB is ingested into the store first (idempotent).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--store", type=Path, default=ROOT / ".bench" / "sample_kb")
    p.add_argument("--eval", type=Path, default=ROOT / "data" / "sample_kb" / "eval.jsonl")
    p.add_argument("--backends", default="extractive,hosted,private")
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args()

    from assistant.evaluation import evaluate, load_cases
    from assistant.pipeline import Assistant
    from assistant.settings import get_settings
    from ingest.pipeline import Ingestor

    settings = get_settings().model_copy(update={"store_dir": args.store})
    assistant = Assistant(settings)
    summary = Ingestor(assistant.store, settings, assistant.embedder, progress=False).ingest([ROOT / "data" / "sample_kb"])
    print(f"ingest: {summary.line()}")
    cases = load_cases(args.eval)
    available = assistant.backends()
    out = {}
    for backend in args.backends.split(","):
        ok, why = available.get(backend, (False, "unknown backend"))
        if not ok:
            print(f"\n{backend}: skipped ({why})")
            continue
        r = evaluate(assistant, cases, backend, args.verbose)
        out[backend] = r
        print(f"\n{backend}:")
        print(f"  in-scope answered with a correct citation : {r['in_scope'][0]:.1%} of {r['in_scope'][1]}")
        print(f"  out-of-scope refused                       : {r['out_of_scope'][0]:.1%} of {r['out_of_scope'][1]}")
        print(f"  internal answered for staff (cited)        : {r['internal_staff'][0]:.1%} of {r['internal_staff'][1]}")
        print(f"  internal refused for customers             : {r['internal_customer'][0]:.1%} of {r['internal_customer'][1]}")
        print(f"  answer token F1 vs reference (in scope)    : {r['answer_f1']:.3f}")
        print(f"  latency p50 / p95                          : {r['latency_p50_ms']:.0f} / {r['latency_p95_ms']:.0f} ms")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
