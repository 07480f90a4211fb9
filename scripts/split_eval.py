"""Split the customer-voice evaluation set once, by a fixed seed, into dev and test.

    python scripts/split_eval.py [--seed 16]

Stratified by category and source document; a paraphrase group (the same fact in three phrasings) stays in one
split, so dev never holds a rewording of a test question. Thresholds, weights, prompts and models are tuned on
dev only; the README reports test with dev beside it.

Each source file is split on its own and the parts appended, so that adding a file (customer_voice_formats.jsonl:
the questions on the Word, Excel, scanned, table and e-mail documents) never moves a case of an earlier file from
one split to the other. Labels an audit found wrong are corrected from corrections.jsonl after the split, for the
same reason.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EVAL = ROOT / "data" / "eval"


def split(cases: list[dict], seed: int) -> tuple[list[dict], list[dict]]:
    units: dict[str, list[dict]] = {}
    for c in cases:
        units.setdefault(c.get("group") or c["id"], []).append(c)
    strata: dict[tuple, list[list[dict]]] = {}
    for unit in units.values():
        strata.setdefault((unit[0]["category"], unit[0]["source"] or ""), []).append(unit)
    rng = random.Random(seed)
    dev, test = [], []
    for key in sorted(strata):
        group = strata[key]
        rng.shuffle(group)
        for unit in group:  # to the split with fewer cases of this stratum so far; ties by the seed
            n_dev = sum(c["category"] == key[0] and (c["source"] or "") == key[1] for c in dev)
            n_test = sum(c["category"] == key[0] and (c["source"] or "") == key[1] for c in test)
            (dev if n_dev < n_test or (n_dev == n_test and rng.random() < 0.5) else test).extend(unit)
    order = {c["id"]: i for i, c in enumerate(cases)}
    return sorted(dev, key=lambda c: order[c["id"]]), sorted(test, key=lambda c: order[c["id"]])


SOURCES = ("customer_voice.jsonl", "customer_voice_formats.jsonl")
CORRECTIONS = EVAL / "corrections.jsonl"  # labels an audit found wrong: {"id", "why", "set": {field: value}}


def _read(path: Path) -> list[dict]:
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()] if path.exists() else []


def corrected(cases: list[dict]) -> list[dict]:
    """The cases with the audited labels; a correction is applied after the split, so it never moves a case from
    the split it was drawn into (a dev case stays dev: it may have been tuned on)."""
    fixes = {c["id"]: c["set"] for c in _read(CORRECTIONS)}
    return [{**c, **fixes.get(c["id"], {})} for c in cases]


def all_cases() -> list[dict]:
    return corrected([c for name in SOURCES for c in _read(EVAL / name)])


def split_files(seed: int) -> tuple[list[dict], list[dict]]:
    dev, test = [], []
    for name in SOURCES:
        if (EVAL / name).exists():
            d, t = split(_read(EVAL / name), seed)
            dev, test = dev + corrected(d), test + corrected(t)
    return dev, test


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, default=16)
    args = p.parse_args()
    dev, test = split_files(args.seed)
    for name, part in (("dev", dev), ("test", test)):
        (EVAL / f"customer_voice.{name}.jsonl").write_text("".join(json.dumps(c) + "\n" for c in part))
        print(f"{name}: {len(part)} cases")


if __name__ == "__main__":
    main()
