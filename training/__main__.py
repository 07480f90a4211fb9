"""python -m training — the private model's life cycle.

    python -m training all --preset cpu-small            data → tokenizer → pretrain → sft → align → eval → register
    python -m training all --version VERSION             resume an interrupted run (finished stages are skipped)
    python -m training STAGE --version VERSION [--force] one stage alone (data, tokenizer, pretrain, sft, align, eval)
    torchrun --nproc_per_node 2 -m training pretrain --version VERSION     the same stage on several processes (DDP)
    python -m training models list | show V | promote V | delete V --reason "..." | audit
    python -m training base [NAME]                       convert (once) and check an open base; print where it is
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from pathlib import Path

STAGES = ("data", "tokenizer", "pretrain", "sft", "align", "eval")


def _stage_fn(name: str):
    from training import align, data, evaluate, pretrain, sft, tokenizer

    return {
        "data": lambda cfg, d: data.run(cfg, d / "data"),
        "tokenizer": lambda cfg, d: tokenizer.run(cfg, d / "data", d / "tokenizer"),
        "pretrain": lambda cfg, d: pretrain.run(cfg, d / "data", d / "tokenizer", d / "pretrain"),
        "sft": lambda cfg, d: sft.run(cfg, d / "data", d / "pretrain" / "model", d / "sft"),
        "align": lambda cfg, d: align.run(cfg, d / "sft", d / "align", d / "data"),
        "eval": lambda cfg, d: evaluate.run(cfg, d, d / "eval"),
    }[name]


def _summary(name: str, m: dict) -> str:
    keys = {"data": ("train_docs", "heldout_docs", "share_general", "share_insurance"),
            "tokenizer": ("vocab_size", "bytes_per_token", "general_only_bytes_per_token", "token_reduction"),
            "pretrain": ("params", "steps", "train_loss", "val_loss", "tokens_per_s", "mfu"),
            "sft": ("examples", "steps", "train_loss", "val_loss"),
            "align": ("pairs", "heldout_margin_before", "heldout_margin_after", "prefers_chosen_after")}.get(name, ())
    if name == "eval":
        ppl = " ".join(f"{k}={v['perplexity']}" for k, v in m["heldout"].items())
        if any("answer_perplexity" in v for v in m["heldout"].values()):
            ppl += "; answers " + " ".join(f"{k}={v.get('answer_perplexity')}" for k, v in m["heldout"].items())
        p = m["rag"].get("private", {})
        return (f"perplexity {ppl}; private F1 {p.get('answer_f1')} citations {p.get('citation_accuracy')} "
                f"out-of-scope refused {p.get('out_of_scope_refused')}")
    return " · ".join(f"{k} {m[k]}" for k in keys if k in m)


def run_stage(reg, version: str, name: str, force: bool = False) -> dict:
    from training.trainer import is_main

    run_dir = reg.path(version)
    state_file = run_dir / "stages.json"
    stages = json.loads(state_file.read_text()) if state_file.exists() else {}
    if stages.get(name, {}).get("done") and not force:
        print(f"[{name}] done already — skipped (--force to redo)")
        return stages[name]
    cfg = reg.config(version)
    t0 = time.perf_counter()
    metrics = _stage_fn(name)(cfg, run_dir)
    wall = round(time.perf_counter() - t0, 1)
    if is_main():
        stages = json.loads(state_file.read_text()) if state_file.exists() else {}
        stages[name] = {"done": True, "wall_s": wall, "metrics": metrics}
        tmp = state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(stages, indent=2, default=str))
        tmp.replace(state_file)
        print(f"[{name}] {wall:.0f} s · {_summary(name, metrics)}")
    return stages.get(name, {})


def finish(reg, version: str, promote: bool) -> None:
    from training import report

    run_dir = reg.path(version)
    stages = json.loads((run_dir / "stages.json").read_text())
    final = run_dir / "model"
    if final.exists():
        shutil.rmtree(final)
    shutil.copytree(run_dir / "align" / "model", final)
    card = report.write(run_dir, stages, reg.metadata(version))
    ev = stages["eval"]["metrics"]
    if (run_dir / "base.json").exists():  # what the weights were made from: name, licence, hash, conversion check
        reg.update(version, base=json.loads((run_dir / "base.json").read_text()))
    reg.finish(version, {"heldout": ev["heldout"], "rag_private": ev["rag"].get("private"),
                         "total_wall_s": card["total_wall_s"]})
    print(f"report card: {run_dir / 'report.md'}")
    if promote:
        reg.promote(version, reason="trained by `python -m training all`")
        print(f"promoted {version}: `python -m assistant ask --backend private \"...\"` now uses it")


def cmd_models(reg, args) -> int:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 160)  # pipes and CI logs: no truncated names
    if args.action == "list":
        if args.command == "embedders":
            table = Table("version", "status", "promoted", "created", "pairs", "steps", "val R@5 base → tuned", "speed-up")
            for m in reg.versions():
                x = m.get("metrics") or {}
                before = x.get("val_recall@5_base", x.get("val_recall@5_stock"))  # older versions: stock was the base
                recall = f"{before:.3f} → {x['val_recall@5_tuned']:.3f}" if "val_recall@5_tuned" in x else ""
                table.add_row(m["version"], m["status"], "★" if m["promoted"] else "", m["created"], str(x.get("pairs", "")),
                              str(x.get("steps", "")), recall, f"{x['speedup']}x" if "speedup" in x else "")
            console.print(table)
            return 0
        if args.command == "rerankers":
            table = Table("version", "status", "promoted", "created", "questions", "steps", "val R@5 first stage → reranked")
            for m in reg.versions():
                x = m.get("metrics") or {}
                recall = (f"{x['first_stage_recall@5']:.3f} → {x['reranked_recall@5']:.3f}"
                          if "reranked_recall@5" in x else "")
                table.add_row(m["version"], m["status"], "★" if m["promoted"] else "", m["created"],
                              str(x.get("questions", "")), str(x.get("steps", "")), recall)
            console.print(table)
            return 0
        if args.command == "answerability-models":
            table = Table("version", "status", "promoted", "created", "examples", "steps", "threshold",
                          "dev answered / refused")
            for m in reg.versions():
                x = m.get("metrics") or {}
                dev = (f"{x['dev_answered_if_answerable']:.3f} / {x['dev_refused_if_not']:.3f}"
                       if x.get("dev_refused_if_not") is not None else "")
                table.add_row(m["version"], m["status"], "★" if m["promoted"] else "", m["created"],
                              str(x.get("examples", "")), str(x.get("steps", "")), str(x.get("threshold", "")), dev)
            console.print(table)
            return 0
        table = Table("version", "preset", "base", "status", "promoted", "created", "held-out ppl (aligned)", "private F1")
        for m in reg.versions():
            metrics = m.get("metrics") or {}
            ppl = (metrics.get("heldout") or {}).get("aligned", {}).get("perplexity", "")
            f1 = (metrics.get("rag_private") or {}).get("answer_f1", "")
            base = (m.get("base") or {}).get("name", "scratch")
            table.add_row(m["version"], m["preset"], base, m["status"], "★" if m["promoted"] else "", m["created"],
                          str(ppl), str(f1))
        console.print(table)
    elif args.action == "show":
        meta = reg.metadata(args.version)
        console.print_json(json.dumps(meta))
        report = reg.path(args.version) / "report.md"
        if report.exists():
            console.print(f"report card: {report}")
    elif args.action == "promote":
        reg.promote(args.version, args.reason)
        console.print(f"promoted {args.version}")
    elif args.action == "delete":
        entry = reg.delete(args.version, args.reason, force=args.force)
        console.print(f"deleted {args.version}: {entry['files_removed']} files, {entry['bytes_removed']:,} bytes "
                      f"(audit log: {reg.dir / 'audit.jsonl'})")
    elif args.action == "audit":
        for e in reg.audit_log():
            console.print(json.dumps(e))
    return 0


def _overrides(pairs: list[str]) -> dict:
    return {k: json.loads(v) if v[:1] in "0123456789[{" or v in ("true", "false") else v
            for k, v in (kv.split("=", 1) for kv in pairs)}


def cmd_write_questions(args) -> int:
    from assistant.generators.base import GeneratorUnavailable
    from assistant.pipeline import Assistant
    from assistant.settings import get_settings
    from training.write_questions import OUT, run

    settings = get_settings().model_copy(update={"audit_enabled": False, **({"store_dir": args.store} if args.store else {})})
    try:
        counts = run(Assistant(settings), args.out or OUT, args.documents, args.replace, args.company)
    except GeneratorUnavailable as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.out or OUT}: {json.dumps(counts)} — review the not-answerable rows, then "
          "`python -m training answerability`")
    return 0


def cmd_answerability(reg, args) -> int:
    from assistant.pipeline import Assistant
    from assistant.settings import get_settings
    from training.answerability import DEV_SET, AnswerabilityConfig, run

    cfg = AnswerabilityConfig.model_validate(_overrides(args.set))
    settings = get_settings().model_copy(update={"answerability_model": "off", "audit_enabled": False,
                                                 **({"store_dir": args.store} if args.store else {})})
    dev = None if str(args.dev) == "none" else (args.dev or DEV_SET)
    if dev and not Path(dev).exists():
        raise FileNotFoundError(f"dev split {dev} not found (python scripts/split_eval.py writes it; --dev none to skip)")
    if args.calibrate:
        from assistant.evaluation import load_cases
        from training.answerability import calibrate, split_dev

        trained = AnswerabilityConfig.model_validate_json((reg.path(args.calibrate) / "config.json").read_text())
        # never on the dev cases the version learned from
        hold = split_dev(load_cases(dev), trained.dev_train_share, trained.seed)[1] if dev else None
        # the version's own settings, with any --set on top (e.g. refusal_weight=3)
        figures = calibrate(reg.path(args.calibrate), Assistant(settings), dev,
                            AnswerabilityConfig.model_validate({**trained.model_dump(), **_overrides(args.set)}), hold)
        reg.update(args.calibrate, metrics={**(reg.metadata(args.calibrate).get("metrics") or {}), **figures})
        reg.audit("calibrate", args.calibrate, reason=f"decision refitted on {dev}")
        print(f"recalibrated {args.calibrate}: {json.dumps(figures)}")
        return 0
    version = run(cfg, reg, Assistant(settings), dev)
    print(f"new answerability model {version} in {reg.dir}: {json.dumps(reg.metadata(version)['metrics'])}")
    if not args.no_promote:
        reg.promote(version, reason="trained by python -m training answerability")
        print(f"promoted: the assistant decides with it from its next start (ASSISTANT_ANSWERABILITY_MODEL={version} "
              "to pin it)")
    return 0


def main(argv: list[str] | None = None) -> int:
    from training.config import load_config
    from training.data import DataError
    from training.registry import RegistryError, registry_for

    p = argparse.ArgumentParser(prog="python -m training", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models-dir", type=Path, help="registry folder (default: ASSISTANT_MODELS_DIR / settings)")
    sub = p.add_subparsers(dest="command", required=True)
    a = sub.add_parser("all", help="every stage, then register (and promote) the version")
    a.add_argument("--preset", default="cpu-smol")
    a.add_argument("--version", help="resume this version instead of starting a new one")
    a.add_argument("--config", type=Path, help="YAML overriding preset values")
    a.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override one value, e.g. pretrain.steps=50")
    a.add_argument("--no-promote", action="store_true")
    for name in STAGES:
        s = sub.add_parser(name, help=f"the {name} stage of an existing version")
        s.add_argument("--version", required=True)
        s.add_argument("--force", action="store_true", help="redo even if done")
    for name, what in (("models", "private model"), ("embedders", "embedding model (domain-tuned retriever)"),
                       ("rerankers", "reranker (cross-encoder)"), ("answerability-models", "answerability model")):
        m = sub.add_parser(name, help=f"the registry of {what} versions")
        m.add_argument("action", choices=["list", "show", "promote", "delete", "audit"])
        m.add_argument("version", nargs="?")
        m.add_argument("--reason", default="")
        m.add_argument("--force", action="store_true", help="delete even the promoted version")
    b = sub.add_parser("base", help="convert (once, cached in ASSISTANT_BASES_DIR) and check an open-weights base")
    b.add_argument("name", nargs="?", default="smollm2-135m", help="smollm2-135m or a Hugging Face model folder")
    r = sub.add_parser("retriever", help="fine-tune the embedding model on (question, passage) pairs")
    r.add_argument("--base", help="model folder to start from (default: the packaged all-MiniLM-L6-v2)")
    r.add_argument("--kb", action="append", help="knowledge-base folder for pairs (default: data/sample_kb)")
    r.add_argument("--pairs", help="extra JSONL of {question, passage}")
    r.add_argument("--insuranceqa", help="opt-in: the InsuranceQA folder (research use only), e.g. ../shared/data/insuranceqa")
    r.add_argument("--no-hard-negatives", action="store_true")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="e.g. max_steps=50, batch_size=32")
    rr = sub.add_parser("reranker", help="train a cross-encoder that reorders the retriever's top candidates")
    rr.add_argument("--base", help="model folder, reranker version (another round) or embedders version to start "
                                    "from (default: the packaged MiniLM)")
    rr.add_argument("--miner", help="first-stage embedding model (folder or embedders version) that mines negatives")
    rr.add_argument("--kb", action="append", help="knowledge-base folder for pairs (default: data/sample_kb)")
    rr.add_argument("--pairs", help="extra JSONL of {question, passage}")
    rr.add_argument("--insuranceqa", help="opt-in: the InsuranceQA folder (research use only)")
    rr.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="e.g. max_steps=50, negatives=3")
    an = sub.add_parser("answerability", help="train the answer-or-refuse model on questions made from the store's "
                                               "documents, calibrate it on the dev split, register and promote it")
    an.add_argument("--store", type=Path, help="store folder whose documents it learns (default: ASSISTANT_STORE_DIR)")
    an.add_argument("--dev", type=Path, help="dev split that calibrates the threshold (default: "
                                             "data/eval/customer_voice.dev.jsonl; 'none' = uncalibrated)")
    an.add_argument("--no-promote", action="store_true")
    an.add_argument("--calibrate", metavar="VERSION", help="only refit an existing version's decision on --dev")
    an.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="e.g. epochs=1, layers=3")
    wq = sub.add_parser("write-questions", help="have the hosted API (OPENAI_BASE_URL/OPENAI_API_KEY) write customer "
                                                "questions for each document: training data for the answerability model")
    wq.add_argument("--store", type=Path, help="store folder whose documents it reads (default: ASSISTANT_STORE_DIR)")
    wq.add_argument("--out", type=Path, help="JSONL to add to (default: data/answerability/written_questions.jsonl)")
    wq.add_argument("--documents", nargs="*", help="only these files (names as cited, e.g. claims-procedure.md)")
    wq.add_argument("--replace", action="store_true", help="rewrite the rows of documents already in the file")
    wq.add_argument("--company", default="the insurer", help="the company's name, for the prompt")
    fe = sub.add_parser("fast-encoder", help="a faster embedding model: the teacher in int8 ONNX, or a shallower student")
    fe.add_argument("--teacher", help="model folder or embedders version (default: the packaged all-MiniLM-L6-v2)")
    fe.add_argument("--kb", action="append", help="knowledge-base folder for texts (default: data/sample_kb)")
    fe.add_argument("--insuranceqa", help="opt-in: the InsuranceQA folder (research use only)")
    fe.add_argument("--method", choices=["onnx-int8", "distill"],
                    help="onnx-int8 (default): the teacher exported to ONNX, fused, int8 weights; distill: fewer layers")
    fe.add_argument("--objective", choices=["mse", "pairs"],
                    help="mse: reproduce the teacher's vectors; pairs: learn the retrieval task on (question, passage) pairs")
    fe.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="e.g. max_steps=50, layers=[0,3]")
    args = p.parse_args(argv)

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    kind = ("embedders" if args.command in ("embedders", "retriever", "fast-encoder")
            else "rerankers" if args.command in ("rerankers", "reranker")
            else "answerability-models" if args.command in ("answerability-models", "answerability") else "models")
    reg = registry_for(kind, args.models_dir)
    try:
        if args.command == "base":
            from assistant.settings import get_settings
            from training.base import BaseError, as_dict, resolve

            try:
                print(json.dumps(as_dict(resolve(args.name, get_settings().bases_dir)), indent=2))
            except BaseError as e:
                print(f"error: {e}", file=sys.stderr)
                return 2
            return 0
        if args.command == "answerability":
            return cmd_answerability(reg, args)
        if args.command == "write-questions":
            return cmd_write_questions(args)
        if args.command in ("retriever", "fast-encoder", "reranker"):
            overrides = _overrides(args.set)
            common = {**({"kb": args.kb} if args.kb else {}), "insuranceqa": args.insuranceqa, **overrides}
            if args.command == "reranker":
                from training.reranker import RerankerConfig, run as train_reranker

                cfg = RerankerConfig.model_validate({**common, "base": args.base, "miner": args.miner,
                                                     "pairs_file": args.pairs})
                version = train_reranker(cfg, reg, registry_for("embedders"))
                print(f"new reranker {version} in {reg.dir}: {json.dumps(reg.metadata(version)['metrics'])}\n"
                      f"use it: ASSISTANT_RERANKER_MODEL={version}")
                if (n := reg.metadata(version)["metrics"]["questions"]) < 1000:
                    print(f"note: {n} training questions only; a reranker needs thousands (--pairs with your own "
                          "question/answer pairs) — measure it (python -m assistant evaluate) before turning it on")
                return 0
            if args.command == "retriever":
                from training.retriever import RetrieverConfig, run as train

                cfg = RetrieverConfig.model_validate({**common, "base": args.base, "pairs_file": args.pairs,
                                                      "hard_negatives": not args.no_hard_negatives})
            else:
                from training.fast_encoder import FastEncoderConfig, run as train

                cfg = FastEncoderConfig.model_validate({**common, "teacher": args.teacher,
                                                        **({"objective": args.objective} if args.objective else {}),
                                                        **({"method": args.method} if args.method else {})})
            version = train(cfg, reg)
            print(f"new embedding model {version} in {reg.dir}: {json.dumps(reg.metadata(version)['metrics'])}\n"
                  f"switch the store to it: python -m ingest --switch-embedding {reg.path(version) / 'model'}")
            return 0
        if args.command in ("models", "embedders", "rerankers", "answerability-models"):
            if args.action not in ("list", "audit") and not args.version:
                p.error(f"{args.command} {args.action} needs a VERSION")
            return cmd_models(reg, args)
        if args.command == "all":
            if args.version and (reg.dir / args.version / "metadata.json").exists():
                version = args.version
                print(f"resuming {version}")
            else:
                version = reg.create(load_config(args.preset, args.config, args.set), args.version).name
                print(f"new version {version} in {reg.dir}")
            for name in STAGES:
                run_stage(reg, version, name)
            finish(reg, version, promote=not args.no_promote)
            return 0
        run_stage(reg, args.version, args.command, args.force)
        return 0
    except (RegistryError, DataError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
