"""The training loop shared by pre-training and SFT: AdamW, warmup + cosine/WSD, clipping, validation,
checkpoints with exact resume, tokens/s and MFU. Runs alone or under torchrun / `accelerate launch` (DDP or FSDP).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import torch
from tqdm import tqdm

from training.config import OptimConfig


# --- distributed ---------------------------------------------------------------------------------------------------
def dist_info() -> tuple[int, int]:
    """(rank, world size) from the launcher's environment (torchrun and accelerate set these)."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def init_distributed(device: str) -> None:
    rank, world = dist_info()
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if device.startswith("cuda") else "gloo")
        if device.startswith("cuda"):
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))


def is_main() -> bool:
    return dist_info()[0] == 0


def barrier() -> None:
    if torch.distributed.is_initialized():
        torch.distributed.barrier()


def wrap(model, parallel: str, device: str):
    if not torch.distributed.is_initialized():
        return model
    if parallel == "fsdp":
        from torch.distributed.fsdp import fully_shard

        for layer in model.model.layers:
            fully_shard(layer)
        return fully_shard(model)
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[torch.cuda.current_device()] if device.startswith("cuda") else None)


def resolve_device(name: str) -> str:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("this preset needs a CUDA GPU and none is visible; use a cpu-* preset here")
    if name == "cuda":
        return f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
    return name


# --- schedule ------------------------------------------------------------------------------------------------------
def lr_at(step: int, oc: OptimConfig) -> float:
    if step < oc.warmup_steps:
        return oc.lr * (step + 1) / oc.warmup_steps
    floor = oc.lr * oc.min_lr_ratio
    if oc.schedule == "wsd":  # warmup-stable-decay: flat, then a linear decay over the last 20%
        decay_start = int(oc.steps * 0.8)
        if step < decay_start:
            return oc.lr
        return floor + (oc.lr - floor) * (1 - (step - decay_start) / max(1, oc.steps - decay_start))
    progress = (step - oc.warmup_steps) / max(1, oc.steps - oc.warmup_steps)
    return floor + (oc.lr - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def make_optimizer(model, oc: OptimConfig):
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": oc.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=oc.lr, betas=(0.9, 0.95), eps=1e-8)


# --- checkpoints ---------------------------------------------------------------------------------------------------
def latest_checkpoint(out: Path) -> Path | None:
    ckpts = sorted((out / "checkpoints").glob("step-*"), key=lambda p: int(p.name.split("-")[1]))
    return ckpts[-1] if ckpts else None


def _save_checkpoint(out: Path, model, opt, step: int, history: list, keep: int) -> None:
    path = out / "checkpoints" / f"step-{step:06d}"
    tmp = path.with_name(path.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    torch.save({"model": _unwrap(model).state_dict(), "optimizer": opt.state_dict(), "step": step,
                "history": history}, tmp / "state.pt")
    if path.exists():
        shutil.rmtree(path)
    tmp.rename(path)  # a crash mid-save never leaves a half-written checkpoint under a valid name
    for old in sorted((out / "checkpoints").glob("step-*"))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def _unwrap(model):
    return getattr(model, "module", model)


# --- the loop ------------------------------------------------------------------------------------------------------
def batch_loss(model, batch: dict) -> torch.Tensor:
    """The model's mean loss over the batch's supervised tokens or, where the batch carries `label_weights` (a weight
    per label position), their weighted sum: SFT weighs replayed raw text against the answers it learns, which a
    token mean cannot (one 256-token window outweighs four 40-token answers)."""
    weights = batch.get("label_weights")
    if weights is None:
        return model(**batch).loss
    logits = model(**{k: v for k, v in batch.items() if k not in ("labels", "label_weights")}).logits[:, :-1].float()
    labels = batch["labels"][:, 1:]
    ce = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), labels.reshape(-1), ignore_index=-100,
                                           reduction="none")
    return (ce * weights[:, 1:].reshape(-1)).sum()


