"""The private model's decoding, side by side in one run: grounded decoding on/off, prompt-lookup
decoding, int8 dynamic quantization and bf16 weights.

    python bench/private_decoding.py [--model DIR] [--n 24] [--store DIR] [--modes grounded,grounded+lookup,free,grounded+int8,grounded+lookup+bf16,spans+lookup]

For the public questions of the customer-voice test split (every k-th, --n of them), the passages the real hybrid
retriever finds go to the in-process private backend (the promoted version unless --model), streaming. Per mode:
first-token latency p50/p95, whole-answer latency p50/p95, new tokens per second, the time a 60-token answer takes
(first token + 59 × the measured time per token, p95), answers with a [n] citation, and figures (digit runs) the
answer writes that its passages do not contain — before any output rail, so the decoder's own behaviour is counted.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODES = {"grounded": dict(private_grounded_decoding=True, private_prompt_lookup=0, private_bf16="off"),
         "grounded+lookup": dict(private_grounded_decoding=True, private_prompt_lookup=10, private_bf16="off"),
         "free": dict(private_grounded_decoding=False, private_prompt_lookup=0, private_bf16="off"),
         "grounded+int8": dict(private_grounded_decoding=True, private_prompt_lookup=0, private_int8=True),
         "grounded+lookup+bf16": dict(private_grounded_decoding=True, private_prompt_lookup=10, private_bf16="on"),
         # the stricter form: spans copied from the passages, at most 6 tokens of its own per sentence
         "spans+lookup": dict(private_grounded_decoding=True, private_prompt_lookup=10, private_copy_spans=6,
                              private_bf16="off")}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, help="Hugging Face folder (default: the promoted private version)")
    p.add_argument("--store", type=Path, default=ROOT / ".bench" / "sample_kb")
    p.add_argument("--n", type=int, default=24)
    p.add_argument("--modes", default=",".join(MODES))
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from assistant.evaluation import load_cases
    from assistant.generators.base import GenerationRequest, Usage
    from assistant.generators.grounding import allowed_figures
    from assistant.generators.private import PrivateGenerator
    from assistant.pipeline import Assistant
    from assistant.settings import get_settings
    from ingest.pipeline import Ingestor

    settings = get_settings().model_copy(update={"store_dir": args.store, "answerability_model": "off",
                                                 **({"private_model_path": args.model} if args.model else {})})
    assistant = Assistant(settings)
    Ingestor(assistant.store, settings, assistant.embedder, progress=False).ingest([ROOT / "data" / "sample_kb"])
    cases = [c for c in load_cases(ROOT / "data" / "eval" / "customer_voice.test.jsonl") if c.get("category") == "public"]
    cases = cases[:: max(1, len(cases) // args.n)][: args.n]
    generator = PrivateGenerator(settings)
    ok, why = generator.available()
    if not ok:
        sys.exit(f"no private model: {why}")
    tok, _, prompt = generator._load()
    requests = []
    for c in cases:
        hits = assistant.retriever.retrieve(c["question"], role="customer", k=prompt["context_chunks"])
        requests.append(GenerationRequest(c["question"], hits, []))
    print(f"{len(requests)} questions, model {generator._loaded[0]}, {args.threads} threads")
    list(generator.stream(requests[0]))  # warm-up: weights paged in, kernels chosen
    loaded, reference = None, None  # what _load() chose above follows the settings' defaults: reload
    for mode in args.modes.split(","):
        generator.settings = settings.model_copy(update=MODES[mode])
        weights = (MODES[mode].get("private_int8", False), MODES[mode].get("private_bf16", "off"))
        if weights != loaded:  # reload the weights as this mode asks
            generator._loaded, loaded = None, weights
            list(generator.stream(requests[0]))
        answers = []
        first, whole, per_token, cited, bad, n_tokens = [], [], [], 0, 0, []
        for req in requests:
            usage, t0, t_first, parts = Usage(), time.perf_counter(), None, []
            for piece in generator.stream(req, usage):
                if t_first is None and piece.strip():
                    t_first = time.perf_counter()
                parts.append(piece)
            t_end = time.perf_counter()
            answer = "".join(parts)
            answers.append(answer)
            first.append(((t_first or t_end) - t0) * 1000)
            whole.append((t_end - t0) * 1000)
            n = max(usage.completion_tokens, 1)
            n_tokens.append(n)
            if n > 1 and t_first:
                per_token.append((t_end - t_first) * 1000 / (n - 1))
            cited += bool(re.search(r"\[\d+\]", answer))
            # what the model was shown: the passages and the contact channel it gives when it declines
            shown = [h.chunk.text for h in req.hits[: prompt["context_chunks"]]] + [settings.contact_fallback]
            said = allowed_figures([re.sub(r"\[\d+\]", " ", answer)])
            bad += len({f for f in said if "," not in f} - allowed_figures(shown))
        tpt = float(np.median(per_token)) if per_token else float("nan")
        sixty = [f + 59 * tpt for f in first]
        print(f"\n[{mode}]" + (" (the default)" if mode == "grounded+lookup" else ""))
        print(f"  first token p50 / p95      : {np.percentile(first, 50):.0f} / {np.percentile(first, 95):.0f} ms")
        print(f"  whole answer p50 / p95     : {np.percentile(whole, 50):.0f} / {np.percentile(whole, 95):.0f} ms "
              f"(mean {np.mean(n_tokens):.0f} new tokens)")
        print(f"  new tokens per second      : {1000 / tpt:.1f}")
        print(f"  60-token answer p95        : {np.percentile(sixty, 95):.0f} ms (first token + 59 × per-token time)")
        print(f"  answers citing a passage   : {cited}/{len(requests)}")
        print(f"  figures not in the passages: {bad}")
        if reference is None:
            reference = (mode, answers)
        else:  # greedy decoding: a faster mode that writes other words has changed the model
            same = sum(a == b for a, b in zip(answers, reference[1]))
            print(f"  answers identical to [{reference[0]}]: {same}/{len(answers)}")


if __name__ == "__main__":
    main()
