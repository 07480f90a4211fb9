"""Chat: streamed answers with numbered sources, backend and role, memory, feedback, a person on request."""

from __future__ import annotations

import streamlit as st

from ui.components import (BACKEND_LABELS, backend_label, current_role, friendly_error, render_feedback,
                           render_sources, render_verdicts)
from ui.resources import get_assistant

HANDOFF_REQUEST = "I would like to talk to a person, please."

st.title("Brightwater Mutual — customer service")
# The box is pinned to the bottom wherever it is called: calling it before the first, slow load of the embedding
# model lets a customer start typing while that load runs.
typed = st.chat_input("Ask about your cover, claims, payments…")
assistant = get_assistant()
available = assistant.backends()
role = current_role()

with st.sidebar:
    options = list(BACKEND_LABELS)
    backend = st.selectbox("Answering backend", options, index=options.index(assistant.settings.backend),
                           format_func=lambda b: backend_label(b, available), key="backend")
    if not available[backend][0]:
        st.warning(available[backend][1])
    if st.button("New conversation", icon=":material/refresh:"):
        st.session_state.messages = []
        st.session_state.pop("session", None)
    person = st.button("Talk to a person", icon=":material/support_agent:",
                       help="Our team's contact details, and this conversation flagged for them")
    st.caption(f"{assistant.store.count()} passages in the knowledge base")

if assistant.store.count() == 0:
    st.info("No documents yet. Staff can add some on the Documents page, or run `python -m ingest data/sample_kb` "
            "(`make run` does it).")
    st.stop()

from assistant.session import Session  # noqa: E402  (after the first paint: the page shows before this import)

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
            render_sources(m.get("citations", []), assistant.store, key=str(i))
            if role == "staff":
                render_verdicts(m.get("guards", []), key=str(i))
            if m.get("caption"):
                st.caption(m["caption"])
            render_feedback(assistant.audit, m.get("interaction_id"), str(i))

question = typed or (HANDOFF_REQUEST if person else None)
if not question:
    st.stop()

with st.chat_message("user"):
    st.markdown(question)
messages.append({"role": "user", "content": question})

with st.chat_message("assistant"):
    if not available[backend][0]:
        st.error(f"The {BACKEND_LABELS[backend]} backend is not available: {available[backend][1]}")
        messages.pop()
        st.stop()
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
        st.error(friendly_error(e))
        messages.pop()
        st.stop()
    answer = final["answer"]
    caption = f"{BACKEND_LABELS[backend]} · answered for a {answer.role} · {answer.timings_ms['total']:.0f} ms"
    if answer.handoff:
        caption += " · handed over to our team"
    if answer.fallback:  # the backend's own answer failed the checks; the documents' sentences stand in for it
        caption += " · quoted from the documents"
    st.caption(caption)
messages.append({"role": "assistant", "content": answer.answer, "citations": answer.citations, "guards": answer.guards,
                 "caption": caption, "interaction_id": answer.interaction_id})
st.rerun()  # draw the finished answer with its sources, verdicts and feedback buttons
