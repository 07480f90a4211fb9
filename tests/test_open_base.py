"""Solution B on open weights: the packaged SmolLM2-135M converted and checked, the whole life cycle on the
test-smol preset, grounded decoding, and Solution A offline — the un-fine-tuned base behind `transformers serve`,
reached by the hosted backend's own client."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.conftest import make_settings

SMOL = "smollm2-135m"


@pytest.fixture(scope="session")
def smol_base():
    """The packaged GGUF converted once into the session's base cache (ASSISTANT_BASES_DIR, set by conftest)."""
    from assistant.settings import get_settings
    from training.base import resolve

    return resolve(SMOL, get_settings().bases_dir)


@pytest.fixture(scope="session")
def smol_run(tmp_path_factory, smol_base):
    from training.__main__ import main
    from training.registry import Registry

    models = tmp_path_factory.mktemp("smol-models")
    assert main(["--models-dir", str(models), "all", "--preset", "test-smol"]) == 0
    reg = Registry(models)
    (version,) = [v["version"] for v in reg.versions()]
    return reg, version


def test_packaged_base_is_converted_checked_and_recorded(smol_base):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    assert smol_base.licence == "Apache-2.0" and len(smol_base.sha256) == 64
    conv = smol_base.conversion
    assert conv["max_logit_diff"] < 1e-3 and conv["params"] > 130e6  # the saved folder gives the GGUF's logits
    model = AutoModelForCausalLM.from_pretrained(smol_base.path)
    tok = AutoTokenizer.from_pretrained(smol_base.path)
    assert model.config.model_type == "llama" and "quantization_config" not in model.config.to_dict()
    assert tok.eos_token == "<|im_end|>"
    assert all(len(t.strip("Ġ")) <= 1 for t in tok.tokenize(" 2000 300") if any(c.isdigit() for c in t))


def test_open_base_life_cycle_records_base_and_every_stage(smol_run, smol_base):
    from transformers import AutoModelForCausalLM

    from training.__main__ import main
    from training.data import read_jsonl
    from training.sft import split_examples

    reg, version = smol_run
    meta = reg.metadata(version)
    assert meta["status"] == "ready" and meta["base"]["name"] == SMOL
    assert meta["base"]["licence"] == "Apache-2.0" and meta["base"]["sha256"] == smol_base.sha256
    stages = json.loads((reg.path(version) / "stages.json").read_text())
    assert stages["tokenizer"]["metrics"]["vocab_size"] == 49152  # the base's own tokenizer was kept
    pre = stages["pretrain"]["metrics"]
    assert pre["base"] == SMOL and pre["trainable_params"] < pre["params"] / 5  # top 2 of 30 layers
    assert pre["general_loss_before"] > 0 and "general_forgetting" in pre
    # DPO learns from the SFT model's own failures as served (a 4-step model still declines what it could answer)
    al = stages["align"]["metrics"]
    assert al["own_failures"]["asked"] == 3 and al["own_failures"]["failures"] >= 1
    assert al["pairs_by_kind"]["own_failure"] == al["own_failures"]["failures"]
    # raw insurance text replayed beside the answers (SFT) and the preference pairs (DPO), each with its weight
    assert stages["sft"]["metrics"]["replay_weight"] == 0.3 and al["replay_weight"] == 0.3
    ppl = stages["eval"]["metrics"]["heldout"]
    assert set(ppl) == {"base", "pretrain", "sft", "aligned"} and all(v["perplexity"] > 1 for v in ppl.values())
    # and on the answers of held-out conversations: SFT's validation split, which DPO leaves out too
    held, _ = split_examples(read_jsonl(reg.path(version) / "sft" / "examples.jsonl"), reg.config(version).seed)
    pairs = read_jsonl(reg.path(version) / "align" / "pairs.jsonl")
    assert held and not {e["messages"][-1]["content"] for e in held} & {p["messages"][-1]["content"] for p in pairs}
    assert all(v["answer_perplexity"] > 1 for v in ppl.values())
    assert ppl["sft"]["answer_perplexity"] < ppl["pretrain"]["answer_perplexity"], ppl
    assert "base-rag" in stages["eval"]["metrics"]["rag"]  # the un-fine-tuned base with the same prompt beside it
    card = (reg.path(version) / "report.md").read_text()
    assert "pretrain" in card and "aligned" in card
    model = AutoModelForCausalLM.from_pretrained(reg.path(version) / "model")
    assert model.config.num_hidden_layers == 30
    assert main(["--models-dir", str(reg.dir), "models", "show", version]) == 0


