"""python -m assistant retrieve|ask|chat|serve|evaluate|log|feedback|forget|config — the assistant from the terminal."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

def _settings(args):
    from assistant.settings import get_settings

    s = get_settings()
    if getattr(args, "store", None):
        s = s.model_copy(update={"store_dir": args.store})
    return s


def _assistant(args):
    from assistant.pipeline import Assistant

    return Assistant(_settings(args))


def cmd_retrieve(args) -> int:
    a = _assistant(args)
    hits = a.retriever.retrieve(args.question, role=args.audience, k=args.k)
    if args.json:
        print(json.dumps([h.to_json() for h in hits], ensure_ascii=False))
    else:
        if not hits:
            print("no context above the relevance threshold")
        for i, h in enumerate(hits, 1):
            where = h.chunk.source + (f" p.{h.chunk.page}" if h.chunk.page else "")
            print(f"[{i}] {where}  score={h.score:.4f} sim={h.similarity:.3f}\n    {h.chunk.text[:200]!r}")
    return 0


def _print_answer(ans, as_json: bool) -> None:
    if as_json:
        print(json.dumps(ans.to_json(), ensure_ascii=False))
        return
    print(ans.answer)
    if ans.refused:
        print(f"\n(refused: {ans.refusal_reason})")
    if ans.handoff:
        print(f"(handed off to a person: {ans.handoff})")
    for c in ans.citations:
        print(f"  [{c.n}] {c.where()}  ({c.doc_id})")


def cmd_ask(args) -> int:
    from assistant.generators import GeneratorUnavailable

    from assistant.session import Session

    a = _assistant(args)
    try:
        ans = a.ask(args.question, role=args.audience, backend=args.backend, session=Session(user_id=args.user))
    except GeneratorUnavailable as e:
        print(f"error: backend '{args.backend or a.settings.backend}' unavailable: {e}", file=sys.stderr)
        return 2
    _print_answer(ans, args.json)
    return 0


def cmd_chat(args) -> int:
    from assistant.generators import GeneratorUnavailable

    from assistant.session import Session

    a = _assistant(args)
    session = Session(user_id=args.user)
    print(f"Brightwater Mutual assistant ({args.backend or a.settings.backend}, {args.audience}). Empty line or Ctrl-D quits.")
    while True:
        try:
            q = input("\nyou> ").strip()
        except EOFError:
            break
        if not q:
            break
        try:
            answer = None
            sys.stdout.write("assistant> ")
            for kind, value in a.stream(q, role=args.audience, backend=args.backend, session=session):
                if kind == "token":
                    sys.stdout.write(value)
                    sys.stdout.flush()
                elif kind == "answer":
                    answer = value
            print()
            for c in answer.citations:
                print(f"  [{c.n}] {c.where()}")
            print(f"  (answered for a {answer.role}; rate it: python -m assistant feedback rate {answer.interaction_id} up|down)")
        except GeneratorUnavailable as e:
            print(f"\nerror: {e}")
            return 2
    return 0


def _audit(args):
    from assistant.audit import AuditLog

    s = _settings(args)
    return AuditLog(args.db or s.audit_path)


def cmd_log(args) -> int:
    if args.events:  # deletions and other audited actions
        for e in _audit(args).events():
            print(json.dumps(e, ensure_ascii=False) if args.json else
                  f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(e['ts']))}Z  {e['actor']}  {e['action']}  {e['subject']}  {e['detail']}")
        return 0
    rows = _audit(args).interactions(user_id=args.user, limit=args.limit)
    if args.json:
        print(json.dumps(rows, ensure_ascii=False))
        return 0
    for r in rows:
        flags = ("refused " if r["refused"] else "") + (f"handoff:{r['handoff']} " if r["handoff"] else "")
        failed = [v["rail"] for v in r["verdicts"] if not v["passed"]]
        rating = {1: " 👍", -1: " 👎"}.get(r["rating"], "")
        print(f"{r['id']}  {r['user_id']}  {r['role']}/{r['backend']}  {flags}{'guards:' + ','.join(failed) if failed else ''}{rating}\n"
              f"    Q: {r['question'][:120]}\n    A: {r['answer'][:120]}")
    return 0


def cmd_feedback(args) -> int:
    log = _audit(args)
    if args.action == "rate":
        try:
            log.rate(args.interaction, 1 if args.rating == "up" else -1, args.comment)
        except KeyError as e:
            print(f"error: {e.args[0]}", file=sys.stderr)
            return 2
        print(f"recorded {args.rating} for {args.interaction}")
    else:
        counts = log.export(args.out)
        print(" · ".join(f"{n} {k}" for k, n in counts.items()) + f" → {args.out}")
    return 0


def cmd_forget(args) -> int:
    try:
        n = _audit(args).forget(args.user, args.reason)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"deleted {n} interaction(s) of user {args.user!r}; the deletion is in the audit events")
    return 0


def cmd_evaluate(args) -> int:
    """Every backend on the same questions, through the same retrieval and rails: report.md, results.json/csv, charts."""
    from assistant.evaluation import load_cases
    from assistant.evaluation.harness import compare, run, summarize
    from assistant.evaluation.report import write

    try:
        cases = load_cases(args.set)
    except (OSError, ValueError) as e:
        print(f"error: cannot read the question set {args.set}: {e}", file=sys.stderr)
        return 2
    cases = [c for c in cases if c.get("question")][: args.limit or None]
    a = _assistant(args)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    known = a.backends()  # each backend's availability, checked once
    available = {b: known.get(b, (False, "unknown backend")) for b in backends}
    for b, (ok, why) in available.items():
        if not ok:
            print(f"skipping {b}: {why}", file=sys.stderr)
    backends = [b for b in backends if available[b][0]]
    if not backends or not cases:
        print("error: nothing to evaluate (no available backend or no questions)", file=sys.stderr)
        return 2
    records = run(a, cases, backends, role=args.audience, progress=not args.quiet)
    summary = summarize(records)
    comparisons = [compare(records, backends[0], b) for b in backends[1:]]
    meta = {"set": str(args.set), "questions": len(cases), "role": args.audience, "store": str(a.settings.store_dir),
            "backends": backends}
    files = write(args.out, records, summary, comparisons, meta)
    for b, m in summary.items():
        r = lambda v: "–" if v is None else f"{v:.3f}"  # noqa: E731
        print(f"{b:11s} F1 {r(m['answer_f1']['mean'])}  citation {r(m['citation_accuracy']['mean'])}  "
              f"refusal P/R {r(m['refusal_precision'])}/{r(m['refusal_recall'])}  p95 {m['latency_p95_ms']:.0f} ms  "
              f"cost/1k ${m['cost_usd_per_1000_questions']:.4f}  data left: {'yes' if m['data_left_company'] else 'no'}")
    print("wrote " + ", ".join(str(f) for f in files))
    return 0


def cmd_config(args) -> int:
    """Print every setting with its environment variable and default (the README's table)."""
    from assistant.settings import Settings

    print("| setting | environment variable | default | meaning |\n|---|---|---|---|")
    for name, f in Settings.model_fields.items():
        env = f"ASSISTANT_{name.upper()}"
        if f.validation_alias is not None:
            env = " / ".join(f"`{c}`" for c in f.validation_alias.choices)
        else:
            env = f"`{env}`"
        default = f.default if f.default is not None else ""
        if name == "embedding_model":
            default = "(packaged all-MiniLM-L6-v2)"
        print(f"| `{name}` | {env} | `{default}` | {f.description} |")
    return 0


def cmd_serve(args) -> int:
    """The HTTP API under uvicorn. Workers are processes: each loads the model and store once; settings reach them
    through the environment, so --store is exported rather than passed."""
    import os
    import tempfile

    import uvicorn

    from assistant.server.auth import parse_keys

    if args.store:
        os.environ["ASSISTANT_STORE_DIR"] = str(args.store)
    s = _settings(args)
    try:
        keys = parse_keys(s.api_keys.get_secret_value() if s.api_keys else None)
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    if not keys:
        print("no API keys: set ASSISTANT_API_KEYS, e.g. ASSISTANT_API_KEYS='a-long-random-key:customer,"
              "another-key:staff' (every /v1 route needs one)", file=sys.stderr)
        return 2
    if s.reranker_model:  # a wrong reranker stops here, not as a traceback in every worker's startup
        from assistant.rerank import resolve_reranker

        resolve_reranker(s.reranker_model, s.rerankers_dir)
    from assistant.answerability import resolve as resolve_answerability

    resolve_answerability(s.answerability_model, s.answerability_dir)  # likewise
    if args.workers > 1 and not s.chroma_host:
        print("several workers need a shared Chroma server (embedded Chroma keeps a per-process index): start one with "
              "`chroma run --path var/chroma --port 8001` and set ASSISTANT_CHROMA_HOST=127.0.0.1 ASSISTANT_CHROMA_PORT=8001",
              file=sys.stderr)
        return 2
    if args.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="assistant-metrics-")  # /metrics sums workers
    print(f"serving on http://{args.host}:{args.port} ({args.workers} worker(s), {len(keys)} key(s), "
          f"store {s.store_dir}); OpenAPI at /docs", file=sys.stderr)
    uvicorn.run("assistant.server.app:create_app", factory=True, host=args.host, port=args.port,
                workers=args.workers, log_level=args.log_level, proxy_headers=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m assistant", description="Brightwater Mutual customer-service assistant")
    sub = p.add_subparsers(dest="cmd", required=True)

    def common(sp, k=False):
        sp.add_argument("--store", type=Path, help="store folder (default: settings store_dir)")
        sp.add_argument("--audience", "--role", dest="audience", choices=["customer", "staff"], default="customer",
                        help="who is asking: customers see public documents only")
        sp.add_argument("--json", action="store_true")
        sp.add_argument("--user", default="cli", help="user id recorded in the audit log")

    r = sub.add_parser("retrieve", help="show the passages retrieved for a question")
    r.add_argument("question")
    r.add_argument("--k", type=int, default=10)
    common(r)
    r.set_defaults(func=cmd_retrieve)

    a = sub.add_parser("ask", help="answer one question")
    a.add_argument("question")
    a.add_argument("--backend", choices=["hosted", "extractive", "private"])
    common(a)
    a.set_defaults(func=cmd_ask)

    c = sub.add_parser("chat", help="interactive terminal chat")
    c.add_argument("--backend", choices=["hosted", "extractive", "private"])
    common(c)
    c.set_defaults(func=cmd_chat)

    sv = sub.add_parser("serve", help="the OpenAI-compatible HTTP API (FastAPI + uvicorn)")
    sv.add_argument("--host", default="127.0.0.1")
    sv.add_argument("--port", type=int, default=8000)
    sv.add_argument("--workers", type=int, default=1, help="processes; with several, use a Chroma server (README)")
    sv.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    sv.add_argument("--store", type=Path, help="store folder (default: settings store_dir)")
    sv.set_defaults(func=cmd_serve)

    ev = sub.add_parser("evaluate", help="compare backends on a question set: report.md, results.json/csv, charts")
    ev.add_argument("--set", type=Path, default=Path("data/sample_kb/eval.jsonl"), help="JSONL in eval.jsonl's format")
    ev.add_argument("--backends", default="extractive,private,hosted")
    ev.add_argument("--out", type=Path, default=Path("var/eval"))
    ev.add_argument("--limit", type=int, help="only the first N questions")
    ev.add_argument("--quiet", action="store_true", help="no progress bar")
    common(ev)
    ev.set_defaults(func=cmd_evaluate)

    def audit_args(sp):
        sp.add_argument("--db", type=Path, help="audit log (default: settings audit_path)")
        sp.add_argument("--store", type=Path, help=argparse.SUPPRESS)

    lg = sub.add_parser("log", help="recent interactions from the audit log (redacted)")
    lg.add_argument("--user", help="only this user's interactions")
    lg.add_argument("--limit", type=int, default=20)
    lg.add_argument("--events", action="store_true", help="audited actions (deletions) instead of interactions")
    lg.add_argument("--json", action="store_true")
    audit_args(lg)
    lg.set_defaults(func=cmd_log)

    fb = sub.add_parser("feedback", help="rate an interaction, or export rated ones for evaluation and training")
    fsub = fb.add_subparsers(dest="action", required=True)
    fr = fsub.add_parser("rate", help="thumbs up or down, with an optional comment")
    fr.add_argument("interaction")
    fr.add_argument("rating", choices=["up", "down"])
    fr.add_argument("--comment")
    audit_args(fr)
    fe = fsub.add_parser("export", help="eval_cases / sft_candidates / dpo_candidates .jsonl")
    fe.add_argument("--out", type=Path, default=Path("var/feedback"))
    audit_args(fe)
    fb.set_defaults(func=cmd_feedback)

    fg = sub.add_parser("forget", help="delete a user's conversation data (recorded as an audit event)")
    fg.add_argument("--user", required=True)
    fg.add_argument("--reason", required=True, help="e.g. the data-subject request's reference")
    audit_args(fg)
    fg.set_defaults(func=cmd_forget)

    cf = sub.add_parser("config", help="print the configuration table")
    cf.set_defaults(func=cmd_config)

    args = p.parse_args(argv)
    from assistant.answerability import AnswerabilityError
    from assistant.rerank import RerankerError

    try:
        return args.func(args)
    except (RerankerError, AnswerabilityError) as e:  # a configuration mistake: say which setting, no traceback
        print(f"error: {e.setting}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
