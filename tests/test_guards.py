"""The PII detector shared by the assistant's guards and the training corpus scrubber."""

from __future__ import annotations

from assistant.guards.pii import luhn_ok, redact


def test_redaction_types_and_restores_only_for_the_session():
    text = ("My name is Jane Doe, claim number CLM-889123, card 4111-1111-1111-1111, call 07700 900123 "
            "or mail jane@example.com. My IBAN is GB82 WEST 1234 5698 7654 32.")
    r = redact(text)
    for secret in ("Jane Doe", "CLM-889123", "4111-1111-1111-1111", "07700 900123", "jane@example.com", "GB82 WEST"):
        assert secret not in r.text
    assert r.counts() == {"NAME": 1, "POLICY": 1, "CARD": 1, "PHONE": 1, "EMAIL": 1, "IBAN": 1}
    assert r.restore(r.text) == text  # what the same customer sees back


def test_not_personal_data_stays():
    text = "The excess is EUR 250; limit EUR 25,000 over 12 months from 2024-05-01; call 0800 555 0142."
    assert redact(text, keep={"0800 555 0142"}).text == text
    assert "4111 1111 1111 1112" in redact("card 4111 1111 1111 1112").text  # fails the Luhn check: not a card
    assert luhn_ok("4111 1111 1111 1111") and not luhn_ok("4111 1111 1111 1112")


def test_input_hygiene_answers_clearly_and_retrieves_nothing(kb_assistant):
    for text, reason in [("", "empty"), ("   \x00 ", "empty"), ("x" * 2500, "too_long"), ("Is my \ufffd covered?", "encoding")]:
        ans = kb_assistant.ask(text)
        assert ans.refused and ans.refusal_reason == f"invalid_input: {reason}" and ans.answer
        assert not ans.citations and "retrieve" not in ans.timings_ms
    # Invisible control characters are removed, the question itself is answered.
    ans = kb_assistant.ask("What is the deductible\u200b on renters\x07 insurance?")
    assert not ans.refused and ans.citations