def test_fine_tuned_version_loads_in_peft_and_answers_through_the_pipeline(smol_run, kb_store_dir, embedder):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from assistant.pipeline import Assistant

    reg, version = smol_run
    model = AutoModelForCausalLM.from_pretrained(reg.path(version) / "model")
    lora = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    assert 0 < sum(p.numel() for p in lora.parameters() if p.requires_grad) < 1e6
    prompt_file = json.loads((reg.path(version) / "model" / "assistant_prompt.json").read_text())
    s = make_settings(kb_store_dir, models_dir=reg.dir, max_answer_tokens=16)
    ans = Assistant(s, embedder=embedder).ask("How long is the cooling-off period for life insurance?", backend="private")
    assert ans.backend == "private" and ans.usage["completion_tokens"] <= 16
    assert ans.usage["prompt_tokens"] <= prompt_file["prompt_tokens"]  # fitted as in training


def _greedy(smol_base, content: str, max_new_tokens: int):
    """(tokenizer, prompt ids, generate(processors=None) -> the base's greedy answer) for one user message."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(smol_base.path)
    model = AutoModelForCausalLM.from_pretrained(smol_base.path).eval()
    messages = [{"role": "user", "content": content}]
    ids = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)["input_ids"]

    def generate(processors=None):
        with torch.no_grad():
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                                 do_sample=False, logits_processor=processors, pad_token_id=tok.pad_token_id)
        return tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)

    return tok, ids, generate


def test_grounded_decoding_only_writes_the_passages_figures(smol_base):
    """Left alone, the base counts past the passages' figures; with the processor it cannot write one they lack."""
    from transformers import LogitsProcessorList

    from assistant.generators.grounding import GroundedFigures, allowed_figures

    passages = ["The deductible is EUR 300 per claim and the limit is EUR 2,000.", "Report a theft within 24 hours."]
    tok, ids, generate = _greedy(smol_base, "Count from 1 to 30, separated by commas.", 40)
    allowed = allowed_figures(passages)
    free = generate()
    assert set(re.findall(r"\d+", free)) - allowed  # the base writes figures the passages do not have
    processor = GroundedFigures(tok, passages, ids.shape[1])
    grounded = generate(LogitsProcessorList([processor]))
    assert set(re.findall(r"\d+(?:,\d+)*", grounded)) <= allowed, grounded
    assert processor.blocked > 0


