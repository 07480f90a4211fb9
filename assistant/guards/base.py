"""What every rail shares: its YAML configuration and the verdict it returns."""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

RAILS = Path(__file__).parent / "rails"


@lru_cache(maxsize=32)
def rail_config(name: str, file: str = "config.yaml"):
    return yaml.safe_load((RAILS / name / file).read_text())


@lru_cache(maxsize=32)
def compiled(name: str, key: str) -> tuple[re.Pattern, ...]:
    """A rail's phrase list as compiled, case-insensitive, multi-line patterns."""
    return tuple(re.compile(p, re.I | re.M) for p in rail_config(name)[key])


def first_match(patterns, text: str) -> str | None:
    for p in patterns:
        m = p.search(text)
        if m:
            return m.group(0)
    return None


@dataclass
class Verdict:
    """One rail's decision: `passed` False means it blocked or changed something; `detail` says what."""

    rail: str
    passed: bool
    detail: str = ""
    ms: float = 0.0
    data: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        out = asdict(self)
        out["ms"] = round(self.ms, 2)
        if not out["data"]:
            del out["data"]
        return out


class timed:
    """`with timed() as t: ...` then `t.ms`."""

    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.ms = (time.perf_counter() - self.t0) * 1000
