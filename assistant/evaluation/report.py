"""The evaluation's outputs: report.md, results.json, results.csv (one row per question and backend), charts."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from assistant.evaluation.harness import METRICS, Record
from assistant.evaluation.metrics import reliability

LABELS = {"answer_f1": "answer F1", "rouge_l": "ROUGE-L", "semantic": "semantic similarity", "faithfulness": "faithfulness",
          "citation_accuracy": "citation accuracy", "refusal_correct": "refusal accuracy", "retrieval_hit@1": "retrieval hit@1",
          "retrieval_hit@5": "retrieval hit@5", "retrieval_mrr@10": "retrieval MRR@10", "latency_ms": "latency (ms)"}


def _fmt(m: dict, digits: int = 3) -> str:
    if m["mean"] is None:
        return "–"
    lo, hi = m["ci95"]
    return f"{m['mean']:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def write(out: Path, records: list[Record], summary: dict, comparisons: list[dict], meta: dict) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"meta": meta, "summary": summary, "comparisons": comparisons},
                                                 indent=2, ensure_ascii=False))
    rows = [r.to_json() for r in records]
    with open(out / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    charts = _charts(out, records, summary)
    backends = list(summary)
    lines = [f"# Evaluation — {meta['set']}", "",
             f"{meta['questions']} questions asked as **{meta['role']}**, backends: {', '.join(backends)}; "
             f"store `{meta['store']}`. Means with bootstrap 95% intervals (1,000 resamples, seed 0).", "",
             "| metric | " + " | ".join(backends) + " |", "|---|" + "---|" * len(backends)]
    for name in METRICS:
        digits = 0 if name == "latency_ms" else 3
        lines.append(f"| {LABELS[name]} | " + " | ".join(_fmt(summary[b][name], digits) for b in backends) + " |")
    for key, label, fmt in [("latency_p50_ms", "latency p50 (ms)", "{:.0f}"), ("latency_p95_ms", "latency p95 (ms)", "{:.0f}"),
                            ("refusal_precision", "refusal precision", "{:.3f}"), ("refusal_recall", "refusal recall", "{:.3f}"),
                            ("handoff_rate", "hand-off rate", "{:.3f}"), ("prompt_tokens", "prompt tokens", "{:,}"),
                            ("completion_tokens", "completion tokens", "{:,}"), ("cost_usd_per_1000_questions", "cost / 1,000 questions (USD)", "{:.4f}"),
                            ("data_left_company", "data left the company", "{}")]:
        lines.append(f"| {label} | " + " | ".join(fmt.format(summary[b][key]) if summary[b][key] is not None else "–"
                                                  for b in backends) + " |")
    for c in comparisons:
        lines += ["", f"## {c['b']} vs {c['a']} (paired, {c['questions']} questions)", "",
                  f"| metric | {c['b']} − {c['a']} [95% CI] | n | better |", "|---|---|---|---|"]
        for name, d in c["differences"].items():
            if d["mean_diff"] is None:
                lines.append(f"| {LABELS[name]} | – | 0 | |")
                continue
            lo, hi = d["ci95"]
            sign = (lo > 0) if d["higher_is_better"] else (hi < 0)
            worse = (hi < 0) if d["higher_is_better"] else (lo > 0)
            verdict = c["b"] if sign else c["a"] if worse else "no clear difference"
            digits = 0 if name == "latency_ms" else 3
            lines.append(f"| {LABELS[name]} | {d['mean_diff']:+.{digits}f} [{lo:+.{digits}f}, {hi:+.{digits}f}] | {d['n']} | {verdict} |")
        if c["disagreements"]:
            lines += ["", "Where they disagree most:", ""]
            for q in c["disagreements"]:
                lines.append(f"- **{q['id']}** {q['question']}")
                for b in (c["a"], c["b"]):
                    lines.append(f"  - {b}{' (refused)' if q[b]['refused'] else ''}: {q[b]['answer'][:220]!r}")
    lines += ["", "## Charts", ""] + [f"![{p.stem}]({p.name})" for p in charts]
    lines += ["", "Faithfulness: share of answer sentences whose longest common word subsequence with one sentence of a "
              "cited passage covers ≥ 60% of the sentence (independent of the output guard's checks). Refusal metrics "
              "treat a refusal as the positive class. Cost: hosted at the configured token prices, private at the "
              "configured hourly machine price × answer time, extractive 0."]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    return [out / "report.md", out / "results.json", out / "results.csv", *charts]


def _charts(out: Path, records: list[Record], summary: dict) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    backends = list(summary)
    names = [n for n in METRICS if n != "latency_ms"]
    fig, ax = plt.subplots(figsize=(11, 4.5))
    width = 0.8 / len(backends)
    for i, b in enumerate(backends):
        means = [summary[b][n]["mean"] or 0 for n in names]
        lo = [max(0.0, (summary[b][n]["mean"] or 0) - (summary[b][n]["ci95"][0] if summary[b][n]["mean"] is not None else 0)) for n in names]
        hi = [max(0.0, (summary[b][n]["ci95"][1] if summary[b][n]["mean"] is not None else 0) - (summary[b][n]["mean"] or 0)) for n in names]
        ax.bar(np.arange(len(names)) + i * width, means, width, yerr=[lo, hi], capsize=3, label=b)
    ax.set_xticks(np.arange(len(names)) + width * (len(backends) - 1) / 2, [LABELS[n] for n in names], rotation=30, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_title("Quality by backend (means, 95% bootstrap intervals)")
    ax.legend()
    fig.tight_layout()
    metrics_png = out / "metrics.png"
    fig.savefig(metrics_png, dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.boxplot([[r.latency_ms for r in records if r.backend == b] for b in backends], tick_labels=backends, showfliers=True)
    ax.set_ylabel("latency per answer (ms)")
    ax.set_yscale("log")
    ax.set_title("Latency distribution")
    fig.tight_layout()
    latency_png = out / "latency.png"
    fig.savefig(latency_png, dpi=110)
    plt.close(fig)
    charts = [metrics_png, latency_png]
    scored = [r for r in records if r.answerability is not None and r.expected_refusal is not None]
    if scored:
        charts.append(reliability_chart(out / "reliability.png", scored))
    return charts


def reliability_chart(path: Path, records: list[Record]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    for backend in dict.fromkeys(r.backend for r in records):
        rs = [r for r in records if r.backend == backend]
        pts = reliability([r.answerability for r in rs], [0.0 if r.expected_refusal else 1.0 for r in rs])
        ax.plot([b["predicted"] for b in pts], [b["observed"] for b in pts], "o-", label=backend)
        for b in pts:
            ax.annotate(str(b["n"]), (b["predicted"], b["observed"]), fontsize=7, xytext=(3, -9), textcoords="offset points")
    ax.set_xlabel("answerability model's probability (bin mean)")
    ax.set_ylabel("share of questions that should be answered")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_title("Reliability of the answer/refuse decision")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
