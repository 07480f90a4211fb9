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

    return Assistant(get_settings().model_copy(update={"store_dir": Path(store_dir)}))


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
        docs = assistant.store.count()
        st.caption(f"{docs} passages in the knowledge base")

    if assistant.store.count() == 0:
        st.info("No documents yet. Ingest some with `python -m ingest data/sample_kb` (or `make run`).")
        return

    messages = st.session_state.setdefault("messages", [])
    for m in messages:
        with st.chat_message(m["role"]):
            st.markdown(m["content"])
            if m["role"] == "assistant":
                render_sources(m.get("citations", []))

    question = st.chat_input("Ask about your cover, claims, payments…")
    if not question:
        return
    with st.chat_message("user"):
        st.markdown(question)
    history = [(messages[i]["content"], messages[i + 1]["content"]) for i in range(0, len(messages) - 1, 2)]
    messages.append({"role": "user", "content": question})

    with st.chat_message("assistant"):
        if not available[backend][0]:
            st.error(f"The {BACKEND_LABELS[backend]} backend is not available: {available[backend][1]}")
            messages.pop()
            return
        final = {}

        def tokens():
            for kind, value in assistant.stream(question, role=role, backend=backend, history=history):
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
        st.caption(f"{BACKEND_LABELS[backend]} · answered for a {answer.role} · {answer.timings_ms['total']:.0f} ms")
    messages.append({"role": "assistant", "content": answer.answer, "citations": answer.citations})


main()
