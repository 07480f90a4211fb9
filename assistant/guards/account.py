"""A customer asking about their own records: the status of their claim, whether a payment went through, their
policy number, what is on file. No document states these and the assistant sees no account, so the question is told
where the records are (My Brightwater, the schedule, the team) instead of being answered with a sentence that shares
its words ("what is my policy number?" was answered "Have your policy number … ready"). Patterns, not embeddings:
MiniLM puts "has my claim been paid?" beside "how long does a claim take to pay?" (anchors that caught 58% of such
questions refused 4% of the answerable ones). Customers only: staff ask about procedures.
"""

from __future__ import annotations

from assistant.guards.base import Verdict, compiled, first_match, timed


def check_account(text: str) -> Verdict:
    with timed() as t:
        how_to = first_match(compiled("account", "general_patterns"), text)  # "how do I find my policy number?"
        m = None if how_to else first_match(compiled("account", "patterns"), text)
        verdict = Verdict("account", m is None, f"own records: {m!r}" if m else "")
    verdict.ms = t.ms
    return verdict
