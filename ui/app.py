"""Brightwater Mutual assistant — the Streamlit application (multi-page).

    streamlit run ui/app.py        (`make run` ingests the sample documents first)

Everyone: Chat, Compare A vs B. Staff: Documents, Models, Feedback. Heavy objects (embedding model, store, private
model) are loaded once per process in ui/resources.py; each page is one file in ui/views/.
"""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `streamlit run` does not put the repo on the path

st.set_page_config(page_title="Brightwater Mutual assistant", page_icon=":material/shield:", layout="wide")

from ui.components import role_selector  # noqa: E402
from ui.resources import settings  # noqa: E402

role = role_selector(settings())
st.session_state["effective_role"] = role

everyone = [st.Page("views/chat.py", title="Chat", icon=":material/chat:", default=True),
            st.Page("views/compare.py", title="Compare A vs B", icon=":material/compare_arrows:")]
staff = [st.Page("views/documents.py", title="Documents", icon=":material/description:"),
         st.Page("views/models.py", title="Models", icon=":material/model_training:"),
         st.Page("views/feedback.py", title="Feedback", icon=":material/thumbs_up_down:")]
st.navigation({"Assistant": everyone, "Staff": staff} if role == "staff" else everyone).run()
