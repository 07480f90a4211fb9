"""API keys mapped to roles (`ASSISTANT_API_KEYS="k1:customer,k2:staff"`). Keys are compared in constant time and
never logged: the audit log and metrics see only a fingerprint."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

ROLES = ("customer", "staff")


@dataclass(frozen=True)
class Caller:
    role: str
    fingerprint: str  # sha256 prefix of the key: enough to tell keys apart in logs, useless to an attacker

    @property
    def user_id(self) -> str:
        return f"api-{self.fingerprint}"


def fingerprint(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def parse_keys(spec: str | None) -> dict[str, str]:
    """`key:role,key:role` → {key: role}; a malformed entry stops the server at start-up, not at the first request."""
    keys: dict[str, str] = {}
    for entry in (spec or "").split(","):
        entry = entry.strip()
        if not entry:
            continue
        key, sep, role = entry.rpartition(":")
        if not sep or not key or role not in ROLES:
            raise ValueError(f"ASSISTANT_API_KEYS: entries are `key:customer` or `key:staff` (got one ending in {role!r})")
        keys[key] = role
    return keys


class KeyRing:
    def __init__(self, keys: dict[str, str]):
        self._keys = [(k.encode(), role) for k, role in keys.items()]

    def __len__(self) -> int:
        return len(self._keys)

    def caller(self, presented: str | None) -> Caller | None:
        if not presented:
            return None
        given = presented.encode()
        match = None
        for key, role in self._keys:  # every key is compared: the time taken does not tell which one was close
            if hmac.compare_digest(key, given):
                match = role
        return Caller(match, fingerprint(presented)) if match else None
