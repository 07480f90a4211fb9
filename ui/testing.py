"""Drive the real application in a real browser: `streamlit run` on 127.0.0.1 and headless Chromium through
Playwright. Used by the end-to-end test and bench/ui_latency.py.

Chromium is Debian's (`apt-get install -y chromium`; `make browser` does it), never `playwright install`
(no downloads at run time).
"""

from __future__ import annotations

import os
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path

from assistant.server.process import background, free_port

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_path() -> str:
    path = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        raise RuntimeError("Chromium is not installed: run `make browser` (apt-get install -y chromium)")
    return path


@contextmanager
def streamlit_server(env: dict[str, str], timeout: float = 120, log: Path | None = None):
    """`streamlit run ui/app.py` on a free local port; yields its URL once /_stcore/health answers."""
    port = free_port()
    cmd = [sys.executable, "-m", "streamlit", "run", str(ROOT / "ui" / "app.py"), "--server.headless", "true",
           "--server.address", "127.0.0.1", "--server.port", str(port), "--browser.gatherUsageStats", "false"]
    url = f"http://127.0.0.1:{port}"
    with background(cmd, env, f"{url}/_stcore/health", ready=lambda body: body.strip() == b"ok", timeout=timeout, log=log):
        yield url


@contextmanager
def browser_page(viewport=(1400, 1000)):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
            yield page
        finally:
            browser.close()


def settle(page, timeout: float = 90_000) -> None:
    """Wait until the script run is over and no stale element from the previous run is left on screen."""
    page.wait_for_function("() => !document.querySelector('[data-testid=stStatusWidget]')"
                           " && !document.querySelector('[data-stale=true]')", timeout=timeout)


def ask(page, question: str) -> None:
    box = page.get_by_test_id("stChatInputTextArea")
    box.fill(question)
    box.press("Enter")


def choose(page, label: str, option: str) -> None:
    """Pick `option` in the st.selectbox labelled `label` (typed: long option lists are virtualized)."""
    box = page.get_by_test_id("stSelectbox").filter(has=page.get_by_text(label, exact=True))
    box.click()
    page.keyboard.type(option)
    page.get_by_role("option", name=option).first.click()
