"""Pieces shared by the pages: the role, backend labels, sources with downloads, guard verdicts, feedback buttons."""

from __future__ import annotations

import hmac
from pathlib import Path

import streamlit as st

BACKEND_LABELS = {"extractive": "Offline extractive", "hosted": "Solution A · hosted API",
                  "private": "Solution B · private model"}


def role_selector(settings) -> str:
    """Customer or staff. With `ASSISTANT_UI_STAFF_CODE` set, staff pages need the code (once per browser session)."""
    with st.sidebar:
        role = st.radio("I am", ["customer", "staff"], horizontal=True, key="role",
                        help="Customers see public documents only; staff also see internal manuals and the staff pages.")
        code = settings.ui_staff_code.get_secret_value() if settings.ui_staff_code else ""
        if role == "staff" and code and not st.session_state.get("staff_ok"):
            entered = st.text_input("Staff access code", type="password", key="staff_code")
            if entered and hmac.compare_digest(entered, code):
                st.session_state.staff_ok = True
            else:
                if entered:
                    st.error("That code is not right.")
                st.caption("Until the code is entered you are answered as a customer.")
                return "customer"
    return role


def current_role() -> str:
    return st.session_state.get("effective_role", "customer")


def backend_label(backend: str, available: dict) -> str:
    return BACKEND_LABELS[backend] + ("" if available[backend][0] else " (unavailable)")


def source_file(store, doc_id: str) -> Path | None:
    """The document a citation came from, if its file is still where it was ingested from."""
    record = store.manifest.get(doc_id)
    if record is None:
        return None
    path = Path(record.path)
    return path if path.is_file() else None


def render_sources(citations, store=None, key: str = "") -> None:
    if not citations:
        return
    with st.expander(f"Sources ({len(citations)})", expanded=False):
        for c in citations:
            where = c.where() if hasattr(c, "where") else c.source
            cols = st.columns([5, 1])
            cols[0].markdown(f"**[{c.n}] {where}**")
            path = source_file(store, c.doc_id) if store is not None else None
            if path is not None:
                cols[1].download_button("Download", path.read_bytes(), file_name=path.name, key=f"dl-{key}-{c.n}",
                                        help=f"the source document {path.name}")
            st.caption(c.snippet[:400])


def render_verdicts(guards: list[dict], key: str = "") -> None:
    """Every rail's verdict (staff only): which passed, which changed or blocked something, and why."""
    if not guards:
        return
    blocked = [g for g in guards if not g.get("passed")]
    label = f"Guard verdicts ({len(guards)} rails, {len(blocked)} acted)"
    with st.expander(label, expanded=False):
        for g in guards:
            mark = ":green[:material/check_circle:]" if g.get("passed") else ":orange[:material/warning:]"
            st.markdown(f"{mark} **{g['rail']}** · {g.get('ms', 0):.1f} ms" + (f" — {g['detail']}" if g.get("detail") else ""))


def _record_feedback(audit, interaction_id: str, key: str) -> None:
    """Thumbs up/down (and an optional comment) into the audit log: the evaluation loop's input."""
    rating = st.session_state.get(f"fb-{key}")
    if rating is None:
        return
    audit.rate(interaction_id, 1 if rating == 1 else -1, st.session_state.get(f"fbc-{key}") or None)


def render_feedback(audit, interaction_id: str | None, key: str) -> None:
    if not interaction_id or audit is None:
        return
    cols = st.columns([1, 6])
    with cols[0]:
        st.feedback("thumbs", key=f"fb-{key}", on_change=_record_feedback, args=(audit, interaction_id, key))
    with cols[1]:
        if st.session_state.get(f"fb-{key}") == 0:  # thumbs down: ask what was wrong
            st.text_input("What was wrong? (optional)", key=f"fbc-{key}", on_change=_record_feedback,
                          args=(audit, interaction_id, key), label_visibility="collapsed",
                          placeholder="What was wrong? (optional)")


def friendly_error(e: Exception) -> str:
    """A sentence a person understands instead of a traceback."""
    text = str(e) or type(e).__name__
    if "api key" in text.lower() or "OPENAI_API_KEY" in text:
        return "The hosted API is not configured: set OPENAI_API_KEY (and OPENAI_BASE_URL for another provider)."
    if "private model" in text.lower() or "no promoted" in text.lower():
        return "The private model is not trained yet: train one on the Models page or with `make train`."
    return f"Sorry, something went wrong: {text}"
