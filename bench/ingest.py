"""First ingest of the sample KB vs re-ingest of the unchanged KB, side by side in one run.

    python bench/ingest.py [--kb DIR] [--repeat 3]

The embedding model is loaded once before timing (its load time is printed separately): the comparison is
about the ingestion work itself. Each repeat uses a fresh temporary store.
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


if __name__ == "__main__":
    main()
