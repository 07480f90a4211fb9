"""Every page of the Streamlit application, run by streamlit.testing's AppTest against real stores and registries."""

from __future__ import annotations

import shutil
import time

from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT, SAMPLE_KB, make_pdf


def _app(monkeypatch, store_dir, tmp_path, role="customer", models=None):
    from assistant.settings import get_settings

    monkeypatch.setenv("ASSISTANT_STORE_DIR", str(store_dir))
    monkeypatch.setenv("ASSISTANT_MODELS_DIR", str(models or tmp_path / "no-models"))
    monkeypatch.setenv("ASSISTANT_EMBEDDERS_DIR", str(tmp_path / "embedders"))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("ASSISTANT_UI_STAFF_CODE", raising=False)
    get_settings.cache_clear()
    at = AppTest.from_file(str(ROOT / "ui" / "app.py"), default_timeout=180)
    at.run()
    if role != "customer":
        at.radio(key="role").set_value(role).run()
    assert not at.exception
    return at


def _page(at, name):
    at.switch_page(f"views/{name}.py").run()
    assert not at.exception, at.exception
    return at


def _texts(at) -> str:
    return " ".join(m.markdown[0].value for m in at.chat_message if m.markdown)


def test_chat_answers_with_numbered_sources_and_a_download(monkeypatch, kb_store_dir, tmp_path):
    at = _app(monkeypatch, kb_store_dir, tmp_path)
    assert at.selectbox(key="backend").value == "extractive"
    at.chat_input[0].set_value("How long do you keep call recordings?").run()
    assert not at.exception
    assert "12 months" in _texts(at) and "[1]" in _texts(at)
    assert any("Sources" in e.label for e in at.expander)
    assert any("privacy-notice.html" in md.value for md in at.markdown)
    assert any("answered for a customer" in c.value for c in at.caption)
    assert at.download_button, "each cited document can be downloaded"
    assert not any("Guard verdicts" in e.label for e in at.expander), "customers do not see the rails' verdicts"
    # Memory: a follow-up resolved against the first question; then "new conversation" forgets it.
    at.chat_input[0].set_value("And who can ask for them?").run()
    assert len(at.chat_message) == 4
    next(b for b in at.button if b.label == "New conversation").click().run()
    assert len(at.chat_message) == 0


def test_staff_see_internal_answers_verdicts_and_staff_pages(monkeypatch, kb_store_dir, tmp_path):
    at = _app(monkeypatch, kb_store_dir, tmp_path, role="staff")
    at.chat_input[0].set_value("What is the internal extension of the Special Investigations Unit?").run()
    assert not at.exception
    assert "4410" in _texts(at)
    assert any("Guard verdicts" in e.label for e in at.expander)
    at.selectbox(key="backend").set_value("hosted").run()
    assert any("OPENAI_API_KEY" in w.value for w in at.warning)


def test_staff_code_guards_the_staff_role(monkeypatch, kb_store_dir, tmp_path):
    monkeypatch.setenv("ASSISTANT_UI_STAFF_CODE", "s3cret")
    from assistant.settings import get_settings

    monkeypatch.setenv("ASSISTANT_STORE_DIR", str(kb_store_dir))
    get_settings.cache_clear()
    at = AppTest.from_file(str(ROOT / "ui" / "app.py"), default_timeout=180).run()
    at.radio(key="role").set_value("staff").run()
    at.chat_input[0].set_value("What is the internal extension of the Special Investigations Unit?").run()
    assert "4410" not in _texts(at), "without the code, staff questions are answered as a customer's"
    at.text_input(key="staff_code").set_value("wrong").run()
    assert any("not right" in e.value for e in at.error)
    at.text_input(key="staff_code").set_value("s3cret").run()
    at.chat_input[0].set_value("What is the internal extension of the Special Investigations Unit?").run()
    assert "4410" in _texts(at)


def test_empty_store_shows_a_message(monkeypatch, tmp_path):
    at = _app(monkeypatch, tmp_path / "empty", tmp_path)
    assert any("No documents yet" in i.value for i in at.info)
    _page(at, "compare")
    assert any("No documents yet" in i.value for i in at.info)


def test_feedback_buttons_and_the_feedback_page(monkeypatch, kb_copy, tmp_path):
    from assistant.audit import AuditLog

    at = _app(monkeypatch, kb_copy, tmp_path)
    at.chat_input[0].set_value("How long is the cooling-off period?").run()
    assert not at.exception
    at.feedback[0].set_value(0).run()  # thumbs down asks what was wrong
    at.text_input[0].set_value("It should mention life insurance first").run()
    assert not at.exception
    rows = AuditLog(kb_copy.parent / "audit.sqlite").interactions()
    assert rows[0]["question"] == "How long is the cooling-off period?"
    assert rows[0]["rating"] == -1 and rows[0]["comment"] == "It should mention life insurance first"

    at.radio(key="role").set_value("staff").run()
    _page(at, "feedback")
    frame = at.dataframe[0].value
    assert list(frame["comment"]) == ["It should mention life insurance first"] and list(frame["rating"]) == ["👎"]
    at.selectbox(key="fb_rating").set_value("👍").run()
    assert len(at.dataframe[0].value) == 0
    at.button(key="fb_export").click().run()
    assert not at.exception and at.download_button
    assert any("eval_cases: 1" in m.value for m in at.markdown)


