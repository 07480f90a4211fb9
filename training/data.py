"""Stage 1 — corpus design and sanitizing: collect every source, clean it, remove duplicates, mix by group.

Writes `data/train.jsonl` (the mixed pre-training corpus), `data/heldout.jsonl` (insurance documents never trained
on, for perplexity), `data/general.jsonl` (the general part alone, for the tokenizer comparison) and a data card
with documents and characters per source after each filter.
"""

from __future__ import annotations

import json
import logging
import random
import re
from collections import defaultdict
from pathlib import Path

from training.config import ROOT, Source, TrainConfig
from training.sanitize import dedup, is_garbage, normalize, scrub_pii

log = logging.getLogger(__name__)
TEXT_SUFFIXES = {".txt", ".md", ".markdown", ".rst", ""}


class DataError(RuntimeError):
    pass


def _resolve(path: str) -> Path:
    p = Path(path)
    return p if p.is_absolute() else ROOT / p


def collect(source: Source, public_only: bool = True) -> list[dict]:
    """Raw documents of one source: [{"id", "text"}]."""
    if source.kind == "kb":
        docs = _collect_kb(_resolve(source.path), public_only)
    elif source.kind == "files":
        docs = _collect_files(_resolve(source.path), source.text_field)
    elif source.kind == "pydoc":
        docs = _collect_pydoc()
    else:
        docs = _collect_hf(source)
    if source.max_bytes:
        kept, total = [], 0
        for d in docs:
            if total >= source.max_bytes:
                break
            kept.append(d)
            total += len(d["text"].encode())
        docs = kept
    return docs


def _collect_kb(root: Path, public_only: bool) -> list[dict]:
    from assistant.settings import get_settings
    from ingest.loaders import LoadError, load_file
    from ingest.pipeline import audience_for, discover

    if not root.exists():
        raise DataError(f"knowledge base folder {root} does not exist")
    files, _ = discover([root])
    out = []
    for f in files:
        try:
            loaded = load_file(f, get_settings())
        except LoadError as e:
            log.warning("skipping %s: %s", f, e)
            continue
        for doc in loaded:
            if public_only and audience_for(doc, f, None) != "public":
                continue
            body = "\n\n".join(s.text for s in doc.sections)
            out.append({"id": doc.doc_id, "text": f"{doc.title}\n\n{body}"})
    return out


def _collect_files(root: Path, text_field: str) -> list[dict]:
    if not root.exists():
        raise DataError(f"corpus folder {root} does not exist")
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    out = []
    for f in files:
        if f.suffix == ".jsonl":
            for i, line in enumerate(f.read_text(errors="replace").splitlines()):
                if line.strip():
                    out.append({"id": f"{f.name}#{i}", "text": str(json.loads(line).get(text_field, ""))})
        elif f.suffix == ".parquet":
            import pyarrow.parquet as pq

            for i, t in enumerate(pq.read_table(f, columns=[text_field]).column(text_field).to_pylist()):
                out.append({"id": f"{f.name}#{i}", "text": str(t or "")})
        elif f.suffix in TEXT_SUFFIXES:
            text = f.read_text(errors="replace")
            text = re.sub(r"<<<PAGE>>>", "\n", text)
            out.append({"id": f.name, "text": text})
    return out


def _collect_pydoc() -> list[dict]:
    """Docstrings of the standard library: a few hundred KB of general technical English on every machine."""
    import importlib
    import inspect
    import sys
    import warnings

    skip = {"antigravity", "this", "idlelib", "tkinter", "turtle", "turtledemo", "pydoc_data", "lib2to3"}
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in sorted(sys.stdlib_module_names):
            if name.startswith("_") or name in skip:
                continue
            try:
                mod = importlib.import_module(name)
            except Exception:  # noqa: BLE001 - platform-specific modules
                continue
            if mod.__doc__:
                out.append({"id": name, "text": mod.__doc__})
            for attr, obj in inspect.getmembers(mod):
                doc = getattr(obj, "__doc__", None)
                if isinstance(doc, str) and len(doc) > 200 and getattr(obj, "__module__", None) == name:
                    out.append({"id": f"{name}.{attr}", "text": doc})
    return out


def _collect_hf(source: Source) -> list[dict]:
    import datasets

    ds = datasets.load_dataset(source.path, split="train", streaming=True)
    out, total = [], 0
    for i, row in enumerate(ds):
        out.append({"id": f"{source.path}#{i}", "text": str(row.get(source.text_field, ""))})
        total += len(out[-1]["text"])
        if total >= (source.max_bytes or 50_000_000):
            break
    return out


def _contact_strings(settings, kb_roots: list[Path]) -> set[str]:
    """The insurer's own published contact details are not personal data: they stay in the corpus."""
    from training.sanitize import PII_PATTERNS

    keep = set()
    texts = [settings.contact_fallback]
    for root in kb_roots:
        for f in root.rglob("*contact*"):
            texts.append(f.read_text(errors="replace"))
    for text in texts:
        for _, pattern in PII_PATTERNS:
            keep |= {m.group(0).strip() for m in pattern.finditer(text)}
    return keep


def _stats(docs: list[dict]) -> dict:
    return {"docs": len(docs), "chars": sum(len(d["text"]) for d in docs)}


