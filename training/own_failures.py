"""The SFT model's own mistakes, as preference pairs for DPO: what it answers, through the path it is served by.

Training questions the teacher answered with a citation (never an evaluation question: they come from the SFT
examples) are asked of the SFT model exactly as the private backend serves it — the prompt fitted as in training,
grounded decoding, greedy — and its answer goes through the output rail (grounding, citations, promises). An answer
the rail refuses or cuts, and a decline where the teacher answered, is a failure: the pair is (the teacher's cited
answer, what the model said). These are the errors synthetic corruptions miss — citing [1] for [2]'s figure, a
sentence no passage supports, declining a question it could answer.
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
        hits = retriever.retrieve(ex["question"], role="customer", k=cfg.sft_context_chunks)
        said = "".join(model.stream(GenerationRequest(ex["question"], hits, [], []))).strip()
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
