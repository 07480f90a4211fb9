"""Human hand-off: when a person should take over, and how to reach one (from the knowledge base)."""

from __future__ import annotations

from assistant.guards.base import Verdict, compiled, first_match, rail_config, timed


def detect_handoff(text: str) -> Verdict:
    """passed=False with data["kind"] in request | escalation | self_harm | distress | anger when a person should
    step in."""
    with timed() as t:
        kind, hit = None, None
        for k, key in (("request", "request_patterns"), ("escalation", "escalation_patterns"),
                       ("self_harm", "self_harm_patterns"), ("distress", "distress_patterns"),
                       ("anger", "anger_patterns")):
            hit = first_match(compiled("handoff", key), text)
            if hit:
                kind = k
                break
    if kind is None:
        return Verdict("handoff", True, ms=t.ms)
    return Verdict("handoff", False, f"{kind}: {hit}", t.ms, {"kind": kind})


def handoff_message(kind: str, contact_text: str) -> str:
    messages = rail_config("handoff")["messages"]
    lead = messages["distress" if kind == "self_harm" else kind]
    text = f"{lead}\n\n{contact_text}"
    if kind == "self_harm":
        text = f"{messages['self_harm']}\n\n{text}"
    return text
