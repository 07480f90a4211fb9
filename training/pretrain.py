"""Stage 3 — pre-training from scratch: documents packed into one token stream (separated by <|endoftext|>),
random windows as batches, the shared loop, then the base model saved in Hugging Face format.
"""

from __future__ import annotations

import json

import numpy as np
import torch

from training.config import TrainConfig
from training.data import read_jsonl
from pathlib import Path

from training.model import build_model, flops_per_token, freeze_lower_layers, measure_matmul_flops, n_params
from training.trainer import barrier, dist_info, init_distributed, is_main, resolve_device, train

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def pack(tokenizer, texts: list[str]) -> np.ndarray:
    eot = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    return np.fromiter((t for doc in ids for t in (*doc, eot)), dtype=np.int32)


def window_batches(stream: np.ndarray, batch_size: int, seq_len: int, seed: int):
    """`get_batch(step, micro)`: random windows, a pure function of (seed, step, micro, rank) so a resumed run sees
    exactly the batches the interrupted one would have seen, and ranks see different ones."""
    from training.trainer import dist_info

    rank = dist_info()[0]
    high = len(stream) - seq_len - 1
    if high <= 0:
        raise ValueError(f"the corpus ({len(stream)} tokens) is shorter than one sequence ({seq_len})")

    def get_batch(step: int, micro: int) -> dict:
        rng = np.random.default_rng([seed, step, micro, rank])
        starts = rng.integers(0, high, size=batch_size)
        x = torch.from_numpy(np.stack([stream[s:s + seq_len] for s in starts]).astype(np.int64))
        return {"input_ids": x, "labels": x.clone()}

    return get_batch


def heldout_batches(stream: np.ndarray, batch_size: int, seq_len: int, n: int) -> list[dict]:
    """Consecutive, non-overlapping windows of held-out text: the same ones for every model and stage."""
    out = []
    for b in range(n):
        rows = []
        for i in range(batch_size):
            s = (b * batch_size + i) * seq_len
            if s + seq_len > len(stream):
                break
            rows.append(stream[s:s + seq_len])
        if rows:
            x = torch.from_numpy(np.stack(rows).astype(np.int64))
            out.append({"input_ids": x, "labels": x.clone()})
    return out


def run(cfg: TrainConfig, data_dir, tok_dir, out) -> dict:
    from transformers import AutoTokenizer

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    init_distributed(device)
    torch.manual_seed(cfg.seed)
    tok = AutoTokenizer.from_pretrained(tok_dir)
    oc = cfg.pretrain
    train_stream = pack(tok, [d["text"] for d in read_jsonl(data_dir / "train.jsonl")])
    held_stream = pack(tok, [d["text"] for d in read_jsonl(data_dir / "heldout.jsonl")])
    guard = {}
    if cfg.base == "scratch":
        model = build_model(cfg.model, tok)
    else:  # continued pre-training of an open base, guarded against forgetting by held-out general text
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(base_path(out.parent), dtype=torch.float32)
        freeze_lower_layers(model, cfg.trainable_layers)
        guard["general_loss_before"] = general_loss(model, tok, data_dir, oc)
    fpt = flops_per_token(model.config, oc.seq_len)
    if cfg.trainable_layers is not None:  # frozen lower layers: forward (1/3) everywhere, backward (2/3) only above
        fpt *= 1 / 3 + 2 / 3 * cfg.trainable_layers / model.config.num_hidden_layers
    peak = measure_matmul_flops(oc.batch_size * oc.seq_len, model.config.hidden_size, model.config.intermediate_size,
                                device, DTYPES[cfg.dtype])
    if cfg.compile:
        model = torch.compile(model)
    metrics = train(
        model, window_batches(train_stream, oc.batch_size, oc.seq_len, cfg.seed), oc, out,
        val_batches=heldout_batches(held_stream, oc.batch_size, oc.seq_len, oc.eval_batches), device=device,
        dtype=cfg.dtype, parallel=cfg.parallel, flops_per_token=fpt, peak_flops=peak, desc="pretrain",
    )
    rank, world = dist_info()
    if world > 1:  # every rank records what it holds, so a launcher (and the tests) can check they agree
        checksum = float(sum(p.double().sum() for p in model.parameters()))
        (out / f"rank{rank}.json").write_text(json.dumps({"rank": rank, "param_sum": checksum, "steps": metrics["steps"]}))
    barrier()
    if is_main():
        base = getattr(model, "_orig_mod", model)
        base.save_pretrained(out / "model")
        tok.save_pretrained(out / "model")
    if guard:
        guard["general_loss_after"] = general_loss(getattr(model, "_orig_mod", model), tok, data_dir, oc)
        # forgetting: a rise of general held-out loss; more than 5% means too little general replay or too high a lr
        guard["general_forgetting"] = round(guard["general_loss_after"] / guard["general_loss_before"] - 1, 4)
    metrics.update(params=n_params(model), train_tokens_in_corpus=int(len(train_stream)),
                   heldout_tokens=int(len(held_stream)), flops_per_token=fpt, base=cfg.base, **guard,
                   trainable_params=sum(p.numel() for p in model.parameters() if p.requires_grad))
    return metrics


def base_path(run_dir: Path) -> str:
    """The open base's Hugging Face folder, as the tokenizer stage resolved it."""
    return json.loads((run_dir / "base.json").read_text())["path"]


@torch.no_grad()
def general_loss(model, tok, data_dir: Path, oc) -> float:
    texts = [d["text"] for d in read_jsonl(data_dir / "heldout_general.jsonl")] if (data_dir / "heldout_general.jsonl").exists() else []
    batches = heldout_batches(pack(tok, texts), oc.batch_size, oc.seq_len, oc.eval_batches) if texts else []
    if not batches:
        return float("nan")
    model.eval()
    loss = sum(float(model(**b).loss) for b in batches) / len(batches)
    model.train()
    return round(loss, 4)
