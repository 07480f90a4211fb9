"""Input hygiene rail: empty, too long, unreadable text → a clear message and nothing sent anywhere; invisible
control characters are removed (they hide payloads and break logs)."""

from __future__ import annotations

import unicodedata

from assistant.guards.base import rail_config


def check_input(text: str) -> tuple[str, str | None, str | None]:
    """(cleaned text, reason code or None, message for the user or None)."""
    cfg = rail_config("hygiene")
    if "\ufffd" in (text or ""):
        return "", "encoding", cfg["messages"]["encoding"]
    cleaned = unicodedata.normalize("NFKC", text or "")
    cleaned = "".join(ch for ch in cleaned if ch in "\n\t" or unicodedata.category(ch)[0] != "C").strip()
    if len(cleaned) < cfg["min_chars"]:
        return cleaned, "empty", cfg["messages"]["empty"]
    if len(cleaned) > cfg["max_chars"]:
        return cleaned, "too_long", cfg["messages"]["too_long"].format(max_chars=cfg["max_chars"])
    return cleaned, None, None
