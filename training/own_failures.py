"""The SFT model's own mistakes, as preference pairs for DPO: what it answers, through the path it is served by.

Training questions the teacher answered with a citation (never an evaluation question: they come from the SFT
examples) are asked of the SFT model exactly as the private backend serves it — the prompt fitted as in training,
grounded decoding, greedy — and its answer goes through the output rail (grounding, citations, promises). An answer
the rail refuses or cuts, and a decline where the teacher answered, is a failure: the pair is (the teacher's cited
answer, what the model said). These are the errors synthetic corruptions miss — a sentence no passage
supports, figures no passage states together, a decline where serving lets the model decline (not once the decision
passed the question: `private_defer_refusal`).
"""

from __future__ import annotations

import random
from pathlib import Path

from tqdm import tqdm


def collect(cfg, sft_dir: Path, examples: list[dict], n: int, rng: random.Random) -> tuple[list[dict], dict]:
    """(pairs, stats): up to `n` questions asked, the failures kept."""
    from assistant.generators.base import GenerationRequest
    from assistant.generators.private import PrivateGenerator
    from assistant.guards.guardrails import Guardrails
    from training.sft import rag_components

    asked = [e for e in examples if e["kind"] == "grounded"]
    asked = rng.sample(asked, min(n, len(asked)))
    if not asked:
        return [], {"asked": 0}
    settings, store, retriever, _ = rag_components(cfg, sft_dir / "store")
    settings = settings.model_copy(update={"private_model_path": str(sft_dir / "model"), "temperature": 0.0,
                                           "private_grounded_decoding": True})
    model, output = PrivateGenerator(settings), Guardrails(settings, store, retriever.embedder, retriever).output
    pairs, stats = [], {"asked": len(asked), "declined": 0, "refused_by_rail": 0, "cut_by_rail": 0}
    for ex in tqdm(asked, desc="own failures", unit="q"):
        request = shown_request(store, ex)
        if request is None:  # an example saved before its passages were recorded
            request = GenerationRequest(ex["question"], retriever.retrieve(ex["question"], role="customer",
                                                                           k=cfg.sft_context_chunks), [], [])
        hits = request.hits
        said = "".join(model.stream(request)).strip()
        check = output.start(hits, "customer")
        check.feed(said)
        check.finish()
        if not check.raw_cited:
            stats["declined"] += 1
        elif check.refused:
            stats["refused_by_rail"] += 1
        elif any(not v.passed for v in check.verdicts):
            stats["cut_by_rail"] += 1
        else:
            continue
        if said and said != ex["answer"]:
            pairs.append({"messages": ex["messages"], "chosen": ex["answer"], "rejected": said, "kind": "own_failure"})
    stats["failures"] = len(pairs)
    return pairs, stats


def shown_request(store, example: dict):
    """The request the example's prompt was built from: its passages in its order and the sentences the served
    decision focused on (the prompt is fitted around them); None for an example saved before they were recorded."""
    from assistant.answerability import Decision, Evidence
    from assistant.generators.base import GenerationRequest
    from assistant.schema import Hit

    meta = example.get("meta", {})
    ids = meta.get("chunk_ids") or []
    found = store.fetch(ids, ("public",))
    if not ids or len(found) != len(set(ids)):
        return None
    focus = meta.get("focus")
    decision = Decision(1.0, True, [Evidence(int(n), t, 0, 1.0, logit=0.0) for n, t in focus.items()], {}) if focus else None
    return GenerationRequest(example["question"], [Hit(found[i][0], 0.0, 0.0) for i in ids], [], [], decision)
