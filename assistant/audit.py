"""The audit log: every interaction (redacted), its guard verdicts and latencies, feedback, and deletions.

One SQLite file (WAL: the UI, the CLI and an API server may write at once). Text is redacted again on the way in,
so even a caller that forgot to redact cannot put personal data in the log. `export` turns rated interactions
into evaluation cases and SFT/DPO candidates: the loop back into `training/`.
"""

from __future__ import annotations

import getpass
import json
import re
import sqlite3
import threading
import time
from collections import defaultdict
from pathlib import Path
from uuid import uuid4

from assistant.guards.pii import redact

SCHEMA = """
CREATE TABLE IF NOT EXISTS interactions (
    id TEXT PRIMARY KEY, ts REAL NOT NULL, user_id TEXT NOT NULL, session_id TEXT NOT NULL, role TEXT NOT NULL,
    backend TEXT NOT NULL, question TEXT NOT NULL, answer TEXT NOT NULL, refused INTEGER NOT NULL,
    refusal_reason TEXT, handoff TEXT, citations TEXT NOT NULL, verdicts TEXT NOT NULL, timings TEXT NOT NULL,
    pii_counts TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS interactions_user ON interactions(user_id);
CREATE TABLE IF NOT EXISTS feedback (
    interaction_id TEXT PRIMARY KEY REFERENCES interactions(id) ON DELETE CASCADE, ts REAL NOT NULL,
    rating INTEGER NOT NULL CHECK (rating IN (-1, 1)), comment TEXT);
CREATE TABLE IF NOT EXISTS events (ts REAL NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL, subject TEXT NOT NULL,
    detail TEXT NOT NULL);
"""
_CITE = re.compile(r"\s*\[\d{1,3}\]")