def test_span_copy_decoding_copies_the_passages_with_few_words_of_its_own(smol_base):
    """The stricter form: once a sentence has spent its free tokens, every further word continues a passage span."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LogitsProcessorList

    from assistant.generators.grounding import CopySpans

    tok = AutoTokenizer.from_pretrained(smol_base.path)
    model = AutoModelForCausalLM.from_pretrained(smol_base.path).eval()
    passages = ["Theft of a car must be reported to the police within 24 hours and to us within 48 hours."]
    messages = [{"role": "user", "content": "Write a short story about a dragon who loves the sea."}]
    ids = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)["input_ids"]
    processor = CopySpans(tok, passages, ids.shape[1], free_tokens=2)
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=30, do_sample=False,
                             logits_processor=LogitsProcessorList([processor]), pad_token_id=tok.pad_token_id)
    written = out[0, ids.shape[1]:].tolist()
    bigrams = set(zip(*[tok(passages[0], add_special_tokens=False)["input_ids"][i:] for i in (0, 1)]))
    own = [b for a, b in zip(written, written[1:]) if (a, b) not in bigrams and b not in processor.always_set]
    assert "dragon" not in tok.decode(written).lower()  # the story it was asked for is not in the passage
    assert len(own) <= 2 * (1 + sum(t in processor.ends for t in written)), tok.decode(written)


def test_grounded_decoding_allows_only_existing_citations(smol_base):
    from transformers import AutoTokenizer

    from assistant.generators.grounding import GroundedFigures

    tok = AutoTokenizer.from_pretrained(smol_base.path)
    p = GroundedFigures(tok, ["The excess is EUR 300.", "Call 0800 123 456."], prompt_length=0)
    assert p._masks("see [") == ({"1", "2"}, True)
    # a citation names a passage that holds the sentence's figures: the output rail checks them against it
    assert p._masks("Call 0800 123 456. [") == ({"2"}, True)
    assert p._masks("The excess is EUR 300 [") == ({"1"}, True)
    assert p._masks("The excess is EUR 300 [1] and you call 0800 123 456 [")[0] == {"2"}
    assert p._masks("Call 0800 123 456. [1")[1] is False  # [1] holds none of them: no closing it there
    assert p._masks("It takes 5 days. [")[0] == {"1", "2"}  # none holds them: the output rail decides
    assert p._masks("EUR 3")[0] == {"0"} and p._masks("EUR 3")[1] is False  # "3" is not a figure: go on
    assert p._masks("EUR 300") == (set(), True)
    assert p._masks("EUR 300.")[1] is True  # the end of a sentence
    assert p._masks("Call 08")[0] == {"0"}
    # a figure with separators is written whole: no "18" cut out of "18:00", no "EUR 2" left of "EUR 2,000"
    q = GroundedFigures(tok, ["Open 9:00-18:00.", "The limit is EUR 2,000."], prompt_length=0)
    assert q._masks("open until 18") == ({":"}, False)
    assert q._masks("EUR 2") == ({","}, False) and q._masks("EUR 2,")[0] == {"0"}
    assert q._masks("EUR 2,000") == ({"."} if "2,000." in q.prefixes else set(), True)
    assert q._masks("EUR 2,000.")[1] is True  # the end of a sentence
    assert q._masks("at 1") == ({"8"}, False)  # "13" is in no passage, "1" alone neither
    # a sentence copied word for word cites the passage it was copied from, though another holds its figures too
    r = GroundedFigures(tok, ["Report a car theft to the police within\n24 hours and to us within 7 days.",
                              "Car theft · Tell us within: Police within 24 hours, us within 7 days"], prompt_length=0)
    assert r._masks("Car theft · Tell us within: Police within 24 hours, us within 7 days. [")[0] == {"2"}
    assert r._masks("Report a car theft to the police within 24 hours and to us within 7 days. [")[0] == {"1"}
    assert r._masks("Police within 24 hours and us within 7 days. [")[0] == {"1", "2"}  # copied from neither


def test_a_passage_cut_to_fit_the_prompt_keeps_the_whole_sentence_that_answers():
    """The context is cut to fit a small model's window; never inside the sentence the decision chose (a table row
    cut at "Police withi" left its figures, and so the citation, to another passage)."""
    from assistant.prompt import trim_hit
    from assistant.schema import Chunk, Hit

    rows = [f"Claim type: {k} · Documents we need: photos, receipts and a repair estimate · Tell us within: 7 days"
            for k in ("Storm damage", "Water leak", "Accidental damage")]
    row = ("Claim type: Car theft · Documents we need: Police crime reference number, both sets of car keys · Tell us "
           "within: Police within 24 hours, us within 7 days")
    text = "Claim documents checklist › Documents\n" + "\n".join([*rows, row, "Claim type: Home burglary · more"])
    hit = Hit(Chunk("c", "d", text, "checklist.docx", title="Claim documents checklist"), score=1.0, similarity=0.5)
    for chars in (120, 200, 300):
        cut = trim_hit(hit, chars, row).chunk.text
        assert row in cut and cut.startswith("Claim documents checklist › Documents"), (chars, cut)
    assert trim_hit(hit, 200).chunk.text == text[:200]  # no focus: cut where the window ends
    assert len(trim_hit(hit, 60, row).chunk.text) <= 60  # a sentence over twice the window is cut as before


def test_a_question_the_decision_passed_is_not_refused_by_the_model(smol_base):
    """The calibrated decision refuses; the private model may not open with the refusal it was trained to write."""
    from transformers import LogitsProcessorList

    from assistant.generators.grounding import NoRefusalOpening
    from assistant.prompt import REFUSAL

    refusal = REFUSAL.format(contact="our customer service")
    tok, ids, generate = _greedy(smol_base, f"Repeat exactly, and nothing else: {refusal}", 8)

    assert generate().startswith("I'm sorry")  # what it writes left alone
    assert not generate(LogitsProcessorList([NoRefusalOpening(tok, REFUSAL, ids.shape[1])])).startswith("I")


def test_the_answer_opens_with_the_sentence_the_decision_chose_while_the_model_follows_it(smol_base):
    """A bonus token by token while the answer is a prefix of the chosen sentence, none once it has left it."""
    import torch
    from transformers import LogitsProcessorList

    from assistant.generators.grounding import FocusOpening

    chosen = "The standard deductible for a Comprehensive own-damage claim is EUR 300."
    passage = f"Windscreen claims carry a deductible of EUR 75. {chosen} Young drivers pay EUR 500 more."
    tok, ids, generate = _greedy(smol_base, f"{passage}\n\nWhat is the excess on my car insurance?", 24)

    assert not generate().startswith(chosen)
    focus = FocusOpening(tok, chosen, ids.shape[1], bonus=10.0)
    assert generate(LogitsProcessorList([focus])).startswith(chosen)
    target = focus.target
    scores = torch.zeros(1, len(tok))
    after = lambda done: focus(torch.tensor([ids[0].tolist() + done]), scores.clone())  # noqa: E731
    assert after(target[:2])[0, target[2]] == 10.0  # still on the sentence: its next token gets the bonus
    assert after([target[0], tok.eos_token_id]).abs().sum() == 0  # it left the sentence: no bonus
    # with the other sentences the extractive backend would quote: each once the previous one is cited
    second = "Young drivers pay EUR 500 more."
    chain = FocusOpening(tok, chosen, ids.shape[1], bonus=10.0, then=[second])
    cite = tok(" [1]", add_special_tokens=False)["input_ids"]
    following = tok(" " + second, add_special_tokens=False)["input_ids"]
    assert chain._next(target) is None  # the sentence written: its citation is the model's to write
    assert chain._next(target + cite) == following[0] and chain._next(target + cite + following[:3]) == following[3]
    assert chain._next(target + cite + following) is None  # all written
    ending = FocusOpening(tok, chosen, ids.shape[1], bonus=10.0, then=[second], end=True)
    assert ending._next(target + cite + following) is None  # the last one's citation is still to write
    assert ending._next(target + cite + following + cite) == tok.eos_token_id  # all written and cited: the end
    assert chain._next(target + tok(" and", add_special_tokens=False)["input_ids"]) is None  # uncited: off
    assert generate(LogitsProcessorList([chain])).startswith(chosen)



def test_an_answer_does_not_end_on_a_sentence_that_cites_nothing(smol_base):
    """Where the model would stop (or run out of tokens) right after an uncited sentence, it writes the citation
    instead, of the passage holding the sentence's figures; a fragment of a word or two is left to the rail."""
    import torch
    from transformers import LogitsProcessorList

    from assistant.generators.grounding import CiteBeforeEnd, GroundedFigures

    passages = ["Theft must be reported within 24 hours.", "Baggage: EUR 2,000 (EUR 400 per single item)."]
    tok, ids, generate = _greedy(smol_base, "Repeat exactly, and nothing else: Baggage is covered up to EUR 2,000.", 40)
    start = ids.shape[1]

    alone = generate()
    assert "[" not in alone and "2,000" in alone  # left alone it copies and stops, citing nothing
    cite = CiteBeforeEnd(tok, start, 40)
    cited = generate(LogitsProcessorList([GroundedFigures(tok, passages, start), cite]))
    assert cited.startswith(alone.split("[")[0].rstrip()[:30]) and "[2]" in cited, cited  # [2] holds 2,000
    assert cite.forced >= 1
    # the token limit: three tokens before it, an uncited sentence starts its citation
    near_limit = CiteBeforeEnd(tok, start, 6)
    done = tok("Baggage is covered up to EUR", add_special_tokens=False)["input_ids"]
    scores = near_limit(torch.tensor([ids[0].tolist() + done]), torch.zeros(1, len(tok)))
    assert int(scores[0].argmax()) == near_limit.open and torch.isinf(scores[0]).sum() == len(tok) - 1
    # a citation opened there holds a number, then its "]": nothing else (the base wrote "[Repeat the sentence")
    def allowed(text: str) -> set[str]:
        done = tok(text, add_special_tokens=False)["input_ids"]
        scores = near_limit(torch.tensor([ids[0].tolist() + done]), torch.zeros(1, len(tok)))
        return {tok.decode([i]) for i in torch.isfinite(scores[0]).nonzero().flatten().tolist()}

    assert allowed("Baggage is covered up to EUR 2,000. [") == set("0123456789")
    assert allowed("Baggage is covered up to EUR 2,000. [2") == set("0123456789]")
    # nothing forced on a cited sentence, nor on a fragment too short to say anything ("A:")
    for text in ["Baggage is covered up to EUR 2,000. [2]", "A:"]:
        done = tok(text, add_special_tokens=False)["input_ids"]
        scores = torch.zeros(1, len(tok))
        scores[0, tok.eos_token_id] = 1.0
        assert int(near_limit(torch.tensor([ids[0].tolist() + done]), scores)[0].argmax()) == tok.eos_token_id


