"""python -m ingest PATH... [--store DIR] [--audience public|internal] [--list] [--delete DOC_ID] [--reset]"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ingest", description="Ingest documents into the knowledge store.")
    p.add_argument("paths", nargs="*", type=Path, help="files or folders (recursively) to ingest")
    p.add_argument("--store", type=Path, help="store folder (default: settings store_dir)")
    p.add_argument("--audience", choices=["public", "internal"], help="force the audience of every document")
    p.add_argument("--list", action="store_true", help="list the documents in the store")
    p.add_argument("--delete", metavar="DOC_ID", action="append", default=[],
                   help="delete a document (its id, or a file path for all its documents); repeatable")
    p.add_argument("--reset", action="store_true", help="delete everything in the store first")
    p.add_argument("--json", action="store_true", help="print results as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--switch-embedding", metavar="MODEL",
                   help="re-embed the store with another model (a folder, or a version from `python -m training "
                        "embedders list`) into new collections and swap atomically")
    p.add_argument("--collections", action="store_true", help="list the store's collection sets (live one starred)")
    p.add_argument("--drop-collection", metavar="NAME", help="delete a collection set that is no longer live")
    args = p.parse_args(argv)
    if not (args.paths or args.list or args.delete or args.reset or args.switch_embedding or args.collections
            or args.drop_collection):
        p.error("give PATH(s) to ingest, or --list, --delete, --reset, --switch-embedding, --collections or --drop-collection")

    from assistant.settings import get_settings
    from assistant.store import KnowledgeStore
    from ingest.pipeline import Ingestor

    console = Console(stderr=True, soft_wrap=True)
    settings = get_settings()
    store = KnowledgeStore.from_settings(settings, store_dir=args.store)
    rc = 0

    if args.switch_embedding:
        from assistant.embeddings import get_embedder

        model = Path(args.switch_embedding)
        if not model.exists():  # a registry version name
            model = Path(settings.embedders_dir) / args.switch_embedding / "model"
        if not (model / "config.json").exists() and not (model / "modules.json").exists():
            console.print(f"[red]error:[/] no embedding model at {args.switch_embedding} (nor {model})")
            return 2
        try:
            result = store.switch_embedding(str(model.resolve()), get_embedder(str(model.resolve())), progress=not args.quiet)
        except ValueError as e:
            console.print(f"[red]error:[/] {e}")
            return 2
        console.print(f"re-embedded {result['chunks']} chunks into {result['collection']} (live now; "
                      f"{result['previous']} kept until --drop-collection)")

    if args.collections or args.drop_collection:
        if args.drop_collection:
            try:
                store.drop_collection(args.drop_collection)
            except ValueError as e:
                console.print(f"[red]error:[/] {e}")
                return 2
            console.print(f"dropped {args.drop_collection}")
        for c in store.collection_sets():
            print(f"{'*' if c['live'] else ' '} {c['name']}  {c['chunks']} chunks")

    if args.reset:
        with store.write_lock():
            store.reset()
        console.print(f"[yellow]store {store.dir} reset[/]")

    if args.delete:
        ingestor = Ingestor(store, settings, progress=False)
        deleted = ingestor.delete(args.delete)
        missing = [t for t in args.delete if t not in deleted and not any(d.startswith(t) for d in deleted)]
        if args.json:
            print(json.dumps({"deleted": deleted, "not_found": missing}))
        for d in deleted:
            console.print(f"deleted {d}")
        for m in missing:
            console.print(f"[red]not found:[/] {m}")
            rc = 1

    if args.paths:
        ingestor = Ingestor(store, settings, progress=not args.quiet)
        summary = ingestor.ingest(args.paths, audience=args.audience)
        if args.json:
            print(json.dumps(summary.to_json()))
        console.print(summary.line())
        for path, reason in summary.failed:
            console.print(f"[red]failed[/] {path}: {reason}")
        for doc_id, line in summary.flagged:
            console.print(f"[yellow]flagged[/] {doc_id}: instruction-like text (neutralized when answering): {line!r}")
        for doc_id, warning in summary.warnings:
            console.print(f"[yellow]warning[/] {doc_id}: {warning}")
        if not summary.ok:
            rc = 1
        # the known questions the documents answer now (their vectors are kept: only new ones are embedded)
        from assistant.known_questions import KnownQuestions

        n = KnownQuestions.from_settings(store, None, settings, ingestor.model_path).refresh()
        # and under the served answerability model's question matcher, which the assistant matches with
        from assistant.answerability import AnswerabilityError, resolve

        try:
            served = resolve(settings.answerability_model, Path(settings.answerability_dir))
        except AnswerabilityError:
            served = None  # the assistant says so when it starts; the documents are in
        if served and (served / "matcher").exists():
            KnownQuestions.from_settings(store, None, settings, str(served / "matcher")).refresh()
        console.print(f"known questions: {n}")

    if args.list:
        docs = store.manifest.all()
        if args.json:
            print(json.dumps([d.to_json() for d in docs]))
        else:
            table = Table(title=f"{len(docs)} documents, {store.count()} chunks in {store.dir}")
            for col in ("doc_id", "audience", "chunks", "status", "ingested_at", "title"):
                table.add_column(col)
            for d in docs:
                j = d.to_json()
                table.add_row(d.doc_id, d.audience, str(d.chunks), d.status, j["ingested_at"], d.title[:50])
            Console(width=max(160, Console().width)).print(table)
    return rc


if __name__ == "__main__":
    sys.exit(main())
