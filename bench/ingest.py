"""First ingest of the sample KB vs re-ingest of the unchanged KB, side by side in one run.

    python bench/ingest.py [--kb DIR] [--repeat 3] [--model M ...] [--texts answers.jsonl]

The embedding model is loaded once before timing (its load time is printed separately): the comparison is
about the ingestion work itself. Each repeat uses a fresh temporary store.

`--model` (a folder or a `python -m training embedders` version, e.g. a fast encoder) adds an encoder-speed
comparison: texts/s of the stock model and of each model on the same texts (the sample KB's chunks, or the first
2,000 texts of `--texts` JSONL), measured one after the other in this run. Their recall: bench/retrieval.py --model.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kb", type=Path, default=ROOT / "data" / "sample_kb")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--model", action="append", default=[], help="another embedding model to compare (repeatable)")
    p.add_argument("--texts", type=Path, help="JSONL whose `text` fields are encoded for the speed comparison")
    args = p.parse_args()

    from assistant.embeddings import get_embedder
    from assistant.settings import get_settings
    from assistant.store import KnowledgeStore
    from ingest.pipeline import Ingestor

    settings = get_settings()
    t0 = time.perf_counter()
    embedder = get_embedder(settings.embedding_model_path)
    print(f"embedding model load: {time.perf_counter() - t0:.1f}s (not counted below)")
    firsts, agains = [], []
    for i in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            store = KnowledgeStore(Path(tmp) / "store", settings.collection)
            first = Ingestor(store, settings, embedder, progress=False).ingest([args.kb])
            again = Ingestor(store, settings, embedder, progress=False).ingest([args.kb])
            assert first.ok and again.ok and again.chunks_embedded == 0
            firsts.append(first.seconds)
            agains.append(again.seconds)
            print(f"run {i + 1}: first {first.seconds:.2f}s ({first.chunks_embedded} chunks, {len(first.added)} documents) "
                  f"| re-ingest {again.seconds:.3f}s ({len(again.skipped)} skipped)")
    f, a = statistics.median(firsts), statistics.median(agains)
    print(f"\nmedian first ingest {f:.2f}s, re-ingest unchanged {a:.3f}s -> ratio {a / f:.1%} (target <= 5%)")
    if args.model:
        encoder_speed(args, settings, embedder)


def encoder_speed(args, settings, stock) -> None:
    import json

    from assistant.embeddings import get_embedder
    from training.fast_encoder import texts_per_second

    if args.texts:
        texts = [json.loads(l)["text"] for l in args.texts.read_text().splitlines()[:2000] if l.strip()]
    else:
        with tempfile.TemporaryDirectory() as tmp:
            store = _kb_store(tmp, settings, stock, args.kb)
            texts = store.texts("public") + store.texts("internal")
    print(f"\nencoder speed on {len(texts)} texts (batch 64, one after the other):")
    base = texts_per_second(stock._model, texts)
    print(f"  stock {Path(settings.embedding_model_path).parent.name:<28} {base:7.1f} texts/s  1.00x")
    for m in args.model:
        path = Path(m) if Path(m).exists() else Path(settings.embedders_dir) / m / "model"
        speed = texts_per_second(get_embedder(str(path.resolve()))._model, texts)
        print(f"  {path.parent.name if path.name == 'model' else path.name:<34} {speed:7.1f} texts/s  {speed / base:.2f}x")


def _kb_store(tmp, settings, embedder, kb):
    from assistant.store import KnowledgeStore
    from ingest.pipeline import Ingestor

    store = KnowledgeStore(Path(tmp) / "store", settings.collection)
    Ingestor(store, settings, embedder, progress=False).ingest([kb])
    return store


if __name__ == "__main__":
    main()
