"""Off-topic detection: is the message about insurance or this insurer at all?

A message naming any insurance or service word (whole words, or stems marked *) is on-topic (cheap, and never refuses "my car was stolen").
Otherwise its embedding decides: nearer to the off-topic anchors than to the on-topic ones, or far from every
on-topic anchor, and it gets a polite refusal saying what the assistant can help with.
"""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np

from assistant.guards.base import Verdict, rail_config, timed


@lru_cache(maxsize=1)
def _terms() -> re.Pattern:
    terms = sorted(rail_config("topic")["terms"], key=len, reverse=True)
    alternatives = [re.escape(t[:-1]) + r"[\w-]*" if t.endswith("*") else re.escape(t) for t in terms]
    return re.compile(r"\b(" + "|".join(alternatives) + r")\b", re.I)


class TopicDetector:
    def __init__(self, embedder):
        self.embedder = embedder
        self._anchors: tuple[np.ndarray, np.ndarray] | None = None

    def anchors(self) -> tuple[np.ndarray, np.ndarray]:
        if self._anchors is None:
            cfg = rail_config("topic")
            self._anchors = (self.embedder.embed(cfg["on_topic_anchors"]), self.embedder.embed(cfg["off_topic_anchors"]))
        return self._anchors

    def check(self, text: str, vector: np.ndarray | None = None) -> Verdict:
        with timed() as t:
            m = _terms().search(text)
            if m:
                verdict = Verdict("topic", True, f"term: {m.group(0).lower()}")
            else:
                cfg = rail_config("topic")
                vector = self.embedder.embed_one(text) if vector is None else vector
                on, off = (float(np.max(a @ vector)) for a in self.anchors())
                on_topic = on >= cfg["on_topic_min_similarity"] and on + cfg["margin"] >= off
                verdict = Verdict("topic", on_topic, f"on {on:.2f} / off {off:.2f}",
                                  data={"on": round(on, 3), "off": round(off, 3)})
        verdict.ms = t.ms
        return verdict
