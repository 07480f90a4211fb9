"""Models (staff): the private model registry, report cards with loss curves, promote/delete, a training run."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import streamlit as st

from ui.resources import registry, start_training, training_jobs

st.title("Models")
reg = registry("models")
versions = reg.versions()


def loss_curves(run_dir: Path) -> pd.DataFrame | None:
    frames = []
    for stage in ("pretrain", "sft", "align"):
        f = run_dir / stage / "history.jsonl"
        if f.exists():
            rows = [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
            rows = [r for r in rows if "loss" in r and "step" in r]
            if rows:
                frames.append(pd.DataFrame({"step": [r["step"] for r in rows], stage: [r["loss"] for r in rows]}).set_index("step"))
    return pd.concat(frames, axis=1) if frames else None


registry_tab, train_tab, embedders_tab = st.tabs(["Private model versions", "Train", "Embedding models"])

with registry_tab:
    if not versions:
        st.info("No private model yet: start a run in the Train tab, or `make train` (cpu-smol: the open SmolLM2-135M "
                "adapted on the insurer's documents, under 45 minutes on 2 cores).")
    else:
        rows = []
        for m in versions:
            x = m.get("metrics") or {}
            base = m.get("base") or {}
            rows.append({"version": m["version"], "preset": m.get("preset"), "base": base.get("name", "scratch"),
                         "licence": base.get("licence", "own"), "status": m["status"],
                         "promoted": "★" if m["promoted"] else "", "created": m.get("created"),
                         "held-out perplexity": ((x.get("heldout") or {}).get("aligned") or {}).get("perplexity"),
                         "size (MB)": round(m.get("size_bytes", 0) / 1e6, 1)})
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
        version = st.selectbox("Version", [m["version"] for m in versions], key="model_version")
        meta = reg.metadata(version)
        run_dir = reg.path(version)
        if meta.get("base"):
            b = meta["base"]
            st.caption(f"Base: **{b['name']}** — {b.get('source', '')}; licence {b.get('licence', '?')}; "
                       f"weights sha256 {str(b.get('sha256', ''))[:16]}…")
        data_card = run_dir / "data" / "data_card.md"
        if data_card.exists():
            with st.expander("Data card"):
                st.markdown(data_card.read_text())
        curves = loss_curves(run_dir)
        if curves is not None:
            st.subheader("Loss curves")
            st.line_chart(curves)
        card = run_dir / "report.md"
        with st.expander("Report card", expanded=curves is None):
            st.markdown(card.read_text() if card.exists() else "_No report card yet: the run has not finished._")
        cols = st.columns(2)
        with cols[0].popover("Promote", icon=":material/star:", disabled=meta["status"] != "ready" or reg.promoted() == version):
            st.write(f"Serve **{version}** as Solution B from now on?")
            reason = st.text_input("Reason", key="promote_reason")
            if st.button("Yes, promote", type="primary", key="promote_yes"):
                from training.registry import RegistryError

                try:
                    reg.promote(version, reason or "promoted from the UI")
                    st.toast(f"{version} is now the private model")
                    st.rerun()
                except RegistryError as e:
                    st.error(str(e))
        with cols[1].popover("Delete", icon=":material/delete:"):
            st.write(f"Delete **{version}** and all its files? This is recorded in the registry's audit log.")
            why = st.text_input("Reason (required)", key="delete_reason")
            if st.button("Yes, delete", type="primary", key="delete_yes", disabled=not why.strip()):
                from training.registry import RegistryError

                try:
                    reg.delete(version, why)
                    st.toast(f"Deleted {version}")
                    st.rerun()
                except RegistryError as e:
                    st.error(str(e))
        with st.expander("Registry audit log"):
            st.dataframe(pd.DataFrame(reg.audit_log()[::-1]), hide_index=True, width="stretch")

with train_tab:
    from training.config import PRESETS

    cpu = [p for p in PRESETS if p.startswith("cpu")]
    preset = st.selectbox("Preset", cpu, index=cpu.index("cpu-smol") if "cpu-smol" in cpu else 0, key="train_preset",
                          help="cpu-smol: the open SmolLM2-135M adapted, under 45 minutes on 2 cores; cpu-small: a model "
                               "from scratch, about 25 minutes. GPU presets (gpu-smol): `python -m training all` on a "
                               "GPU machine.")
    promote = st.checkbox("Promote when finished (if it evaluates well)", value=False, key="train_promote")
    job = training_jobs().get("current")
    if st.button("Start training", type="primary", key="train_start", disabled=bool(job and job.running)):
        try:
            job = start_training(preset, promote)
        except RuntimeError as e:
            st.error(str(e))

    @st.fragment(run_every=2)
    def progress() -> None:
        job = training_jobs().get("current")
        if job is None:
            st.caption("No training run started from this app.")
            return
        stages_file = Path(reg.dir) / job.version / "stages.json"
        done = list(json.loads(stages_file.read_text())) if stages_file.exists() else []
        from training.__main__ import STAGES

        state = "running" if job.running else ("finished" if job.proc.returncode == 0 else f"stopped (exit {job.proc.returncode})")
        st.markdown(f"**{job.version}** · {state} · stages done: {', '.join(done) or 'none yet'}")
        st.progress(len(done) / len(STAGES), text=f"{len(done)}/{len(STAGES)} stages")
        st.code(job.tail() or "starting…", language=None)
        if job.running and st.button("Stop", key="train_stop"):
            job.stop()

    progress()

with embedders_tab:
    emb = registry("embedders")
    rows = [{"version": m["version"], "status": m["status"], "created": m.get("created"),
             "pairs / examples": (m.get("metrics") or {}).get("pairs", (m.get("metrics") or {}).get("examples")),
             "speed-up": (m.get("metrics") or {}).get("speedup"),
             "val recall@5": (m.get("metrics") or {}).get("val_recall@5_tuned")} for m in emb.versions()]
    if rows:
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
        st.caption("Switch the store to one: `python -m ingest --switch-embedding VERSION` (re-embeds, then swaps atomically).")
    else:
        st.info("No domain-tuned embedding model yet: `python -m training retriever` (see the README).")
