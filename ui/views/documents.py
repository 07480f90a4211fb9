"""Documents (staff): upload and ingest with a progress bar, list with chunk counts, delete, re-ingest."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from ingest.loaders import SUPPORTED
from ingest.uploads import UploadRejected, forget_upload, ingest_uploads, save_upload
from ui.resources import get_assistant, settings

TYPES = sorted(ext.lstrip(".") for ext in SUPPORTED)  # every type the ingest loaders read

st.title("Documents")
assistant = get_assistant()
store, cfg = assistant.store, settings()


def ingestor(bar):
    from ingest.pipeline import Ingestor

    return Ingestor(store, assistant.settings, assistant.embedder, progress=False,
                    on_progress=lambda done, total, name: bar.progress(done / max(total, 1), text=name or "done"))


def show_summary(summary) -> None:
    (st.success if summary.ok else st.warning)(summary.line())
    for path, reason in summary.failed:
        st.error(f"{Path(path).name} was not ingested: {reason}")
    for doc_id, line in summary.flagged:
        st.warning(f"{doc_id} contains instruction-like text (kept, neutralized in answers): “{line}”")


with st.form("upload", clear_on_submit=True):
    files = st.file_uploader("Add documents", type=TYPES, accept_multiple_files=True,
                             help=f"PDF, Markdown, text, HTML, CSV or JSONL FAQ exports; up to {cfg.upload_max_mb} MB each")
    audience = st.radio("Audience", ["public", "internal"], horizontal=True,
                        help="Public: customers may be answered from it. Internal: staff only.")
    submitted = st.form_submit_button("Ingest", type="primary")
if submitted and files:
    saved = []
    for f in files:
        try:
            saved.append(save_upload(cfg, f.name, f.getvalue(), audience))
        except UploadRejected as e:
            st.error(f"{e} — not added.")
    if saved:
        bar = st.progress(0.0, text="ingesting…")
        summary = ingest_uploads(ingestor(bar), saved, audience)
        bar.empty()
        show_summary(summary)

if flash := st.session_state.pop("doc_flash", None):  # survives the rerun that refreshes the list
    st.success(flash, icon=":material/delete:")

records = store.manifest.all()
if not records:
    st.info("No documents yet: upload some above, or run `python -m ingest data/sample_kb`.")
    st.stop()

by_file: dict[str, dict] = {}
for r in records:
    row = by_file.setdefault(r.path, {"file": r.path, "audience": r.audience, "documents": 0, "chunks": 0,
                                      "ingested": r.to_json()["ingested_at"], "status": r.status})
    row["documents"] += 1
    row["chunks"] += r.chunks
    if r.status != "ok":
        row["status"] = r.status
table = pd.DataFrame(by_file.values())
st.caption(f"{len(table)} files · {int(table['documents'].sum())} documents · {int(table['chunks'].sum())} chunks")
st.dataframe(table, hide_index=True, width="stretch")

# A new key after each deletion empties the box (the browser would otherwise keep showing the deleted file).
chosen = st.selectbox("File", list(by_file), key=f"doc_selected_{st.session_state.get('doc_generation', 0)}",
                      index=None, placeholder="choose a file to manage")
if chosen:
    cols = st.columns(2)
    if cols[0].button("Re-ingest", key="doc_reingest", help="read the file again: changed parts are re-embedded"):
        if not Path(chosen).exists():
            st.error(f"{chosen} is no longer on disk: it cannot be re-read (delete it from the knowledge base instead).")
        else:
            bar = st.progress(0.0, text="ingesting…")
            show_summary(ingestor(bar).ingest([chosen], audience=by_file[chosen]["audience"]))
            bar.empty()
    with cols[1].popover("Delete", icon=":material/delete:"):
        st.write(f"Delete **{chosen}** and its {by_file[chosen]['chunks']} chunks from the knowledge base?")
        if st.button("Yes, delete", type="primary", key="doc_delete"):
            from ingest.pipeline import Ingestor

            removed = Ingestor(store, assistant.settings, assistant.embedder, progress=False).delete([chosen])
            forget_upload(cfg, chosen)
            st.session_state["doc_generation"] = st.session_state.get("doc_generation", 0) + 1
            st.session_state["doc_flash"] = f"Deleted {len(removed)} document(s) from {chosen}"
            st.rerun()
