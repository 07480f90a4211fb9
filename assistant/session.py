"""One customer's conversation: what the backends may see (redacted history) and what only this session may
see (the customer's own personal data, to echo back to them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from uuid import uuid4


@dataclass
class Session:
    user_id: str = "anonymous"
    session_id: str = field(default_factory=lambda: uuid4().hex)
    history: list[tuple[str, str]] = field(default_factory=list)  # redacted (question, answer) turns
    pii: dict[str, str] = field(default_factory=dict)  # placeholder -> the customer's own value
    refusals_in_row: int = 0

    def restore(self, text: str) -> str:
        """The customer's own references back into what this customer sees (never into logs or requests)."""
        for placeholder, value in self.pii.items():
            text = text.replace(placeholder, value)
        return text
