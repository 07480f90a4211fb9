"""A sentence-transformers model run by ONNX Runtime: the fast encoder's runtime.

`python -m training fast-encoder --set method=onnx-int8` writes `onnx/model_qint8.onnx` (fused attention, int8
weights) beside the model's Hugging Face files — sentence-transformers' own ONNX layout, so `SentenceTransformer(path,
backend="onnx", model_kwargs={"file_name": "onnx/model_qint8.onnx"})` loads it too where optimum is installed. This
class needs only onnxruntime (a dependency of Chroma) and the tokenizer, and offers the two methods the Embedder uses.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

ONNX_FILE = "onnx/model_qint8.onnx"


def has_onnx(model_path: str | Path) -> bool:
    return (Path(model_path) / ONNX_FILE).exists()


class OnnxSentenceEncoder:
    def __init__(self, model_path: str | Path, threads: int | None = None):
        import onnxruntime as ort
        import torch
        from transformers import AutoTokenizer

        folder = Path(model_path)
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        # sentence-transformers < 6 wrote max_seq_length and pooling_mode_* keys; 6 writes the tokenizer's
        # model_max_length and pooling_mode: read both.
        config = json.loads((folder / "sentence_bert_config.json").read_text())
        self.max_seq_length = int(config.get("max_seq_length") or min(self.tokenizer.model_max_length, 512))
        pooling = json.loads((folder / "1_Pooling" / "config.json").read_text())
        if not (pooling.get("pooling_mode") == "mean" or pooling.get("pooling_mode_mean_tokens")):
            raise ValueError(f"{folder}: the ONNX encoder supports mean pooling only")
        self.dim = int(pooling.get("embedding_dimension") or pooling["word_embedding_dimension"])
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(folder / ONNX_FILE), options, providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}

    def get_embedding_dimension(self) -> int:
        return self.dim

    def encode(self, texts: list[str], batch_size: int = 64, normalize_embeddings: bool = True,
               convert_to_numpy: bool = True, show_progress_bar: bool = False) -> np.ndarray:
        from tqdm.auto import tqdm

        # Longest first, as sentence-transformers does: batches of similar length waste little on padding.
        order = np.argsort([-len(t) for t in texts], kind="stable")
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for start in tqdm(range(0, len(texts), batch_size), desc="Batches", disable=not show_progress_bar):
            idx = order[start:start + batch_size]
            enc = self.tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                                 max_length=self.max_seq_length, return_tensors="np")
            feeds = {k: v.astype(np.int64) for k, v in enc.items() if k in self.inputs}
            hidden = self.session.run(None, feeds)[0]
            mask = enc["attention_mask"][..., None].astype(np.float32)
            vecs = (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
            if normalize_embeddings:
                vecs /= np.clip(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12, None)
            out[idx] = vecs
        return out