class AuditLog:
    def __init__(self, path: Path | str, keep: set[str] = frozenset()):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.keep = set(keep)  # the insurer's published contacts: not personal data
        self._local = threading.local()
        with self._conn() as c:
            c.executescript(SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        # One connection per thread, kept: opening one per interaction cost more than the insert under load.
        c = getattr(self._local, "conn", None)
        if c is None:
            c = sqlite3.connect(self.path, timeout=30)
            c.row_factory = sqlite3.Row
            c.execute("PRAGMA journal_mode=WAL")
            c.execute("PRAGMA foreign_keys=ON")
            self._local.conn = c
        return c

    def _clean(self, text: str | None) -> str | None:
        return None if text is None else redact(text, keep=self.keep).text

    def record(self, *, user_id: str, session_id: str, role: str, backend: str, question: str, answer: str,
               refused: bool, refusal_reason: str | None, handoff: str | None, citations: list[dict],
               verdicts: list[dict], timings: dict, pii_counts: dict) -> str:
        iid = uuid4().hex
        with self._conn() as c:
            c.execute("INSERT INTO interactions VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", (
                iid, time.time(), user_id, session_id, role, backend, self._clean(question), self._clean(answer),
                int(refused), refusal_reason, handoff, json.dumps(citations), json.dumps(verdicts),
                json.dumps({k: round(v, 2) for k, v in timings.items()}), json.dumps(pii_counts)))
        return iid

    def rate(self, interaction_id: str, rating: int, comment: str | None = None) -> None:
        if rating not in (-1, 1):
            raise ValueError("rating is 1 (thumbs up) or -1 (thumbs down)")
        with self._conn() as c:
            if not c.execute("SELECT 1 FROM interactions WHERE id=?", (interaction_id,)).fetchone():
                raise KeyError(f"no interaction {interaction_id!r} in the audit log")
            # One rating per interaction: changing one's mind (or adding a comment) replaces it.
            c.execute("INSERT OR REPLACE INTO feedback VALUES (?,?,?,?)", (interaction_id, time.time(), rating, self._clean(comment)))

    def interactions(self, user_id: str | None = None, limit: int = 50) -> list[dict]:
        sql = "SELECT i.*, f.rating, f.comment FROM interactions i LEFT JOIN feedback f ON f.interaction_id = i.id"
        args: tuple = ()
        if user_id is not None:
            sql += " WHERE i.user_id = ?"
            args = (user_id,)
        with self._conn() as c:
            rows = c.execute(sql + " ORDER BY i.ts DESC LIMIT ?", args + (limit,)).fetchall()
        out = []
        for r in rows:
            d = dict(r)
            for k in ("citations", "verdicts", "timings", "pii_counts"):
                d[k] = json.loads(d[k])
            out.append(d)
        return out

    def forget(self, user_id: str, reason: str, actor: str | None = None) -> int:
        """Delete a user's conversations and feedback (a data-subject request); the deletion itself is audited."""
        if not reason.strip():
            raise ValueError("a reason is required to delete a user's data")
        actor = actor or getpass.getuser()
        with self._conn() as c:
            n = c.execute("DELETE FROM interactions WHERE user_id = ?", (user_id,)).rowcount
            c.execute("INSERT INTO events VALUES (?,?,?,?,?)",
                      (time.time(), actor, "forget_user", user_id, json.dumps({"reason": reason, "interactions": n})))
        with self._conn() as c:  # deleted rows must not linger in free pages or the WAL
            c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            c.execute("VACUUM")
        return n

    def events(self) -> list[dict]:
        with self._conn() as c:
            return [dict(r) | {"detail": json.loads(r["detail"])} for r in c.execute("SELECT * FROM events ORDER BY ts")]

    def export(self, out: Path) -> dict[str, int]:
        """Rated interactions → eval_cases.jsonl (review queue in eval.jsonl's format), sft_candidates.jsonl
        (thumbs-up grounded answers, chat format) and dpo_candidates.jsonl (same question, one answer rated up and
        another down: TRL's prompt/chosen/rejected)."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        with self._conn() as c:
            rows = [dict(r) for r in c.execute(
                "SELECT i.*, f.rating, f.comment FROM interactions i JOIN feedback f ON f.interaction_id = i.id "
                "ORDER BY f.ts")]
        cases, sft, by_question = [], [], defaultdict(lambda: {1: [], -1: []})
        for r in rows:
            citations = json.loads(r["citations"])
            first = citations[0] if citations else {}
            cases.append({
                "id": f"feedback-{r['id'][:12]}", "question": r["question"],
                "reference": "" if r["refused"] else _CITE.sub("", r["answer"]).strip(),
                "source": first.get("source"), "page": first.get("page"), "audience": "public" if r["role"] == "customer" else "internal",
                "must_refuse": bool(r["refused"]) if r["rating"] > 0 else None, "customer_must_refuse": False,
                "alt_sources": [c["source"] for c in citations[1:]], "rating": r["rating"], "comment": r["comment"],
                "backend": r["backend"], "needs_review": r["rating"] < 0,
            })
            if r["rating"] > 0 and not r["refused"] and citations:
                sft.append({"messages": [{"role": "user", "content": r["question"]},
                                         {"role": "assistant", "content": r["answer"]}],
                            "citations": citations, "role": r["role"], "backend": r["backend"], "interaction": r["id"]})
            by_question[" ".join(r["question"].lower().split())][r["rating"]].append(r)
        dpo = [{"prompt": good["question"], "chosen": good["answer"], "rejected": bad["answer"],
                "chosen_backend": good["backend"], "rejected_backend": bad["backend"], "comment": bad["comment"]}
               for q in by_question.values() for good in q[1] for bad in q[-1] if good["answer"] != bad["answer"]]
        for name, items in (("eval_cases", cases), ("sft_candidates", sft), ("dpo_candidates", dpo)):
            with open(out / f"{name}.jsonl", "w") as f:
                for item in items:
                    f.write(json.dumps(item, ensure_ascii=False) + "\n")
        return {"eval_cases": len(cases), "sft_candidates": len(sft), "dpo_candidates": len(dpo)}
