"""Safety rails around every backend: input validation, PII redaction, context sanitizing and output checks.

Each rail's thresholds, phrase lists and messages live in `assistant/guards/rails/<rail>/config.yaml`
(one folder per rail, as in NeMo Guardrails), changeable without code.
"""
