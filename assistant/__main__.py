"""python -m assistant retrieve|ask|chat|config — the assistant from the terminal."""

from __future__ import annotations

import argparse
import json
import sys
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
    for c in ans.citations:
        print(f"  [{c.n}] {c.source}" + (f", page {c.page}" if c.page else "") + f"  ({c.doc_id})")


def cmd_ask(args) -> int:
    from assistant.generators import GeneratorUnavailable

    a = _assistant(args)
    try:
        ans = a.ask(args.question, role=args.audience, backend=args.backend)
    except GeneratorUnavailable as e:
        print(f"error: backend '{args.backend or a.settings.backend}' unavailable: {e}", file=sys.stderr)
        return 2
    _print_answer(ans, args.json)
    return 0


def cmd_chat(args) -> int:
    from assistant.generators import GeneratorUnavailable

    a = _assistant(args)
    history: list[tuple[str, str]] = []
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
            for kind, value in a.stream(q, role=args.audience, backend=args.backend, history=history):
                if kind == "token":
                    sys.stdout.write(value)
                    sys.stdout.flush()
                elif kind == "answer":
                    answer = value
            print()
            for c in answer.citations:
                print(f"  [{c.n}] {c.source}" + (f", page {c.page}" if c.page else ""))
            history.append((q, answer.answer))
        except GeneratorUnavailable as e:
            print(f"\nerror: {e}")
            return 2
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m assistant", description="Brightwater Mutual customer-service assistant")
    sub = p.add_subparsers(dest="cmd", required=True)

    def common(sp, k=False):
        sp.add_argument("--store", type=Path, help="store folder (default: settings store_dir)")
        sp.add_argument("--audience", "--role", dest="audience", choices=["customer", "staff"], default="customer",
                        help="who is asking: customers see public documents only")
        sp.add_argument("--json", action="store_true")

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

    cf = sub.add_parser("config", help="print the configuration table")
    cf.set_defaults(func=cmd_config)

    args = p.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
