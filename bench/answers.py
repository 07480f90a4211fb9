"""Answer quality per backend: the customer-voice set's dev and test splits, and the regression set eval.jsonl.

    python bench/answers.py [--store DIR] [--backends extractive,hosted,private] [--sets dev,dev2,test,holdout,regression]
                            [--json FILE] [--verbose] [--every K]

Two more backend names, for Solution B's comparisons: `base` (the promoted version's open base, not fine-tuned,
given the same prompt, rails and grounded decoding) and `private-free` (the promoted model without grounded decoding).

Customer-voice splits (data/eval/customer_voice.{dev,test}.jsonl): public questions answered with a citation of the
right document (and page), answer token F1, internal questions refused for customers and answered for staff,
not-answerable questions refused (near the domain and off it), refusal precision, the same by voice and by
phenomenon (synonyms, negations, two facts, everyday questions), paraphrase consistency (groups decided the same
way in all three phrasings) and latency. Thresholds and models are fitted on dev: test is the figure to report,
dev beside it. `dev2` (customer_voice.dev2.jsonl) is a second dev split nothing learns from or is calibrated on: it
chooses between versions and settings now that half of dev is learned from. The regression set (eval.jsonl) keeps
its own figures. `holdout` (customer_voice.holdout.jsonl) was written blind — by writers who read only the documents,
after every setting it is reported under had been chosen — and is only ever reported: nothing is chosen, tuned or
calibrated on it, and its failures are not read to mend them. The sample KB is ingested first (idempotent).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SETS = {"dev": ROOT / "data" / "eval" / "customer_voice.dev.jsonl",
        "dev2": ROOT / "data" / "eval" / "customer_voice.dev2.jsonl",
        "test": ROOT / "data" / "eval" / "customer_voice.test.jsonl",
        "holdout": ROOT / "data" / "eval" / "customer_voice.holdout.jsonl",
        "regression": ROOT / "data" / "sample_kb" / "eval.jsonl"}


def _pct(x: dict) -> str:
    return f"{x['rate']:.1%} of {x['n']}" if x["rate"] is not None else "–"


def print_breakdown(name: str, r: dict, verbose: bool) -> None:
    print(f"  [{name}]")
    print(f"    public answered with a correct citation : {_pct(r['public_answered_cited'])}")
    print(f"    public answer token F1                  : {r['public_answer_f1']:.3f}")
    print(f"    internal refused for customers          : {_pct(r['internal_refused_for_customers'])}")
    print(f"    internal answered for staff (cited)     : {_pct(r['internal_answered_for_staff'])}")
    print(f"    not answerable refused                  : {_pct(r['unanswerable_refused'])}"
          f"  (near {_pct(r['unanswerable_near_refused'])}, off {_pct(r['unanswerable_off_refused'])})")
    print(f"    refusal precision                       : {r['refusal_precision'] or 0:.3f}")
    print(f"    faithfulness / figures not in citations : {r['faithfulness'] or 0:.3f} / {r['unsupported_figures']}")
    print(f"    paraphrase consistency                  : {_pct(r['paraphrase_consistency'])}")
    if r.get("fallback_answers", {}).get("rate"):
        print(f"    answers quoted by the fallback          : {_pct(r['fallback_answers'])} (of those answered)")
    print("    by voice (public answered, cited)       : " + ", ".join(f"{v} {_pct(x)}" for v, x in r["by_voice"].items()))
    print("    by phenomenon                           : " + ", ".join(f"{v} {_pct(x)}" for v, x in r["by_phenomenon"].items()))
    print(f"    latency p50 / p95                       : {r['latency_p50_ms']:.0f} / {r['latency_p95_ms']:.0f} ms")
    for m in r.get("unsupported_answers", []):
        print(f"    FIGURE NOT IN ITS CITED PASSAGES {m['question']!r} -> {m['answer']!r}")
    if verbose:
        for m in r["misses"]:
            print(f"    MISS {m['id']} {m['question']!r} -> {m['reason'] or m['answer'][:100]!r}")
        for m in r["wrongly_answered"]:
            print(f"    ANSWERED {m['id']} {m['question']!r} -> {m['answer'][:100]!r}")
        for m in r.get("staff_misses", []):
            print(f"    STAFF MISS {m['id']} {m['question']!r} -> {m['reason'] or m['answer'][:100]!r}")


def register_comparisons(assistant, settings, names: list[str]) -> None:
    """`base`: the promoted private version's open base with that version's prompt; `private-free`: the promoted
    model decoding without the figure constraint."""
    import json as _json

    from assistant.generators.private import PROMPT_FILE, PrivateGenerator, promoted_model_path

    path = promoted_model_path(settings)
    if path is None or not (path / PROMPT_FILE).exists():
        return
    if "private-free" in names:
        assistant.register("private-free", PrivateGenerator(settings.model_copy(update={"private_grounded_decoding": False})))
    base_file = path.parent / "base.json"
    if "base" in names and base_file.exists():
        base = _json.loads(base_file.read_text())["path"]
        assistant.register("base", PrivateGenerator(settings.model_copy(update={"private_model_path": base}),
                                                    prompt=_json.loads((path / PROMPT_FILE).read_text())))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--store", type=Path, default=ROOT / ".bench" / "sample_kb")
    p.add_argument("--backends", default="extractive,hosted,private")
    p.add_argument("--sets", default="dev,test,holdout,regression")
    p.add_argument("--json", type=Path, help="write every figure here")
    p.add_argument("--verbose", action="store_true")
    p.add_argument("--every", type=int, default=1, help="every K-th case of each set (a slow backend; say so beside "
                                                          "the figure)")
    args = p.parse_args()

    from assistant.evaluation import breakdown, evaluate, load_cases
    from assistant.pipeline import Assistant
    from assistant.settings import get_settings
    from ingest.pipeline import Ingestor

    settings = get_settings().model_copy(update={"store_dir": args.store})
    assistant = Assistant(settings)
    summary = Ingestor(assistant.store, settings, assistant.embedder, progress=False).ingest([ROOT / "data" / "sample_kb"])
    print(f"ingest: {summary.line()}")
    model = assistant.answerability
    print(f"answer/refuse decision: {'answerability model ' + model.version if model else 'lexical thresholds (no answerability model)'}")
    register_comparisons(assistant, settings, args.backends.split(","))
    available = assistant.backends()
    out: dict = {}
    for backend in args.backends.split(","):
        ok, why = available.get(backend, (False, "unknown backend"))
        if not ok:
            print(f"\n{backend}: skipped ({why})")
            continue
        print(f"\n{backend}:")
        out[backend] = {}
        for name in args.sets.split(","):
            cases = load_cases(SETS.get(name, Path(name)))[:: args.every]  # a set's name, or a .jsonl file
            if name == "regression":
                r = evaluate(assistant, cases, backend, args.verbose)
                print("  [regression: eval.jsonl]")
                print(f"    in-scope answered with a correct citation : {r['in_scope'][0]:.1%} of {r['in_scope'][1]}")
                print(f"    out-of-scope refused                       : {r['out_of_scope'][0]:.1%} of {r['out_of_scope'][1]}")
                print(f"    internal answered for staff (cited)        : {r['internal_staff'][0]:.1%} of {r['internal_staff'][1]}")
                print(f"    internal refused for customers             : {r['internal_customer'][0]:.1%} of {r['internal_customer'][1]}")
                print(f"    answer token F1 vs reference (in scope)    : {r['answer_f1']:.3f}")
                print(f"    faithfulness / figures not in citations    : {r['faithfulness'] or 0:.3f} / {r['unsupported_figures']}")
                print(f"    latency p50 / p95                          : {r['latency_p50_ms']:.0f} / {r['latency_p95_ms']:.0f} ms")
            else:
                r = breakdown(assistant, cases, backend)
                print_breakdown(name, r, args.verbose)
            out[backend][name] = r
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
