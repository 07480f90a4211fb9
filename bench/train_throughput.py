"""Pre-training throughput of a preset (default cpu-small): tokens/s and MFU against the matmul throughput measured
on this machine at start, with the preset's model, batch and sequence length.

    python bench/train_throughput.py [--preset cpu-small] [--steps 30] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="cpu-small")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--threads", type=int)
    args = p.parse_args()

    import numpy as np
    import torch

    from training.config import load_config
    from training.model import build_model, flops_per_token, measure_matmul_flops, n_params
    from training.pretrain import DTYPES, window_batches
    from training.tokenizer import train_bpe
    from training.trainer import resolve_device, train

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_config(args.preset)
    oc = cfg.pretrain.model_copy(update={"steps": args.steps, "warmup_steps": 2, "eval_every": 10**9,
                                         "checkpoint_every": 10**9})
    device = resolve_device(cfg.device)
    # Throughput does not depend on the text: a tokenizer of the preset's size and random tokens.
    words = [f"w{i}" for i in range(cfg.tokenizer.vocab_size)]
    tok = train_bpe([" ".join(words)] * 3, cfg.tokenizer.vocab_size, min_frequency=1)
    model = build_model(cfg.model, tok)
    stream = np.random.default_rng(0).integers(0, len(tok), size=2_000_000).astype(np.int32)
    peak = measure_matmul_flops(oc.batch_size * oc.seq_len, cfg.model.hidden_size, cfg.model.intermediate_size,
                                device, DTYPES[cfg.dtype], seconds=2.0)
    fpt = flops_per_token(model.config, oc.seq_len)
    with tempfile.TemporaryDirectory() as tmp:
        train(model, window_batches(stream, oc.batch_size, oc.seq_len, 0), oc.model_copy(update={"steps": 3}),
              Path(tmp) / "warm", val_batches=[], device=device, dtype=cfg.dtype)
        m = train(model, window_batches(stream, oc.batch_size, oc.seq_len, 1), oc, Path(tmp) / "run", val_batches=[],
                  device=device, dtype=cfg.dtype, flops_per_token=fpt, peak_flops=peak)
    result = {"preset": args.preset, "params": n_params(model), "threads": torch.get_num_threads(),
              "batch": f"{oc.batch_size}x{oc.seq_len}", "tokens_per_s": m["tokens_per_s"],
              "flops_per_token": fpt, "achieved_gflops": round(m["achieved_flops"] / 1e9, 1),
              "measured_matmul_gflops": round(peak / 1e9, 1), "mfu": m["mfu"]}
    print(f"{args.preset}: {result['params']:,} params, batch {result['batch']}, {result['threads']} threads")
    print(f"  tokens/s {result['tokens_per_s']:.0f} · achieved {result['achieved_gflops']} GFLOP/s · "
          f"matmul measured {result['measured_matmul_gflops']} GFLOP/s · MFU {result['mfu']:.1%}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
