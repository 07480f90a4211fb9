"""What the extractive backend quotes: its choice settings swept side by side on the customer-voice splits.

    python bench/extractive_choice.py [--store DIR] [--grid W,M,K ...] [--sets dev,dev2,test]

Each public question is decided once (the answerability decision does not read these settings) and answered again
under every (extractive_choice_logit_weight W, extractive_evidence_margin M, extractive_max_sentences K) of the grid,
the served settings first: public questions answered with a citation of the right document, and answer token F1.
Quoting fewer sentences raises F1 (the references are one sentence) and cites the right document less often; choose
on dev and dev2, report test beside them.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from answers import ROOT, SETS  # noqa: E402  (the splits bench/answers.py reads)

GRID = ["0.05,0.0,3", "0.05,0.02,3", "0.1,0.05,3", "0.2,0.05,3", "0.5,0.05,3", "0.2,0.08,3", "0.05,0.05,1",
        "0.05,0.05,4"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--store", type=Path, default=ROOT / ".bench" / "sample_kb")
    p.add_argument("--grid", nargs="*", default=GRID, help="W,M,K triples (the served settings are measured first)")
    p.add_argument("--sets", default="dev,dev2,test")
    args = p.parse_args()

    from assistant.evaluation import breakdown, load_cases
    from assistant.pipeline import Assistant
    from assistant.settings import get_settings
    from ingest.pipeline import Ingestor

    settings = get_settings().model_copy(update={"store_dir": args.store})
    assistant = Assistant(settings)
    print(f"ingest: {Ingestor(assistant.store, settings, assistant.embedder, progress=False).ingest([ROOT / 'data' / 'sample_kb']).line()}")
    decide, decided = assistant.decide, {}

    def cached(question, hits, role="customer", model=None):  # the quoting settings never reach the decision
        key = (question, role, tuple(h.chunk.chunk_id for h in hits))
        if key not in decided:
            decided[key] = decide(question, hits, role, model)
        return copy.deepcopy(decided[key])  # the pipeline renumbers a decision's evidence in place

    assistant.decide = cached
    cases = {name: [c for c in load_cases(SETS[name]) if c.get("category") == "public"] for name in args.sets.split(",")}
    served = f"{settings.extractive_choice_logit_weight},{settings.extractive_evidence_margin},{settings.extractive_max_sentences}"
    print(f"{'weight,margin,k':<16}" + "".join(f"{n + ' cited / F1':>24}" for n in cases))
    for triple in [served] + [g for g in args.grid if g != served]:
        w, m, k = triple.split(",")
        s = assistant.settings  # the extractive generator reads this same object
        s.extractive_choice_logit_weight, s.extractive_evidence_margin, s.extractive_max_sentences = float(w), float(m), int(k)
        row = f"{triple + (' *' if triple == served else ''):<16}"
        for name, cs in cases.items():
            r = breakdown(assistant, cs, "extractive")  # as bench/answers.py scores them
            row += f"{r['public_answered_cited']['rate']:>17.1%} / {r['public_answer_f1']:.3f}"
        print(row, flush=True)
    print("* served")


if __name__ == "__main__":
    main()
