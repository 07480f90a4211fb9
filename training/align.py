"""Stage 5 — alignment: the rules against hallucination and unsafe answers as preference pairs, trained with TRL's
DPOTrainer (sigmoid DPO plus an NLL term on the chosen answer). Beside the synthetic pairs, the SFT model's own
failures as served (training/own_failures.py), and optionally raw insurance text replayed beside them (a language
modelling term, so preference tuning does not undo the held-out perplexity the earlier stages bought). Reports the
preference margin and accuracy before and after on held-out pairs.
"""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path

import torch

from training.config import TrainConfig
from training.data import read_jsonl
from training.instructions import preference_pairs, save_jsonl
from training import own_failures
from training.model import freeze_lower_layers
from training.sft import REPLAY_WINDOW, split_examples


def _as_text(tok, pairs: list[dict]) -> dict:
    """TRL's standard (non-conversational) format, rendered with the model's own chat template."""
    prompts = [tok.apply_chat_template(p["messages"], add_generation_prompt=True, tokenize=False) for p in pairs]
    return {"prompt": prompts, "chosen": [p["chosen"] for p in pairs], "rejected": [p["rejected"] for p in pairs]}


def replay_trainer(replay: torch.Tensor, weight: float, window: int, seed: int):
    """TRL's DPOTrainer with `weight` × the language-modelling loss of one raw-text window added at each training
    step: the window is drawn from the packed insurance text the earlier stages learned from."""
    from trl import DPOTrainer

    class ReplayDPOTrainer(DPOTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            out = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            if not model.training or not weight:
                return out
            g = torch.Generator().manual_seed(seed + self.state.global_step)
            start = int(torch.randint(0, max(1, len(replay) - window), (1,), generator=g))
            ids = replay[start:start + window].unsqueeze(0).to(self.args.device)  # model may be DDP-wrapped
            lm = model(input_ids=ids, labels=ids).loss
            return (out[0] + weight * lm, *out[1:]) if return_outputs else out + weight * lm

    return ReplayDPOTrainer


@torch.no_grad()
def preference_margin(model, ref, tok, pairs: list[dict], beta: float) -> dict:
    """Mean of beta·[(log π(chosen) − log π_ref(chosen)) − (log π(rejected) − log π_ref(rejected))], and how often
    the policy prefers the chosen answer outright (log π(chosen) > log π(rejected), length-normalized)."""
    def logp(m, prompt, answer):
        p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
        a_ids = tok(answer + tok.eos_token, add_special_tokens=False)["input_ids"]
        ids = torch.tensor([p_ids + a_ids])
        logits = m(input_ids=ids).logits[0, len(p_ids) - 1:-1]
        lp = torch.log_softmax(logits.float(), -1).gather(1, torch.tensor(a_ids)[:, None]).squeeze(1)
        return float(lp.sum()), len(a_ids)

    margins, wins = [], 0
    data = _as_text(tok, pairs)
    for prompt, chosen, rejected in zip(data["prompt"], data["chosen"], data["rejected"]):
        (pc, nc), (pr, nr) = logp(model, prompt, chosen), logp(model, prompt, rejected)
        (rc, _), (rr, _) = logp(ref, prompt, chosen), logp(ref, prompt, rejected)
        margins.append(beta * ((pc - rc) - (pr - rr)))
        wins += pc / nc > pr / nr
    return {"margin": round(sum(margins) / max(len(margins), 1), 4), "prefers_chosen": round(wins / max(len(pairs), 1), 3)}


def run(cfg: TrainConfig, sft_dir: Path, out: Path, data_dir: Path | None = None) -> dict:
    import datasets
    import pyarrow as pa
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out.mkdir(parents=True, exist_ok=True)
    ac = cfg.align
    rng = random.Random(cfg.seed)
    # SFT's validation conversations stay out of DPO too: the evaluation stage measures every stage on them
    examples = read_jsonl(sft_dir / "examples.jsonl")
    held_prompts = {e["messages"][-1]["content"] for e in split_examples(examples, cfg.seed)[0]}
    examples = [e for e in examples if e["messages"][-1]["content"] not in held_prompts]
    pairs = preference_pairs(examples, rng)
    rng.shuffle(pairs)
    n_val = min(ac.eval_pairs, max(4, len(pairs) // 10))
    val, train = pairs[:n_val], pairs[n_val:]
    failures, failure_stats = own_failures.collect(cfg, sft_dir, examples, ac.own_failures, rng) if ac.own_failures else ([], {})
    # the model's own failures are all trained on; synthetic pairs fill what the step budget sees beside them
    seen = ac.steps * ac.batch_size
    train = failures + train[: max(seen - len(failures), 0)]
    pairs += failures
    save_jsonl(out / "pairs.jsonl", pairs)

    model_dir = sft_dir / "model"
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    ref = copy.deepcopy(model).eval()
    freeze_lower_layers(model, cfg.trainable_layers)
    before = preference_margin(model, ref, tok, val, ac.beta)

    args = DPOConfig(
        output_dir=str(out / "trainer"), max_steps=ac.steps, per_device_train_batch_size=ac.batch_size,
        learning_rate=ac.lr, beta=ac.beta, loss_type=["sigmoid", "sft"], loss_weights=[1.0, ac.sft_weight],
        lr_scheduler_type="cosine", warmup_steps=max(1, ac.steps // 10), logging_steps=max(1, ac.steps // 10),
        save_strategy="no", report_to="none", bf16=cfg.dtype == "bfloat16", gradient_checkpointing=False,
        max_length=cfg.sft.seq_len, seed=cfg.seed, use_cpu=cfg.device == "cpu" or not torch.cuda.is_available(),
        disable_tqdm=False, dataloader_num_workers=0,
    )
    dataset = datasets.Dataset(pa.table(_as_text(tok, train)))  # Dataset.from_dict crashes with these pins
    trainer_cls = DPOTrainer
    if ac.replay_weight and data_dir is not None:
        from training.pretrain import pack

        replay = torch.as_tensor(pack(tok, [d["text"] for d in read_jsonl(data_dir / "insurance.jsonl")])).long()
        trainer_cls = replay_trainer(replay, ac.replay_weight, REPLAY_WINDOW, cfg.seed)
    trainer = trainer_cls(model=model, ref_model=ref, args=args, train_dataset=dataset, processing_class=tok)
    result = trainer.train()
    model.eval()
    after = preference_margin(model, ref, tok, val, ac.beta)
    model.save_pretrained(out / "model")
    tok.save_pretrained(out / "model")
    from training.sft import write_prompt_file

    write_prompt_file(cfg, out / "model")
    logs = [r for r in trainer.state.log_history if "loss" in r]
    (out / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in trainer.state.log_history))
    kinds: dict[str, int] = {}
    for p in pairs:
        kinds[p["kind"]] = kinds.get(p["kind"], 0) + 1
    return {
        "pairs": len(pairs), "pairs_by_kind": kinds, "trained_pairs": len(train), "own_failures": failure_stats,
        "steps": ac.steps, "replay_weight": ac.replay_weight if data_dir is not None else 0.0,
        "train_loss": round(result.training_loss, 4),
        "final_logged_loss": logs[-1]["loss"] if logs else None,
        "heldout_margin_before": before["margin"], "heldout_margin_after": after["margin"],
        "prefers_chosen_before": before["prefers_chosen"], "prefers_chosen_after": after["prefers_chosen"],
        "wall_s": round(result.metrics.get("train_runtime", 0.0), 1),
    }
