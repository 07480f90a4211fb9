"""The private model: a Llama-architecture decoder built from the config, in standard Hugging Face format."""

from __future__ import annotations

import time

import torch

from training.config import ModelConfig


def build_model(mc: ModelConfig, tokenizer, dtype: torch.dtype = torch.float32):
    from transformers import LlamaConfig, LlamaForCausalLM

    eot = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=mc.hidden_size, intermediate_size=mc.intermediate_size,
        num_hidden_layers=mc.num_hidden_layers, num_attention_heads=mc.num_attention_heads,
        num_key_value_heads=mc.num_key_value_heads, max_position_embeddings=mc.max_position_embeddings,
        rope_theta=mc.rope_theta, tie_word_embeddings=True, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None, eos_token_id=[tokenizer.eos_token_id, eot], attn_implementation="sdpa",
    )
    model = LlamaForCausalLM(config).to(dtype)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, eot]
    return model


def freeze_lower_layers(model, trainable_layers: int | None) -> int:
    """Train only the top `trainable_layers` decoder layers and the final norm (embeddings and the tied head stay):
    the backward pass stops at the lowest trainable layer. Returns the number of trainable parameters."""
    if trainable_layers is not None:
        inner = model.model
        for p in model.parameters():
            p.requires_grad = False
        for module in (*inner.layers[-trainable_layers:], inner.norm):
            for p in module.parameters():
                p.requires_grad = True
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def flops_per_token(config, seq_len: int) -> float:
    """Training FLOPs per token, PaLM appendix B: 6·N (N without the embedding lookup, with the tied LM head) plus
    12·layers·hidden·seq for attention scores."""
    h, L = config.hidden_size, config.num_hidden_layers
    kv = h * config.num_key_value_heads // config.num_attention_heads
    per_layer = 2 * h * h + 2 * h * kv + 3 * h * config.intermediate_size
    n = L * per_layer + config.vocab_size * h
    return 6 * n + 12 * L * h * seq_len


def measure_matmul_flops(m: int, k: int, n: int, device: str = "cpu", dtype=torch.float32, seconds: float = 1.0) -> float:
    """Sustained FLOP/s of an (m×k)·(k×n) matmul on this machine: the denominator of MFU."""
    a = torch.randn(m, k, device=device, dtype=dtype)
    b = torch.randn(k, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    _sync(device)
    reps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        reps += 1
    _sync(device)
    return 2 * m * k * n * reps / (time.perf_counter() - start)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())
