"""Feedback (staff): rated interactions from the audit log, filters, and the export that feeds evaluation and training."""

from __future__ import annotations

import io
import tempfile
import zipfile
from pathlib import Path

import pandas as pd
import streamlit as st

from ui.resources import settings

st.title("Feedback")
cfg = settings()
if not cfg.audit_enabled:
    st.info("The audit log is switched off (ASSISTANT_AUDIT_ENABLED=false): there is no feedback to show.")
    st.stop()

from assistant.audit import AuditLog  # noqa: E402

audit = AuditLog(cfg.audit_path)
rows = audit.interactions(limit=5000)
if not rows:
    st.info("No interactions yet: answers rated with 👍/👎 in the chat appear here.")
    st.stop()

frame = pd.DataFrame([{"time": pd.to_datetime(r["ts"], unit="s"), "rating": {1: "👍", -1: "👎"}.get(r["rating"], ""), "comment": r["comment"] or "",
                       "question": r["question"], "answer": r["answer"], "backend": r["backend"], "role": r["role"],
                       "refused": bool(r["refused"]), "handoff": r["handoff"] or "", "user": r["user_id"]} for r in rows])
cols = st.columns(4)
rating = cols[0].selectbox("Rating", ["rated", "👍", "👎", "all"], key="fb_rating")
backends = cols[1].multiselect("Backend", sorted(frame["backend"].unique()), key="fb_backend")
roles = cols[2].multiselect("Role", sorted(frame["role"].unique()), key="fb_role")
text = cols[3].text_input("Question contains", key="fb_text")
shown = frame
if rating == "rated":
    shown = shown[shown["rating"] != ""]
elif rating != "all":
    shown = shown[shown["rating"] == rating]
if backends:
    shown = shown[shown["backend"].isin(backends)]
if roles:
    shown = shown[shown["role"].isin(roles)]
if text:
    shown = shown[shown["question"].str.contains(text, case=False, regex=False)]
rated = frame[frame["rating"] != ""]
m = st.columns(3)
m[0].metric("Interactions", len(frame))
m[1].metric("Rated", len(rated))
m[2].metric("Thumbs up", f"{(rated['rating'] == '👍').mean():.0%}" if len(rated) else "–")
st.dataframe(shown, hide_index=True, width="stretch")

st.subheader("Export")
st.caption("eval_cases.jsonl (a review queue in eval.jsonl's format: `python -m assistant evaluate --set`), "
           "sft_candidates.jsonl (thumbs-up answers, chat format) and dpo_candidates.jsonl (TRL prompt/chosen/rejected).")
if st.button("Prepare export", key="fb_export"):
    with tempfile.TemporaryDirectory() as tmp:
        counts = audit.export(Path(tmp))
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
            for f in sorted(Path(tmp).glob("*.jsonl")):
                z.write(f, f.name)
    st.session_state.fb_zip = (buffer.getvalue(), counts)
if "fb_zip" in st.session_state:
    data, counts = st.session_state.fb_zip
    st.write(", ".join(f"{k}: {v}" for k, v in counts.items()))
    st.download_button("Download feedback export (zip)", data, "feedback-export.zip", "application/zip", key="fb_download")