def test_the_private_model_reads_a_story_s_question_not_the_story(smol_base, kb_store_dir, embedder):
    """A customer's story states its question last: the model's prompt keeps the last `private_question_tokens`."""
    from assistant.generators.base import GenerationRequest, Usage
    from assistant.generators.private import PrivateGenerator
    from assistant.pipeline import Assistant

    story = ("My daughter Mia swerved into a ditch avoiding a deer last night, luckily nobody was hurt, and the car "
             "goes to a garage next week. I commute 40 km every day. How long can I keep a courtesy car?")
    prompts = {}
    for n in (0, 12):
        s = make_settings(kb_store_dir, private_model_path=smol_base.path, max_answer_tokens=1, private_question_tokens=n)
        hits = Assistant(s, embedder=embedder).retriever.retrieve(story, role="customer")
        usage = Usage()
        list(PrivateGenerator(s).stream(GenerationRequest(story, hits, [], []), usage))
        prompts[n] = usage.prompt_tokens
    whole = len(PrivateGenerator(s)._load()[0](story)["input_ids"])
    assert whole - 14 <= prompts[0] - prompts[12] <= whole - 10, (prompts, whole)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_hosted_backend_against_a_real_transformers_server_of_the_base(smol_base, kb_store_dir, embedder):
    """Solution A offline: `transformers serve` (an existing OpenAI-compatible server) serving the un-fine-tuned base,
    reached by the hosted backend's client with the full RAG prompt and every rail."""
    from assistant.pipeline import Assistant

    port = _free_port()
    exe = os.path.join(os.path.dirname(sys.executable), "transformers")
    proc = subprocess.Popen([exe, "serve", smol_base.path, "--host", "127.0.0.1", "--port", str(port), "--device",
                             "cpu"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ})
    try:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    pytest.fail(f"transformers serve did not start: {proc.stdout.read().decode()[-2000:]}")
                time.sleep(1)
        s = make_settings(kb_store_dir, hosted_base_url=f"http://127.0.0.1:{port}/v1", hosted_model=smol_base.path,
                          max_answer_tokens=24)
        assistant = Assistant(s, embedder=embedder)
        assert assistant.backends()["hosted"] == (True, "")
        ans = assistant.ask("How long is the cooling-off period for life insurance?", backend="hosted")
        assert ans.backend == "hosted"
        assert 0 < ans.usage["completion_tokens"] <= 24 and ans.usage["prompt_tokens"] > 200  # the RAG prompt went
        assert ans.answer  # an answer, or the output rail's refusal of an ungrounded one
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_private_weights_follow_the_bf16_setting_and_decode_alike(smol_run, kb_store_dir, embedder):
    """`private_bf16` loads bf16 weights (auto: where the CPU has native bf16); greedy decoding of the same prompt
    begins with the same words as in fp32."""
    import torch

    from assistant.generators.base import GenerationRequest
    from assistant.generators.private import PrivateGenerator
    from assistant.pipeline import Assistant
    from assistant.precision import bf16_enabled

    reg, _ = smol_run
    s = make_settings(kb_store_dir, models_dir=reg.dir, max_answer_tokens=8, temperature=0.0)
    hits = Assistant(s, embedder=embedder).retriever.retrieve("How long is the cooling-off period for life insurance?")
    request = GenerationRequest("How long is the cooling-off period for life insurance?", hits, [])
    answers = {}
    for setting, dtype in (("off", torch.float32), ("on", torch.bfloat16),
                           ("auto", torch.bfloat16 if bf16_enabled("auto") else torch.float32)):
        generator = PrivateGenerator(s.model_copy(update={"private_bf16": setting}))
        answers[setting] = "".join(generator.stream(request))
        assert next(generator._loaded[2].parameters()).dtype == dtype, setting
    assert answers["on"].split()[:3] == answers["off"].split()[:3], answers


