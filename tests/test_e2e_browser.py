"""End to end in a real browser: `streamlit run` on 127.0.0.1 and headless Chromium (Playwright). Screenshots of every
step go to test-artifacts/e2e/."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.conftest import ROOT, make_pdf
from ui.testing import ask, browser_page, choose, settle, streamlit_server

SHOTS = ROOT / "test-artifacts" / "e2e"
TIMEOUT = 90_000  # ms: the first answer waits for the embedding model to load


def test_chat_role_documents_and_compare_in_a_browser(kb_copy, tmp_path):
    SHOTS.mkdir(parents=True, exist_ok=True)
    env = {"ASSISTANT_STORE_DIR": str(kb_copy), "ASSISTANT_MODELS_DIR": str(tmp_path / "models"),
           "ASSISTANT_EMBEDDERS_DIR": str(tmp_path / "embedders"), "OPENAI_API_KEY": ""}
    pdf = make_pdf(tmp_path / "boat-cover.pdf", ["Sailing boats are covered up to 12 metres in length.",
                                                 "Racing is excluded unless declared."])
    with streamlit_server(env, log=SHOTS / "streamlit.log") as url, browser_page() as page:
        page.set_default_timeout(TIMEOUT)
        expect.set_options(timeout=TIMEOUT)
        page.goto(url)
        expect(page.get_by_test_id("stChatInputTextArea")).to_be_visible()
        page.screenshot(path=SHOTS / "01-chat.png")

        # A customer's question: a streamed answer with a numbered citation and its source.
        ask(page, "How long do you keep call recordings?")
        answer = page.get_by_test_id("stChatMessage").last
        expect(answer).to_contain_text("12 months")
        expect(answer).to_contain_text("[1]")
        expect(page.get_by_text(re.compile("answered for a customer"))).to_be_visible()
        answer.get_by_text(re.compile(r"Sources \(\d+\)")).click()
        expect(answer.get_by_text("Call recordings are kept for 12 months. Quotes")).to_be_visible()
        page.wait_for_timeout(600)  # the expander's opening animation
        page.screenshot(path=SHOTS / "02-answer-with-sources.png", full_page=True)

        # Staff: internal answers, the rails' verdicts, the staff pages.
        page.get_by_test_id("stSidebar").get_by_text("staff", exact=True).click()
        expect(page.get_by_role("link", name="Documents")).to_be_visible()
        ask(page, "What is the internal extension of the Special Investigations Unit?")
        staff_answer = page.get_by_test_id("stChatMessage").last
        expect(staff_answer).to_contain_text("4410")
        staff_answer.get_by_text(re.compile(r"Guard verdicts")).click()  # drawn once the answer is complete
        expect(staff_answer.get_by_text("injection", exact=True).first).to_be_visible()
        page.wait_for_timeout(600)
        page.screenshot(path=SHOTS / "03-staff-answer.png", full_page=True)

        # Documents: upload a PDF, see it ingested and listed, delete it.
        page.get_by_role("link", name="Documents").click()
        expect(page.get_by_role("heading", name=re.compile("Documents"))).to_be_visible()
        page.locator("input[type=file]").set_input_files(str(pdf))
        expect(page.get_by_text("boat-cover.pdf")).to_be_visible()
        page.get_by_role("button", name="Ingest").click()
        expect(page.get_by_text(re.compile(r"added 1 ·"))).to_be_visible()
        expect(page.get_by_test_id("stDataFrame")).to_be_visible()
        settle(page)
        page.screenshot(path=SHOTS / "04-document-uploaded.png", full_page=True)
        uploaded = str((kb_copy.parent / "uploads" / "public" / "boat-cover.pdf").resolve())
        choose(page, "File", uploaded)
        page.get_by_role("button", name="Delete").click()
        page.get_by_role("button", name="Yes, delete").click()
        expect(page.get_by_text(re.compile("Deleted 1 document"))).to_be_visible()
        settle(page)
        page.keyboard.press("Escape")  # close the confirmation popover
        page.screenshot(path=SHOTS / "05-document-deleted.png", full_page=True)

        # Compare A vs B: the offline backend beside an unavailable one, with the reason shown.
        page.get_by_role("link", name="Compare A vs B").click()
        choose(page, "Left", "Offline extractive")
        page.get_by_label("Question", exact=True).fill("How long is the cooling-off period?")
        page.get_by_label("Question", exact=True).press("Enter")
        page.get_by_role("button", name="Compare").click()
        expect(page.get_by_text(re.compile(r"Data left the company:\s*no"))).to_be_visible()
        expect(page.get_by_text(re.compile("OPENAI_API_KEY|private model")).first).to_be_visible()
        settle(page)
        page.set_viewport_size({"width": 1400, "height": 1500})  # both answers and their figures in one shot
        page.screenshot(path=SHOTS / "06-compare.png")
