"""bf16 on the CPU where it computes bf16 natively (AVX512-BF16 or AMX): on this project's 2 cores the answerability
cross-encoder trains 2.1x and scores 1.7x faster (training/answerability.py, bench/answers.py); fp32 stays where bf16
would only be emulated."""

from __future__ import annotations

import contextlib
from functools import lru_cache


@lru_cache(maxsize=1)
def cpu_has_bf16() -> bool:
    import torch

    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def bf16_enabled(setting: str) -> bool:
    """`on`, `off`, or `auto`: on where the CPU has native bf16."""
    if setting not in ("auto", "on", "off"):
        raise ValueError(f"a bf16 setting must be auto, on or off, not {setting!r}")
    return setting == "on" or (setting == "auto" and cpu_has_bf16())


def autocast(setting: str):
    """A CPU bf16 autocast region, or nothing (the weights stay fp32: only matmuls run in bf16)."""
    if not bf16_enabled(setting):
        return contextlib.nullcontext()
    import torch

    return torch.autocast("cpu", dtype=torch.bfloat16)


def use_bf16(flag: bool | None) -> bool:
    """A training config's `bf16`: None = where the CPU has native bf16."""
    return cpu_has_bf16() if flag is None else flag
