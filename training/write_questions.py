"""Customer questions written by a language model from the documents: training data for the answerability model.

    python -m training write-questions [--store DIR] [--out FILE] [--documents NAME ...] [--replace]

Templated questions (training/answerability.py) are built from a sentence's own words; customers use others
("excess", "nicked", a story around the question). A capable model writes them better: for every document, the
hosted OpenAI-compatible API (Solution A's settings: OPENAI_BASE_URL, OPENAI_API_KEY, ASSISTANT_HOSTED_MODEL)
reads its chunks and writes answerable questions in four voices, each with the sentence that answers it quoted
verbatim, and near-domain questions the document does not answer. A quote that is not in the document is dropped
(the model misquoted), so every kept row is grounded; a not-answerable row cannot be checked mechanically —
review them. Documents already in the output are skipped (re-run after adding documents), `--replace` rewrites
theirs (after a document changed: rows whose quote left it are dropped at training time anyway).

data/answerability/written_questions.jsonl was written this way for the sample documents — by the team's
language-model helpers, offline, from the documents alone with this prompt's instructions, never from an
evaluation set; rows that coincided with an evaluation question anyway were removed.
"""

from __future__ import annotations

import json
from pathlib import Path

from training.config import ROOT

OUT = ROOT / "data" / "answerability" / "written_questions.jsonl"
VOICES = ("keyword", "informal", "story", "formal", "staff")

PROMPT = """You write training data for {company}'s customer-service assistant. Below is one company document, \
split into chunks. Write JSON lines only, one object per line, no prose.

A. For every chunk, {per_chunk} questions the chunk answers, the way real customers write to an insurer's chat, \
mixing four voices: "keyword" (a 2-6 word search query), "informal" (lowercase, typos, txt-speak), "story" \
(2-4 sentences of a personal situation with details that do not matter, then the question), "formal". Use words \
the document does not use where a customer would, negations, two facts in one question, everyday requests. \
{staff}Each: {{"source": "{source}", "answer": "<the sentence of the chunk that answers, copied verbatim>", \
"question": "...", "voice": "...", "answerable": true}}

B. {not_answerable} questions a customer could plausibly ask about this document's topic that it does NOT answer \
(a price, limit, option, situation or detail it never states), close in wording to answerable ones. Each: \
{{"source": null, "near": "{source}", "question": "...", "voice": "...", "answerable": false, \
"absent": "<what is missing>"}}

Document {source} (audience: {audience}):
{chunks}"""

STAFF = ('This is an internal document: write most questions in "staff" voice (an employee asking about the '
         "procedure), two per chunk in customer voices. ")


def prompt_for(source: str, chunks, company: str, per_chunk: int = 6, not_answerable: int = 10) -> str:
    internal = any(c.audience == "internal" for c in chunks)
    body = "\n\n".join(f"--- chunk {i + 1}\n{c.text}" for i, c in enumerate(chunks))
    return PROMPT.format(company=company, per_chunk=per_chunk, staff=STAFF if internal else "", source=source,
                         not_answerable=not_answerable, audience="internal" if internal else "public", chunks=body)


def parse(reply: str, source: str, by_file: dict[str, list]) -> tuple[list[dict], int]:
    """The valid rows of a reply, and how many lines were dropped (not JSON, wrong fields, a misquote)."""
    from assistant.known_questions import quoted_sentence

    rows, dropped = [], 0
    for line in reply.splitlines():
        line = line.strip().strip(",")
        if not line.startswith("{"):
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            dropped += 1
            continue
        ok = isinstance(row.get("question"), str) and row.get("voice") in VOICES and isinstance(row.get("answerable"), bool)
        if ok and row["answerable"]:
            row["source"] = source  # the model may shorten the name; the quote is checked in this document only
            ok = isinstance(row.get("answer"), str) and quoted_sentence(row, by_file)[1] is not None
        elif ok:
            row.update(source=None, near=source)
        if ok:
            rows.append(row)
        else:
            dropped += 1
    return rows, dropped


def run(assistant, out: Path = OUT, documents: list[str] | None = None, replace: bool = False,
        company: str = "the insurer", max_tokens: int = 8000, progress: bool = True) -> dict:
    """Writes questions for the store's documents into `out`; returns counts."""
    from rich.progress import track

    from assistant.generators.base import GeneratorUnavailable
    from assistant.generators.hosted import HostedGenerator
    from assistant.known_questions import chunks_by_file
    from training.answerability import load_written

    llm = HostedGenerator(assistant.settings)
    ok, why = llm.available()
    if not ok:
        raise GeneratorUnavailable(why)
    by_file = chunks_by_file(c for c, _ in assistant.store.fetch(assistant.store.all_ids()).values())
    if not by_file:
        raise ValueError("the store is empty: ingest the documents first (python -m ingest data/sample_kb)")
    wanted = [d for d in sorted(by_file) if not documents or d in documents]
    existing = load_written([str(out)]) if out.exists() else []
    done = {r.get("source") or r.get("near") for r in existing}
    todo = [d for d in wanted if replace or d not in done]
    kept = [r for r in existing if (r.get("source") or r.get("near")) not in todo]
    counts = {"documents": len(todo), "skipped_documents": len(wanted) - len(todo), "answerable": 0,
              "not_answerable": 0, "dropped": 0}
    for source in track(todo, description="writing questions", disable=not progress):
        reply = llm.complete(prompt_for(source, by_file[source], company), max_tokens)
        rows, dropped = parse(reply or "", source, by_file)
        kept += rows
        counts["dropped"] += dropped
        counts["answerable"] += sum(r["answerable"] for r in rows)
        counts["not_answerable"] += sum(not r["answerable"] for r in rows)
        out.parent.mkdir(parents=True, exist_ok=True)  # written after every document: an interruption loses one
        out.write_text("".join(json.dumps(r) + "\n" for r in kept))
    return counts

