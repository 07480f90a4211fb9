"""Compare A vs B: one question side by side, or a whole evaluation set — through the evaluation harness itself."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from ui.components import BACKEND_LABELS, backend_label, current_role, friendly_error, render_sources, render_verdicts
from ui.resources import ROOT, get_assistant

st.title("Solution A vs Solution B")
st.caption("The same question through the same retrieval and guards; only the answering model differs.")
assistant = get_assistant()
available = assistant.backends()
role = current_role()
options = list(BACKEND_LABELS)

if assistant.store.count() == 0:
    st.info("No documents yet: add some on the Documents page first.")
    st.stop()

cols = st.columns(2)
# Solution A on the left when it is configured; offline, the extractive backend stands in so the page works at once.
left = "hosted" if available["hosted"][0] else "extractive"
a = cols[0].selectbox("Left", options, index=options.index(left), format_func=lambda b: backend_label(b, available), key="cmp_a")
b = cols[1].selectbox("Right", options, index=options.index("private"), format_func=lambda b: backend_label(b, available), key="cmp_b")
for col, name in zip(cols, (a, b)):
    if not available[name][0]:
        col.warning(available[name][1])
if left != "hosted":
    st.info(f"Solution A is not configured here ({available['hosted'][1]}): the offline extractive backend stands in.")

single, batch = st.tabs(["One question", "Evaluation set"])

with single:
    question = st.text_input("Question", key="cmp_question", placeholder="e.g. How long is the cooling-off period?")
    if st.button("Compare", type="primary", key="cmp_go", disabled=not question):
        from assistant.evaluation.harness import side_by_side

        runnable = [x for x in dict.fromkeys((a, b)) if available[x][0]]
        try:
            st.session_state.cmp_results = side_by_side(assistant, question, runnable, role=role, user_id="ui-compare")
        except Exception as e:
            st.error(friendly_error(e))
    results = {r.backend: (ans, r) for ans, r in st.session_state.get("cmp_results", [])}
    for col, name in zip(st.columns(2), (a, b)):
        with col:
            st.subheader(BACKEND_LABELS[name])
            if name not in results:
                st.caption("not answered yet" if available[name][0] else f"unavailable: {available[name][1]}")
                continue
            ans, rec = results[name]
            if ans.fallback:  # what this backend wrote failed the checks: the comparison must show it
                st.info(f"its answer failed the checks; quoted from the documents ({ans.fallback})")
            else:
                (st.warning if ans.refused else st.success)("refused" if ans.refused else "answered")
            st.markdown(ans.answer)
            render_sources(ans.citations, assistant.store, key=f"cmp-{name}")
            render_verdicts(ans.guards, key=f"cmp-{name}")
            m = st.columns(3)
            m[0].metric("Latency", f"{rec.latency_ms:.0f} ms")
            m[1].metric("Tokens in · out", f"{rec.prompt_tokens} · {rec.completion_tokens}", help="prompt and completion tokens")
            m[2].metric("Estimated cost", f"${rec.cost_usd:.5f}")
            st.markdown(f"**Data left the company:** {'yes' if rec.left_company else 'no'}")

with batch:
    st.caption("Runs the evaluation harness (`python -m assistant evaluate`): retrieval, answer and refusal quality "
               "with bootstrap 95% intervals.")
    upload = st.file_uploader("Evaluation set (JSONL, the format of data/sample_kb/eval.jsonl)", type=["jsonl"], key="cmp_set")
    chosen = st.multiselect("Backends", options, default=[x for x in dict.fromkeys((a, b)) if available[x][0]] or ["extractive"],
                            format_func=lambda b: backend_label(b, available), key="cmp_backends")
    limit = st.number_input("Questions (0 = all)", min_value=0, value=0, step=5, key="cmp_limit")
    if st.button("Run evaluation", key="cmp_run", disabled=not chosen):
        from assistant.evaluation import load_cases
        from assistant.evaluation.harness import compare, run, summarize

        try:
            if upload is not None:
                cases = [json.loads(line) for line in upload.getvalue().decode("utf-8").splitlines() if line.strip()]
                if not all("question" in c for c in cases):
                    raise ValueError("every line needs a \"question\"")
                for i, c in enumerate(cases):
                    c.setdefault("id", f"q{i + 1}")
            else:
                cases = load_cases(ROOT / "data" / "sample_kb" / "eval.jsonl")
        except (ValueError, UnicodeDecodeError) as e:
            st.error(f"That file is not a usable evaluation set: {e}")
            st.stop()
        cases = cases[: int(limit)] if limit else cases
        missing = [x for x in chosen if not available[x][0]]
        if missing:
            st.warning("Skipped (unavailable): " + ", ".join(f"{x} — {available[x][1]}" for x in missing))
        runnable = [x for x in chosen if available[x][0]]
        bar = st.progress(0.0, text="evaluating…")
        records = run(assistant, cases, runnable, role=role, progress=False,
                      on_progress=lambda done, total, name: bar.progress(done / total, text=f"{done}/{total} · {name}"))
        bar.empty()
        st.session_state.cmp_batch = (records, summarize(records),
                                      [compare(records, runnable[0], o) for o in runnable[1:]])
    if "cmp_batch" in st.session_state:
        records, summary, comparisons = st.session_state.cmp_batch
        rows = []
        for name, m in summary.items():
            rows.append({"backend": name, "questions": m["questions"],
                         "answer F1": m["answer_f1"]["mean"], "citation accuracy": m["citation_accuracy"]["mean"],
                         "refusal accuracy": m["refusal_correct"]["mean"], "faithfulness": m["faithfulness"]["mean"],
                         "latency p50 (ms)": m["latency_p50_ms"], "latency p95 (ms)": m["latency_p95_ms"],
                         "cost / 1,000 q (USD)": m["cost_usd_per_1000_questions"],
                         "data left the company": "yes" if m["data_left_company"] else "no"})
        table = pd.DataFrame(rows).set_index("backend")
        st.dataframe(table, width="stretch")
        charts = st.columns(2)
        charts[0].bar_chart(table[["answer F1", "citation accuracy", "refusal accuracy"]].T, stack=False)
        charts[1].bar_chart(table[["latency p50 (ms)", "latency p95 (ms)"]].T, stack=False)
        for c in comparisons:
            st.markdown(f"**{c['b']} − {c['a']}** (paired, {c['questions']} questions, 95% intervals)")
            st.dataframe(pd.DataFrame([{"metric": k, "difference": d["mean_diff"], "low": d["ci95"][0], "high": d["ci95"][1]}
                                       for k, d in c["differences"].items() if d["mean_diff"] is not None]),
                         hide_index=True, width="stretch")
        per_question = pd.DataFrame([r.to_json() for r in records])
        st.download_button("Download results (CSV)", per_question.to_csv(index=False).encode(), "results.csv",
                           "text/csv", key="cmp_csv")
