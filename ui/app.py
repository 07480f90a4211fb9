"""Brightwater Mutual assistant — Streamlit chat with streamed answers and numbered sources.

    streamlit run ui/app.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `streamlit run` does not put the repo on the path

st.set_page_config(page_title="Brightwater Mutual assistant", page_icon="🛡️", layout="wide")

BACKEND_LABELS = {"extractive": "Offline extractive", "hosted": "Solution A · hosted API", "private": "Solution B · private model"}


@st.cache_resource(show_spinner="Loading the knowledge base and the embedding model…")
def get_assistant(store_dir: str):
    # Loaded once per process and store, not per message.
    from assistant.pipeline import Assistant
    from assistant.settings import get_settings

    assistant = Assistant(get_settings().model_copy(update={"store_dir": Path(store_dir)}))
    assistant.guards.warm_up()  # the first customer should not wait for the rails' anchors to be embedded
    return assistant


def record_feedback(assistant, interaction_id: str, key: str) -> None:
    """Thumbs up/down (and an optional comment) into the audit log: the evaluation loop's input."""
    rating = st.session_state.get(f"fb-{key}")
    if rating is None or assistant.audit is None:
        return
    assistant.audit.rate(interaction_id, 1 if rating == 1 else -1, st.session_state.get(f"fbc-{key}") or None)


def render_feedback(assistant, message: dict, key: str) -> None:
    iid = message.get("interaction_id")
    if not iid or assistant.audit is None:
        return
    cols = st.columns([1, 6])
    with cols[0]:
        st.feedback("thumbs", key=f"fb-{key}", on_change=record_feedback, args=(assistant, iid, key))
    with cols[1]:
        if st.session_state.get(f"fb-{key}") == 0:  # thumbs down: ask what was wrong
            st.text_input("What was wrong? (optional)", key=f"fbc-{key}", on_change=record_feedback,
                          args=(assistant, iid, key), label_visibility="collapsed", placeholder="What was wrong? (optional)")


def render_sources(citations) -> None:
    if not citations:
        return
    with st.expander(f"Sources ({len(citations)})", expanded=False):
        for c in citations:
            where = c.source + (f", page {c.page}" if c.page else "")
            st.markdown(f"**[{c.n}] {where}**")
            st.caption(c.snippet[:400])


def main() -> None:
    st.title("🛡️ Brightwater Mutual — customer service")
    from assistant.settings import get_settings

    assistant = get_assistant(str(get_settings().store_dir))
    available = assistant.backends()

    with st.sidebar:
        st.header("Settings")
        options = list(BACKEND_LABELS)
        default = options.index(assistant.settings.backend)
        backend = st.selectbox("Answering backend", options, index=default, format_func=lambda b: BACKEND_LABELS[b]
                               + ("" if available[b][0] else " (unavailable)"), key="backend")
        if not available[backend][0]:
            st.warning(available[backend][1])
        role = st.radio("I am a", ["customer", "staff"], horizontal=True, key="role",
                        help="Customers see public documents only; staff also see internal manuals.")
        if st.button("New conversation"):
            st.session_state.messages = []
            st.session_state.pop("session", None)
        docs = assistant.store.count()
        st.caption(f"{docs} passages in the knowledge base")

    if assistant.store.count() == 0:
        st.info("No documents yet. Ingest some with `python -m ingest data/sample_kb` (or `make run`).")
        return

    from assistant.session import Session

    messages = st.session_state.setdefault("messages", [])
    # Redacted history and the customer's own references live in this browser session only.
    if "session" not in st.session_state:
        st.session_state.session = Session()
        st.session_state.session.user_id = f"web-{st.session_state.session.session_id[:12]}"
    session = st.session_state.session
    for i, m in enumerate(messages):
        with st.chat_message(m["role"]):
            st.markdown(m["content"])
            if m["role"] == "assistant":
                render_sources(m.get("citations", []))
                if m.get("caption"):
                    st.caption(m["caption"])
                render_feedback(assistant, m, str(i))

    question = st.chat_input("Ask about your cover, claims, payments…")
    if not question:
        return
    with st.chat_message("user"):
        st.markdown(question)
    messages.append({"role": "user", "content": question})

    with st.chat_message("assistant"):
        if not available[backend][0]:
            st.error(f"The {BACKEND_LABELS[backend]} backend is not available: {available[backend][1]}")
            messages.pop()
            return
        final = {}

        def tokens():
            for kind, value in assistant.stream(question, role=role, backend=backend, session=session):
                if kind == "token":
                    yield value
                elif kind == "answer":
                    final["answer"] = value

        try:
            st.write_stream(tokens())
        except Exception as e:  # a person sees a sentence, not a traceback
            st.error(f"Sorry, something went wrong while answering: {e}")
            messages.pop()
            return
        answer = final["answer"]
        render_sources(answer.citations)
        caption = f"{BACKEND_LABELS[backend]} · answered for a {answer.role} · {answer.timings_ms['total']:.0f} ms"
        if answer.handoff:
            caption += " · handed over to our team"
        st.caption(caption)
    messages.append({"role": "assistant", "content": answer.answer, "citations": answer.citations,
                     "caption": caption, "interaction_id": answer.interaction_id})
    st.rerun()  # draw the finished answer with its feedback buttons


main()
