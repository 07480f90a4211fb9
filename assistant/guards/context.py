"""Context sanitizing (indirect injection): document text is data, never instructions.

Each retrieved chunk is already fenced in its own <context> block; here delimiter look-alikes are escaped so a
chunk cannot close its block, and lines that read as commands to an AI are replaced before any backend sees them.
"""

from __future__ import annotations

from dataclasses import replace

from assistant.guards.base import Verdict, rail_config, timed
from assistant.guards.injection import neutralize
from assistant.schema import Hit


def sanitize_hits(hits: list[Hit]) -> tuple[list[Hit], Verdict]:
    with timed() as t:
        escapes = rail_config("context")["escape"]
        out, flagged = [], []
        for h in hits:
            text, n = neutralize(h.chunk.text)
            for old, new in escapes.items():
                text = text.replace(old, new)
            if n:
                flagged.append(h.chunk.doc_id)
            out.append(replace(h, chunk=replace(h.chunk, text=text)) if text != h.chunk.text else h)
    detail = f"neutralized instruction-like lines in {sorted(set(flagged))}" if flagged else ""
    return out, Verdict("context", not flagged, detail, t.ms)
