"""The Streamlit page, run by streamlit.testing's AppTest against the ingested sample KB."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT


def _app(monkeypatch, store_dir):
    from assistant.settings import get_settings

    monkeypatch.setenv("ASSISTANT_STORE_DIR", str(store_dir))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    get_settings.cache_clear()
    at = AppTest.from_file(str(ROOT / "ui" / "app.py"), default_timeout=120)
    at.run()
    return at


def test_chat_answers_with_numbered_sources(monkeypatch, kb_store_dir):
    at = _app(monkeypatch, kb_store_dir)
    assert not at.exception
    assert at.selectbox(key="backend").value == "extractive"
    at.chat_input[0].set_value("How long do you keep call recordings?").run()
    assert not at.exception
    texts = " ".join(m.markdown[0].value for m in at.chat_message if m.markdown)
    assert "12 months" in texts and "[1]" in texts
    assert any("Sources" in e.label for e in at.expander)
    assert any("privacy-notice.html" in md.value for md in at.markdown)
    assert any("answered for a customer" in c.value for c in at.caption)


def test_staff_role_and_unavailable_backend(monkeypatch, kb_store_dir):
    at = _app(monkeypatch, kb_store_dir)
    at.radio(key="role").set_value("staff").run()
    at.chat_input[0].set_value("What is the internal extension of the Special Investigations Unit?").run()
    assert not at.exception
    assert any("4410" in m.markdown[0].value for m in at.chat_message if m.markdown)
    at.selectbox(key="backend").set_value("hosted").run()
    assert any("OPENAI_API_KEY" in w.value for w in at.warning)


def test_empty_store_shows_a_message(monkeypatch, tmp_path):
    at = _app(monkeypatch, tmp_path / "empty")
    assert not at.exception
    assert any("No documents yet" in i.value for i in at.info)


def test_feedback_buttons_write_the_audit_log(monkeypatch, kb_copy):
    from assistant.audit import AuditLog

    at = _app(monkeypatch, kb_copy)
    at.chat_input[0].set_value("How long is the cooling-off period?").run()
    assert not at.exception
    at.feedback[0].set_value(0).run()  # thumbs down asks what was wrong
    at.text_input[0].set_value("It should mention life insurance first").run()
    assert not at.exception
    rows = AuditLog(kb_copy.parent / "audit.sqlite").interactions()
    assert rows[0]["question"] == "How long is the cooling-off period?"
    assert rows[0]["rating"] == -1 and rows[0]["comment"] == "It should mention life insurance first"