def evaluate_loss(model, batches: list[dict], device: str, autocast) -> float:
    model.eval()
    total, n = 0.0, 0
    with torch.no_grad(), autocast():
        for b in batches:
            out = model(**{k: v.to(device) for k, v in b.items()})
            total += float(out.loss)
            n += 1
    model.train()
    return total / max(n, 1)


def train(model, get_batch: Callable[[int, int], dict], oc: OptimConfig, out: Path, *, val_batches: list[dict],
          device: str, dtype: str = "float32", parallel: str = "ddp", flops_per_token: float = 0.0,
          peak_flops: float = 0.0, desc: str = "train") -> dict:
    """Train `model` for `oc.steps` optimizer steps; `get_batch(step, micro)` returns this rank's micro-batch
    (`input_ids`, `labels` with -100 on ignored positions, optionally `attention_mask` and `label_weights`)."""
    out.mkdir(parents=True, exist_ok=True)
    model.to(device)
    model.train()
    opt = make_optimizer(model, oc)
    step, history = 0, []
    ckpt = latest_checkpoint(out)
    if ckpt is not None:
        state = torch.load(ckpt / "state.pt", map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        step, history = state["step"], state["history"]
    resumed_from = step
    ddp_model = wrap(model, parallel, device)
    autocast = (lambda: torch.autocast(device.split(":")[0], dtype=torch.bfloat16)) if dtype == "bfloat16" else nullcontext
    rank, world = dist_info()

    bar = tqdm(total=oc.steps, initial=step, desc=desc, disable=not is_main(), dynamic_ncols=True)
    tokens_seen, t_start, loss_val = 0, time.perf_counter(), float("nan")
    while step < oc.steps:
        lr = lr_at(step, oc)
        for group in opt.param_groups:
            group["lr"] = lr
        loss_sum = 0.0
        for micro in range(oc.grad_accum):
            batch = {k: v.to(device) for k, v in get_batch(step, micro).items()}
            sync = micro == oc.grad_accum - 1 or not hasattr(ddp_model, "no_sync")
            with (nullcontext() if sync else ddp_model.no_sync()), autocast():
                loss = batch_loss(ddp_model, batch) / oc.grad_accum
            loss.backward()
            loss_sum += float(loss.detach())
            tokens_seen += int(batch["input_ids"].numel()) * world
        grad_norm = float(torch.nn.utils.clip_grad_norm_(ddp_model.parameters(), oc.grad_clip))
        opt.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        elapsed = time.perf_counter() - t_start
        tok_s = tokens_seen / elapsed
        record = {"step": step, "loss": round(loss_sum, 4), "lr": lr, "grad_norm": round(grad_norm, 3), "tok_s": round(tok_s, 1)}
        if step % oc.eval_every == 0 or step == oc.steps:
            loss_val = evaluate_loss(ddp_model, val_batches, device, autocast)
            record["val_loss"] = round(loss_val, 4)
        history.append(record)
        bar.update(1)
        bar.set_postfix(loss=f"{loss_sum:.3f}", val=f"{loss_val:.3f}", tok_s=f"{tok_s:.0f}")
        if step % oc.checkpoint_every == 0 and step < oc.steps:
            barrier()
            if is_main():
                _save_checkpoint(out, ddp_model, opt, step, history, oc.keep_checkpoints)
    bar.close()
    wall = time.perf_counter() - t_start
    tok_s = tokens_seen / wall if wall > 0 and tokens_seen else 0.0
    if is_main():
        with (out / "history.jsonl").open("w") as f:
            for r in history:
                f.write(json.dumps(r) + "\n")
    achieved = tok_s * flops_per_token / world
    return {
        "steps": step, "resumed_from": resumed_from, "tokens": tokens_seen, "wall_s": round(wall, 1),
        "tokens_per_s": round(tok_s, 1), "train_loss": history[-1]["loss"] if history else None,
        "val_loss": round(loss_val, 4) if not math.isnan(loss_val) else None,
        "achieved_flops": achieved, "peak_flops": peak_flops,
        "mfu": round(achieved / peak_flops, 3) if peak_flops else None, "world_size": world, "rank": rank,
    }