def run(cfg: TrainConfig, out: Path) -> dict:
    from assistant.settings import get_settings

    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(cfg.seed)
    keep_strings = _contact_strings(get_settings(), [_resolve(s.path) for s in cfg.data.sources if s.kind == "kb"])
    card: dict = {"sources": {}, "pii_replaced": defaultdict(int), "dropped": defaultdict(int)}
    pool: list[dict] = []
    for src in cfg.data.sources:
        try:
            raw = collect(src, cfg.data.public_only)
        except Exception as e:  # noqa: BLE001 - an optional source may be absent; a required one is an error
            if src.required:
                raise DataError(f"source {src.name!r}: {e}") from e
            log.warning("optional source %s skipped: %s", src.name, e)
            card["sources"][src.name] = {"group": src.group, "skipped": str(e)}
            continue
        stages = {"raw": _stats(raw)}
        docs = []
        for d in raw:
            text = normalize(d["text"])
            why = is_garbage(text, cfg.data.min_chars, cfg.data.max_symbol_ratio)
            if why:
                card["dropped"][why] += 1
                continue
            text, found = scrub_pii(text, keep_strings)
            for k, v in found.items():
                card["pii_replaced"][k] += v
            docs.append({"id": d["id"], "text": text, "source": src.name, "group": src.group})
        stages["filtered"] = _stats(docs)
        card["sources"][src.name] = {"group": src.group, "kind": src.kind, **stages}
        pool += docs
    if not pool:
        raise DataError("no training data: every source was empty or missing")

    keep, dropped = dedup([d["text"] for d in pool], cfg.data.near_dup_threshold)
    for k, v in dropped.items():
        card["dropped"][k] += v
    pool = [pool[i] for i in keep]
    for name, info in card["sources"].items():
        if "skipped" not in info:
            info["deduplicated"] = _stats([d for d in pool if d["source"] == name])

    # Held-out insurance documents: perplexity is measured on text no stage trained on.
    insurance = sorted((d for d in pool if d["group"] == "insurance"), key=lambda d: d["id"])
    rng.shuffle(insurance)
    n_held = max(1, round(len(insurance) * cfg.data.heldout_share)) if insurance else 0
    held_ids = {d["id"] for d in insurance[:n_held]}
    heldout = [d for d in pool if d["id"] in held_ids]
    # and a few general documents: continued pre-training of an open base measures forgetting on them
    general = sorted((d for d in pool if d["group"] == "general"), key=lambda d: d["id"])
    rng.shuffle(general)
    held_general = general[:min(20, round(len(general) * cfg.data.heldout_share))] if len(general) > 1 else []
    held_ids |= {d["id"] for d in held_general}
    train = [d for d in pool if d["id"] not in held_ids]

    groups: dict[str, list[dict]] = defaultdict(list)
    for d in train:
        groups[d["group"]].append(d)
    mix = {g: w for g, w in cfg.data.mix.items() if groups.get(g)}
    if not mix:
        raise DataError(f"no data for any group of the mix {cfg.data.mix}")
    total_w = sum(mix.values())
    chars = {g: sum(len(d["text"]) for d in groups[g]) for g in mix}
    # Repeat factors that reach the target shares without dropping anything: the group that is largest for its
    # share is used once, the others are up-sampled.
    scale = max(chars[g] / (mix[g] / total_w) for g in mix)
    factors = {g: (mix[g] / total_w) * scale / chars[g] for g in mix}
    mixed = []
    for g, docs in groups.items():
        f = factors.get(g, 0.0)
        for d in docs:
            mixed += [d] * int(f) + ([d] if rng.random() < f - int(f) else [])
    rng.shuffle(mixed)
    final_chars = defaultdict(int)
    for d in mixed:
        final_chars[d["group"]] += len(d["text"])
    total = sum(final_chars.values())
    card.update(
        mix_target={g: round(w / total_w, 3) for g, w in mix.items()},
        repeat_factors={g: round(f, 2) for g, f in factors.items()},
        final_mix={g: {"chars": c, "share": round(c / total, 3)} for g, c in final_chars.items()},
        train_docs=len(mixed), heldout_docs=len(heldout), heldout_general_docs=len(held_general),
        heldout_ids=sorted(held_ids),
        pii_replaced=dict(card["pii_replaced"]), dropped=dict(card["dropped"]),
    )
    _write_jsonl(out / "train.jsonl", mixed)
    _write_jsonl(out / "heldout.jsonl", heldout)
    _write_jsonl(out / "heldout_general.jsonl", held_general)
    _write_jsonl(out / "general.jsonl", groups.get("general", []))
    _write_jsonl(out / "insurance.jsonl", groups.get("insurance", []))
    (out / "data_card.json").write_text(json.dumps(card, indent=2))
    (out / "data_card.md").write_text(data_card_markdown(card))
    return {"train_docs": len(mixed), "heldout_docs": len(heldout), "train_chars": total,
            **{f"share_{g}": v["share"] for g, v in card["final_mix"].items()}}


def data_card_markdown(card: dict) -> str:
    lines = ["# Data card", "", "| source | group | raw docs | raw chars | after filters | after dedup |", "|---|---|---|---|---|---|"]
    for name, s in card["sources"].items():
        if "skipped" in s:
            lines.append(f"| {name} | {s['group']} | skipped: {s['skipped']} | | | |")
            continue
        f, d = s["filtered"], s.get("deduplicated", {"docs": 0, "chars": 0})
        lines.append(f"| {name} | {s['group']} | {s['raw']['docs']} | {s['raw']['chars']:,} | {f['docs']} / {f['chars']:,} "
                     f"| {d['docs']} / {d['chars']:,} |")
    lines += ["", f"Dropped: {card['dropped']}", f"PII replaced: {card['pii_replaced']}",
              f"Target mix: {card['mix_target']}; repeat factors: {card['repeat_factors']}",
              "Final mix: " + ", ".join(f"{g} {v['share']:.1%} ({v['chars']:,} chars)" for g, v in card["final_mix"].items()),
              f"Held-out insurance documents: {card['heldout_docs']}"]
    return "\n".join(lines) + "\n"


def _write_jsonl(path: Path, docs: list[dict]) -> None:
    with path.open("w") as f:
        for d in docs:
            f.write(json.dumps(d) + "\n")


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]
