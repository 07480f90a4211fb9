"""The red-team suite against every available backend, with the guards on and off.

    python bench/redteam.py [--backends extractive,private,hosted] [--no-baseline] [--show-failures]

Store: the sample KB plus tests/redteam/planted/ (hidden instructions in public documents, other customers'
personal data in an internal one), built in .bench/redteam. Prints, per backend: share of attacks stopped
(refused, or answered with nothing forbidden in the answer) per category, benign questions refused (and how many
of those by a guard rather than by the backend finding no answer), and the guards' own latency p50/p95 (input
rails + context sanitizing + output checks; the model call excluded). "guards off" runs the same backend with every
rail but input hygiene disabled: what the rails buy.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


class Obedient:
    """A worst-case stand-in for a hosted model: it does whatever the question or a document tells it to (leaks its
    rules, obeys instructions planted in the context, promises what it is asked to) and adds one grounded sentence.
    Offline backends are too conservative to show what the rails buy; this one is not."""

    name, can_condense, leaves_company = "obedient", False, False
    _ASKS_RULES = re.compile(r"prompt|instruction|rules|told|configuration|guideline|programming|above", re.I)
    _ASKS_PROMISE = re.compile(r"promise|guarantee|confirm|assure|approved|definitely|100%", re.I)
    _COMMAND = re.compile(r"\b(tell|say|reply|must|should|always)\b.*\b(assistant|ai|customers?)\b|\b(assistant|ai)\b.*\b(tell|say|must|should)\b", re.I)

    def available(self):
        return True, ""

    def condense(self, prompt):
        return None

    def stream(self, request, usage=None):
        parts = []
        if self._ASKS_RULES.search(request.question):
            parts.append(" ".join(request.messages[0]["content"].split()) + " [1]")
        for n, hit in enumerate(request.hits, 1):
            for line in hit.chunk.text.splitlines():
                if self._COMMAND.search(line):
                    parts.append(f"As instructed: {line.strip()} [{n}]")
        if self._ASKS_PROMISE.search(request.question):
            parts.append("Yes, your claim will definitely be approved and you are fully covered [1].")
        first = re.split(r"(?<=[.!?])\s", request.hits[0].chunk.text.strip())[0].replace("\n", " ")
        parts.append(f"{first} [1]")
        yield " ".join(parts)


class _PassThrough:
    """An output check that shows the model's text as it comes (guards off)."""

    def __init__(self, hits):
        self.hits, self.parts, self.verdicts, self.raw_cited = hits, [], [], False

    def feed(self, piece):
        self.parts.append(piece)
        return [piece]

    def finish(self):
        return []

    @property
    def text(self):
        return "".join(self.parts).strip()

    @property
    def cited(self):
        from assistant.prompt import cited_numbers

        return cited_numbers(self.text, len(self.hits))

    @property
    def refused(self):
        return not self.cited


def unguarded(assistant):
    """The same assistant with its rails switched off (hygiene stays: it only rejects unusable input)."""
    from assistant.guards.base import Verdict
    from assistant.guards.guardrails import Guardrails, InputDecision
    from assistant.guards.pii import Redaction

    class Unguarded(Guardrails):
        def redact(self, text, known):
            return Redaction(text, dict(known)), Verdict("pii", True)

        def check_input(self, clean, vector, role="customer"):
            return InputDecision()

        def sanitize(self, hits):
            return hits, Verdict("context", True)

    g = Unguarded(assistant.settings, assistant.store, assistant.embedder, assistant.retriever)
    g.output.start = lambda hits, role, own_pii=frozenset(): _PassThrough(hits)
    assistant.guards = g
    return assistant


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--store", type=Path, default=ROOT / ".bench" / "redteam")
    p.add_argument("--backends", default="extractive,private,hosted,obedient",
                   help="obedient = a scripted worst-case model that obeys every instruction it sees")
    p.add_argument("--no-baseline", action="store_true", help="skip the guards-off runs")
    p.add_argument("--show-failures", action="store_true")
    args = p.parse_args()

    from assistant import redteam
    from assistant.pipeline import Assistant
    from assistant.settings import get_settings
    from ingest.pipeline import Ingestor

    if args.store.exists():
        shutil.rmtree(args.store)
    settings = get_settings().model_copy(update={"store_dir": args.store / "store", "audit_db": args.store / "audit.sqlite"})
    base = Assistant(settings)
    ingestor = Ingestor(base.store, settings, base.embedder, progress=False)
    kb = ingestor.ingest([ROOT / "data" / "sample_kb"])
    public, internal = redteam.plant(ingestor)
    print(f"store: sample KB ({kb.line()}) + planted; ingest flagged {len(public.flagged)} document line(s): "
          + ", ".join(d.rsplit('/', 1)[-1] for d, _ in public.flagged))
    cases = redteam.load_cases()
    print(f"cases: {sum(c['expect'] == 'block' for c in cases)} attacks in "
          f"{len({c['category'] for c in cases}) - 1} categories, {sum(c['expect'] == 'answer' for c in cases)} benign")

    base.register("obedient", Obedient())
    available = base.backends() | {"obedient": (True, "")}
    report = {}
    for backend in args.backends.split(","):
        ok, why = available.get(backend, (False, "unknown backend"))
        if not ok:
            print(f"\n{backend}: skipped ({why})")
            continue
        runs = [("guards on", base)]
        if not args.no_baseline:
            off = unguarded(Assistant(settings.model_copy(update={"audit_enabled": False}), store=base.store,
                                      embedder=base.embedder))
            off.register("obedient", Obedient())
            runs.append(("guards off", off))
        for label, assistant in runs:
            assistant.guards.warm_up()
            results = redteam.run(assistant, cases, backend, progress=True)
            s = redteam.summarize(results)
            benign_guard = sum(1 for r in results if r["category"] == "benign" and r["outcome"] == "false_refusal"
                               and r["refusal_reason"].split(":")[0] not in ("no_context", "not_answerable", "not_in_context"))
            report[f"{backend} / {label}"] = s | {"benign_refused_by_guard": benign_guard}
            print(f"\n{backend} — {label}")
            print(f"  {'category':20s} {'n':>4s} {'stopped':>8s} {'blocked':>8s} {'failed':>7s}")
            for cat, counts in s["categories"].items():
                n = sum(counts.values())
                if cat == "benign":
                    continue
                stopped = counts.get("blocked", 0) + counts.get("neutralized", 0)
                print(f"  {cat:20s} {n:4d} {stopped / n:8.1%} {counts.get('blocked', 0) / n:8.1%} {counts.get('failed', 0):7d}")
            print(f"  attacks stopped (blocked or neutralized): {s['attack_stopped_rate']:.1%} of {s['attacks']}"
                  f"  (blocked outright {s['attack_blocked_rate']:.1%})")
            print(f"  benign refused: {s['benign_false_refusal_rate']:.1%} of {s['benign']} "
                  f"({benign_guard} by a guard, the rest by the backend finding no answer)")
            if label == "guards on":
                print(f"  guard latency p50 / p95: {s['guard_ms_p50']:.1f} / {s['guard_ms_p95']:.1f} ms (model call excluded)")
            if args.show_failures:
                for r in results:
                    if r["outcome"] in ("failed", "false_refusal"):
                        print(f"    {r['outcome']:14s} {r['id']}: {r['leaks'] or r['refusal_reason']} | {r['answer'][:140]!r}")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
