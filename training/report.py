"""The report card: every stage's metrics, wall time and the hardware, as Markdown + JSON + PNG loss curves."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import torch


def hardware() -> dict:
    info = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "python": platform.python_version()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpus"] = torch.cuda.device_count()
    return info


def _history(path: Path) -> list[dict]:
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()] if path.exists() else []


def plot_losses(run_dir: Path, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for ax, stage in zip(axes, ("pretrain", "sft", "align")):
        hist = _history(run_dir / stage / "history.jsonl")
        train = [(r["step"], r["loss"]) for r in hist if "loss" in r and "step" in r]
        val = [(r["step"], r["val_loss"]) for r in hist if "val_loss" in r]
        if train:
            ax.plot(*zip(*train), label="train", lw=1)
        if val:
            ax.plot(*zip(*val), "o-", label="held-out", lw=1.5)
        ax.set_title(stage if stage != "align" else "align (DPO + NLL loss)")
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, dict):
        return ", ".join(f"{k}={_fmt(x)}" for k, x in v.items())
    return str(v)


def write(run_dir: Path, stages: dict, meta: dict) -> dict:
    card = {"version": meta.get("version"), "preset": meta.get("preset"), "hardware": hardware(), "stages": stages,
            "total_wall_s": round(sum(s.get("wall_s", 0) for s in stages.values()), 1)}
    (run_dir / "report.json").write_text(json.dumps(card, indent=2))
    try:
        plot_losses(run_dir, run_dir / "loss.png")
    except Exception as e:  # noqa: BLE001 - the card is still useful without its picture
        card["plot_error"] = str(e)
    lines = [f"# Report card — {card['version']} ({card['preset']})", "",
             f"Hardware: {_fmt(card['hardware'])}", f"Total wall time: {card['total_wall_s']} s", ""]
    for name, s in stages.items():
        lines += [f"## {name} — {s.get('wall_s', 0)} s", ""]
        for k, v in s.get("metrics", {}).items():
            if isinstance(v, dict) and all(isinstance(x, dict) for x in v.values()):
                lines.append(f"- **{k}**:")
                lines += [f"  - {kk}: {_fmt(vv)}" for kk, vv in v.items()]
            else:
                lines.append(f"- {k}: {_fmt(v)}")
        lines.append("")
    if (run_dir / "loss.png").exists():
        lines.append("![loss curves](loss.png)")
    (run_dir / "report.md").write_text("\n".join(lines) + "\n")
    return card
