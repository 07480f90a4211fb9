"""Solution B's life cycle on the cpu-tiny preset: the real pipeline, real files, real Hugging Face round trips."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import torch

from tests.conftest import ROOT, SAMPLE_KB, make_settings


def test_pipeline_runs_every_stage_and_writes_the_report_card(trained):
    reg, version = trained
    run = reg.path(version)
    stages = json.loads((run / "stages.json").read_text())
    assert [s for s in stages if stages[s]["done"]] == ["data", "tokenizer", "pretrain", "sft", "align", "eval"]
    for f in ("report.md", "report.json", "loss.png", "data/data_card.md", "tokenizer/tokenizer.json", "model/config.json"):
        assert (run / f).exists(), f
    card = json.loads((run / "report.json").read_text())
    assert card["hardware"]["cores"] >= 1 and card["total_wall_s"] > 0
    data = stages["data"]["metrics"]
    assert data["share_general"] > data["share_insurance"]  # "general slightly larger"
    ppl = stages["eval"]["metrics"]["heldout"]
    vocab = stages["tokenizer"]["metrics"]["vocab_size"]
    # Even 30 steps must beat guessing uniformly over the vocabulary, and SFT (with replay) must not undo it.
    assert ppl["base"]["perplexity"] < vocab / 2
    assert ppl["sft"]["perplexity"] < ppl["base"]["perplexity"] * 1.1
    rag = stages["eval"]["metrics"]["rag"]
    assert set(rag) == {"private", "extractive", "base-few-shot"}
    assert rag["extractive"]["citation_accuracy"] > 0.5  # the eval harness itself works on this KB
    meta = reg.metadata(version)
    assert meta["status"] == "ready" and meta["data_card_hash"] and meta["config_hash"]
    assert reg.promoted() == version


def test_private_backend_answers_through_the_assistant_with_the_promoted_model(trained, kb_store_dir, embedder):
    from assistant.pipeline import Assistant

    reg, version = trained
    s = make_settings(kb_store_dir, models_dir=reg.dir, max_answer_tokens=16)
    assistant = Assistant(s, embedder=embedder)
    assert assistant.backends()["private"] == (True, "")
    ans = assistant.ask("How long is the cooling-off period for life insurance?", backend="private")
    assert ans.backend == "private" and ans.answer
    assert ans.usage["prompt_tokens"] > 0 and ans.usage["completion_tokens"] <= 16
    # The prompt was fitted to the model's window, as in training.
    from transformers import AutoConfig

    assert ans.usage["prompt_tokens"] + 16 <= AutoConfig.from_pretrained(reg.path(version) / "model").max_position_embeddings


def test_cli_ask_with_the_private_backend(trained, kb_store_dir):
    reg, _ = trained
    env = {"ASSISTANT_MODELS_DIR": str(reg.dir), "ASSISTANT_STORE_DIR": str(kb_store_dir), "HF_HUB_OFFLINE": "1",
           "PATH": "/usr/bin:/bin", "ASSISTANT_MAX_ANSWER_TOKENS": "8", "ASSISTANT_ANSWERABILITY_MODEL": "off"}
    out = subprocess.run([sys.executable, "-m", "assistant", "ask", "What does home insurance cover?", "--backend",
                          "private", "--json"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["backend"] == "private"


def test_saved_folder_round_trips_through_auto_classes_with_identical_logits(trained):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    reg, version = trained
    folder = reg.path(version) / "model"
    tok = AutoTokenizer.from_pretrained(folder)
    loaded = AutoModelForCausalLM.from_pretrained(folder).eval()
    ids = tok("Your deductible is EUR 250 per claim.", return_tensors="pt")["input_ids"]
    # Save the loaded model again and reload: a second round trip must be exact, bit for bit.
    again_dir = reg.path(version) / "eval" / "roundtrip"
    loaded.save_pretrained(again_dir)
    tok.save_pretrained(again_dir)
    again = AutoModelForCausalLM.from_pretrained(again_dir).eval()
    with torch.no_grad():
        assert torch.equal(loaded(ids).logits, again(ids).logits)
    assert AutoTokenizer.from_pretrained(again_dir)("policyholder")["input_ids"] == tok("policyholder")["input_ids"]
    assert loaded.config.model_type == "llama" and tok.pad_token_id != tok.eos_token_id


def test_in_memory_model_equals_its_saved_folder(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from training.config import ModelConfig
    from training.model import build_model
    from training.tokenizer import train_bpe

    tok = train_bpe(["the policyholder pays the deductible on each claim"] * 50, 300, terms=["deductible"])
    model = build_model(ModelConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                                    num_key_value_heads=2, max_position_embeddings=64), tok).eval()
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    ids = AutoTokenizer.from_pretrained(tmp_path)("the deductible", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert torch.equal(model(ids).logits, AutoModelForCausalLM.from_pretrained(tmp_path).eval()(ids).logits)


def test_replayed_text_weighs_what_sft_says_beside_the_answers():
    """A 256-token raw window must not outweigh a batch's 40-token answers: with `label_weights` the loss is the
    answers' mean token loss plus the weight times the window's, whatever their lengths."""
    from training.config import ModelConfig
    from training.model import build_model
    from training.sft import IGNORE, replay_weights
    from training.tokenizer import train_bpe
    from training.trainer import batch_loss

    tok = train_bpe(["the policyholder pays the deductible on each claim"] * 50, 300, terms=["deductible"])
    model = build_model(ModelConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                                    num_key_value_heads=2, max_position_embeddings=64), tok).eval()
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 300, (3, 40), generator=g)
    labels = ids.clone()
    labels[0, :35] = IGNORE  # two conversations: short answers after their prompts
    labels[1, :30] = IGNORE  # the last row: a replayed window, every token supervised
    with torch.no_grad():
        mean = model(input_ids=ids, labels=labels).loss
        weights = replay_weights(labels, 1, 0.3)
        assert torch.allclose(weights[:2].sum(), torch.tensor(1.0)) and torch.allclose(weights[2].sum(), torch.tensor(0.3))
        weighted = batch_loss(model, {"input_ids": ids, "labels": labels, "label_weights": weights})
        answers = model(input_ids=ids[:2], labels=labels[:2]).loss
        window = model(input_ids=ids[2:], labels=labels[2:]).loss
        assert torch.allclose(weighted, answers + 0.3 * window, atol=1e-5)
        assert not torch.allclose(weighted, mean, atol=1e-3)  # a token mean would let the window dominate
        uniform = (labels != IGNORE).float()
        uniform[:, 0] = 0
        assert torch.allclose(batch_loss(model, {"input_ids": ids, "labels": labels,
                                                 "label_weights": uniform / uniform.sum()}), mean, atol=1e-5)


def test_tokenizer_keeps_insurance_terms_whole():
    from training.tokenizer import train_bpe

    text = ["The cat sat on the mat while the dog ran in the park."] * 200
    tok = train_bpe(text, 320, terms=["deductible", "policyholder", "no-claims"])
    pieces = tok.convert_ids_to_tokens(tok("Each policyholder pays a deductible. No-claims bonus.")["input_ids"])
    assert " policyholder" in pieces and " deductible" in pieces and " No-claims" in pieces
    assert tok.decode(tok("Each policyholder pays a deductible.")["input_ids"]) == "Each policyholder pays a deductible."


def test_sft_labels_only_the_assistant_answer(trained):
    from transformers import AutoTokenizer

    from training.sft import IGNORE, encode

    reg, version = trained
    tok = AutoTokenizer.from_pretrained(reg.path(version) / "tokenizer")
    messages = [{"role": "system", "content": "Rules here."}, {"role": "user", "content": "Context: x\n\nQuestion: y?"}]
    ids, labels = encode(tok, messages, "The answer [1]", 512)
    learned = [t for t in labels if t != IGNORE]
    assert tok.decode(learned) == "The answer [1]<|im_end|>"  # the answer and its EOS, nothing of the prompt
    assert labels[: len(ids) - len(learned) - 1] == [IGNORE] * (len(ids) - len(learned) - 1)


def test_instruction_data_is_grounded_and_never_uses_eval_questions(trained):
    reg, version = trained
    examples = [json.loads(ln) for ln in (reg.path(version) / "sft" / "examples.jsonl").read_text().splitlines()]
    kinds = {e["kind"] for e in examples}
    assert {"grounded", "refusal", "handoff", "unsafe", "multi_turn"} <= kinds
    eval_qs = {json.loads(ln)["question"].lower() for ln in (SAMPLE_KB / "eval.jsonl").read_text().splitlines() if ln.strip()}
    assert not {e["question"].lower() for e in examples} & eval_qs
    for e in examples:
        if e["kind"] == "grounded":
            # markdown bold dropped: quotes are of the cleaned sentences ("- **Comprehensive**: all of…" is quoted
            # "Comprehensive: all of…"), the prompt shows the passage as written
            context = " ".join(e["messages"][-1]["content"].split()).replace("**", "")
            # Every quoted sentence is in the prompt the model sees: the teacher never invents.
            for sentence in re.split(r"\s*\[\d+\]\s*", e["answer"]):
                core = " ".join(sentence.split()).rstrip(".")
                assert core[:40] in context, (core, context[:300])


def test_resume_continues_from_the_checkpoint_step(tmp_path):
    from training.config import OptimConfig
    from training.trainer import train

    def batches(step, micro):
        g = torch.Generator().manual_seed(step)
        x = torch.randint(0, 50, (4, 16), generator=g)
        return {"input_ids": x, "labels": x.clone()}

    def model():
        from transformers import LlamaConfig, LlamaForCausalLM

        torch.manual_seed(0)
        return LlamaForCausalLM(LlamaConfig(vocab_size=50, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                            num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=32))

    val = [batches(999, 0)]
    straight = train(model(), batches, OptimConfig(steps=6, eval_every=3, checkpoint_every=100, warmup_steps=1),
                     tmp_path / "straight", val_batches=val, device="cpu")
    # An interrupted run: 3 steps with a checkpoint at step 3...
    oc = OptimConfig(steps=6, eval_every=3, checkpoint_every=3, warmup_steps=1)
    train(model(), batches, oc.model_copy(update={"steps": 4}), tmp_path / "resumed", val_batches=val, device="cpu")
    # ...then a new process resumes it to the end.
    resumed = train(model(), batches, oc, tmp_path / "resumed", val_batches=val, device="cpu")
    assert resumed["resumed_from"] == 3 and resumed["steps"] == 6
    # Same batches, same optimizer state: the same run up to float reassociation.
    assert resumed["train_loss"] == pytest.approx(straight["train_loss"], abs=2e-3)
    assert resumed["val_loss"] == pytest.approx(straight["val_loss"], abs=2e-3)


def test_ddp_two_processes_agree(trained, tmp_path):
    """torchrun with 2 CPU processes (gloo): both ranks end with the same weights."""
    import shutil

    from training.registry import Registry

    reg, version = trained
    models = tmp_path / "models"
    copy = Registry(models)
    (models / "ddp").mkdir(parents=True)
    for part in ("config.json", "metadata.json", "data", "tokenizer"):
        src = reg.path(version) / part
        (shutil.copytree if src.is_dir() else shutil.copy)(src, models / "ddp" / part)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
           "-m", "training", "--models-dir", str(models), "pretrain", "--version", "ddp"]
    out = subprocess.run(cmd + ["--force"], cwd=ROOT, capture_output=True, text=True, timeout=600,
                         env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    ranks = [json.loads((copy.path("ddp") / "pretrain" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["param_sum"] == ranks[1]["param_sum"] and ranks[0]["steps"] == ranks[1]["steps"] > 0
    stages = json.loads((copy.path("ddp") / "stages.json").read_text())
    assert stages["pretrain"]["metrics"]["world_size"] == 2


def test_registry_delete_removes_every_file_and_is_audited(trained, tmp_path):
    from training.config import load_config
    from training.registry import Registry, RegistryError

    reg = Registry(tmp_path / "models")
    cfg = load_config("cpu-tiny")
    v1 = reg.create(cfg, "v1").name
    ckpt = reg.path(v1) / "pretrain" / "checkpoints" / "step-000010"
    ckpt.mkdir(parents=True)
    (ckpt / "state.pt").write_bytes(b"x" * 100)
    (reg.path(v1) / "model").mkdir()
    (reg.path(v1) / "model" / "config.json").write_text("{}")
    with pytest.raises(RegistryError, match="not finished"):
        reg.promote(v1)
    reg.finish(v1, {})
    reg.promote(v1, "first model")
    with pytest.raises(RegistryError, match="promoted"):
        reg.delete(v1, "cleanup")
    with pytest.raises(RegistryError, match="reason"):
        reg.delete(v1, "", force=True)
    with pytest.raises(RegistryError, match="already exists"):
        reg.create(cfg, "v1")
    entry = reg.delete(v1, "customer data withdrawn (GDPR art. 17)", force=True)
    assert not (tmp_path / "models" / "v1").exists() and reg.promoted() is None
    assert entry["files_removed"] == 4 and entry["bytes_removed"] > 100
    log = reg.audit_log()
    assert [e["action"] for e in log] == ["create", "promote", "delete"]
    assert log[-1]["reason"].startswith("customer data") and log[-1]["user"] and log[-1]["time"]


def test_clear_errors_for_typos_unknown_presets_and_missing_models(tmp_path, capsys):
    from training.__main__ import main

    assert main(["--models-dir", str(tmp_path), "all", "--preset", "cpu-huge"]) == 2
    assert "unknown preset" in capsys.readouterr().err
    assert main(["--models-dir", str(tmp_path), "all", "--preset", "cpu-tiny", "--set", "pretrain.stepz=3"]) == 2
    assert "stepz" in capsys.readouterr().err
    assert main(["--models-dir", str(tmp_path), "models", "show", "nope"]) == 2
    assert "no version" in capsys.readouterr().err

    from assistant.generators.private import PrivateGenerator

    ok, why = PrivateGenerator(make_settings(tmp_path / "s", models_dir=tmp_path / "empty")).available()
    assert not ok and "python -m training all" in why


def test_sanitizing_scrubs_pii_and_removes_near_duplicates():
    from training.sanitize import dedup, normalize, scrub_pii

    text, counts = scrub_pii("Mail jane.doe@example.com or call +44 20 7946 0958; card 4111 1111 1111 1111, "
                             "policy no. BW-2024-77812. Our line 0800 555 0142 stays.", keep={"0800 555 0142"})
    assert "<EMAIL>" in text and "<PHONE>" in text and "<CARD>" in text and "<POLICY>" in text
    assert "jane.doe" not in text and "4111" not in text and "0800 555 0142" in text
    assert counts["EMAIL"] == 1
    assert normalize("\u201cQuoted\u201d \u2014 text\u2026") == '"Quoted" - text...'
    base = " ".join(f"word{i}" for i in range(60))
    keep, dropped = dedup([base, base, base.replace("word59", "other"), "something else entirely " * 5], 0.8)
    assert keep == [0, 3] and dropped == {"exact_duplicate": 1, "near_duplicate": 1}