def test_talk_to_a_person(monkeypatch, kb_store_dir, tmp_path):
    at = _app(monkeypatch, kb_store_dir, tmp_path)
    next(b for b in at.button if b.label == "Talk to a person").click().run()
    assert not at.exception
    assert "0800 555 0142" in _texts(at)
    assert any("handed over to our team" in c.value for c in at.caption)


def test_compare_page_side_by_side_and_batch(monkeypatch, kb_store_dir, tmp_path):
    at = _page(_app(monkeypatch, kb_store_dir, tmp_path), "compare")
    assert any("OPENAI_API_KEY" in i.value for i in at.info)  # hosted: not configured here, extractive stands in
    assert at.selectbox(key="cmp_a").value == "extractive"
    assert any("private model" in w.value for w in at.warning)  # private: none trained in this registry
    at.selectbox(key="cmp_a").set_value("extractive").run()
    at.text_input(key="cmp_question").set_value("How long is the cooling-off period?").run()
    at.button(key="cmp_go").click().run()
    assert not at.exception
    assert any("14 days" in m.value for m in at.markdown)
    labels = {m.label: m.value for m in at.metric}
    assert labels["Estimated cost"] == "$0.00000" and labels["Latency"].endswith("ms")
    assert any("Data left the company:** no" in m.value for m in at.markdown)

    at.multiselect(key="cmp_backends").set_value(["extractive"]).run()
    at.number_input(key="cmp_limit").set_value(4).run()
    at.button(key="cmp_run").click().run()
    assert not at.exception
    table = at.dataframe[0].value
    assert list(table.index) == ["extractive"] and table.loc["extractive", "questions"] == 4
    assert at.download_button(key="cmp_csv").label.startswith("Download results")


def test_compare_page_rejects_a_bad_evaluation_set(monkeypatch, kb_store_dir, tmp_path):
    at = _page(_app(monkeypatch, kb_store_dir, tmp_path), "compare")
    at.file_uploader(key="cmp_set").upload("set.jsonl", b'{"q": "no question field"}\n', "application/jsonl").run()
    at.button(key="cmp_run").click().run()
    assert not at.exception
    assert any("not a usable evaluation set" in e.value for e in at.error)


def test_documents_page_uploads_lists_reingests_and_deletes(monkeypatch, kb_copy, tmp_path):
    at = _page(_app(monkeypatch, kb_copy, tmp_path, role="staff"), "documents")
    before = at.dataframe[0].value
    assert "data/sample_kb/faq/faq-export.csv" in set(before["file"])
    pdf = make_pdf(tmp_path / "boat-cover.pdf", ["Sailing boats are covered up to 12 metres in length.",
                                                 "Racing is excluded unless declared."])
    at.file_uploader[0].set_value([("boat-cover.pdf", pdf.read_bytes(), "application/pdf"),
                                   ("broken.pdf", b"%PDF-1.4 not really a pdf", "application/pdf")])
    next(b for b in at.button if b.label == "Ingest").click().run()
    assert not at.exception
    assert any("added 1" in s.value for s in [*at.warning, *at.success])
    assert any("broken.pdf was not ingested" in e.value for e in at.error)
    uploads = kb_copy.parent / "uploads" / "public"
    assert (uploads / "boat-cover.pdf").exists() and not (uploads / "broken.pdf").exists()
    files = set(at.dataframe[0].value["file"])
    uploaded = next(f for f in files if f.endswith("boat-cover.pdf"))

    next(s for s in at.selectbox if s.label == "File").set_value(uploaded).run()
    at.button(key="doc_reingest").click().run()
    assert any("skipped 1" in s.value for s in at.success), "an unchanged file is not re-embedded"
    at.button(key="doc_delete").click().run()
    assert not at.exception
    assert uploaded not in set(at.dataframe[0].value["file"])
    assert any("Deleted 1 document" in s.value for s in at.success)
    assert next(s for s in at.selectbox if s.label == "File").value is None
    assert not (uploads / "boat-cover.pdf").exists()


def test_models_page_lists_promotes_deletes_and_trains(monkeypatch, kb_store_dir, tmp_path, trained):
    reg, version = trained
    models = tmp_path / "models"
    shutil.copytree(reg.dir, models)
    at = _page(_app(monkeypatch, kb_store_dir, tmp_path, role="staff", models=models), "models")
    table = at.dataframe[0].value
    assert list(table["version"]) == [version] and list(table["promoted"]) == ["★"]
    assert any("Report card" in e.label for e in at.expander)
    assert any(f"Report card — {version}" in m.value for m in at.markdown)
    assert any(s.value == "Loss curves" for s in at.subheader)

    at.text_input(key="delete_reason").set_value("test clean-up").run()
    at.button(key="delete_yes").click().run()
    assert any("promoted model" in e.value for e in at.error), "the promoted version is protected"
    assert (models / version).exists()

    at.selectbox(key="train_preset").set_value("cpu-tiny").run()
    at.button(key="train_start").click().run()
    assert not at.exception
    from ui.resources import training_jobs

    job = training_jobs()["current"]
    deadline = time.time() + 60
    while job.running and not job.tail() and time.time() < deadline:
        time.sleep(1)
    assert job.running and job.version.startswith("cpu-tiny-")
    at.run()
    assert any(job.version in m.value and "running" in m.value for m in at.markdown)
    job.stop()
    at.run()
    assert any("stopped" in m.value for m in at.markdown)