def test_sft_examples_are_answered_as_served_and_own_failures_see_the_same_passages(smol_base, kb_assistant):
    """With the served decision, a grounded example's teacher quotes from the passage the decision ranks first
    ([1]); the own-failures stage rebuilds exactly the example's prompt from the passages it records."""
    from transformers import AutoTokenizer

    from assistant.generators.extractive import ExtractiveGenerator
    from training.instructions import ExampleBuilder
    from assistant.answerability import best_sentences
    from training.own_failures import shown_request

    a = kb_assistant
    tok = AutoTokenizer.from_pretrained(smol_base.path)

    def decide(question, hits):
        hits, _ = a.guards.sanitize(hits)
        return hits, a.decide(question, hits, "customer")

    teacher = ExtractiveGenerator(a.store, a.embedder, a.settings)
    builder = ExampleBuilder(a.store, a.retriever, teacher, tok, a.settings, 380, 3, 0, decide)
    questions = ["How do I make a claim?", "What is the deductible for car insurance?",
                 "Is flood damage covered by home insurance?", "what is the capital of australia"]
    examples = [builder.grounded(q) for q in questions]
    assert examples[-1] is None  # the decision refuses it: no grounded example
    made = [e for e in examples if e is not None]
    assert len(made) >= 2
    for ex in made:
        assert re.match(r"[^\[]*\[1\]", ex.answer), ex.answer
        request = shown_request(a.store, ex.__dict__)
        assert [h.chunk.chunk_id for h in request.hits] == ex.meta["chunk_ids"]
        focus = best_sentences(request.decision, a.settings.extractive_choice_logit_weight)
        assert builder._prompt(ex.question, request.hits, None, focus)[0] == ex.messages
