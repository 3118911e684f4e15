"""A sentence-transformers BERT model (all-MiniLM-L6-v2, or a tuned copy) on ONNX Runtime int8.

The model folder's transformer is exported once with torch's ONNX exporter and quantized to
int8 by ONNX Runtime's dynamic quantizer, offline, from the local files, and cached by the
weights' sha256: a tuned model gets its own file (``afina kb prepare-models`` converts at
install; otherwise the first use does, ~40 s). Tokenizer (the folder's ``tokenizer.json``),
mean pooling and normalization run in numpy. Spec: ``onnx:`` + a sentence-transformers spec
(``minilm-onnx`` = the bundled MiniLM). Measured (tests/bench, fastpath): Banking77 top-1 92.7%,
the same as on PyTorch.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from backends.retrieval.e5_export import _export
from backends.retrieval.embedder import TextKind
from backends.threads import limit_thread_env

PREFIX = "onnx:"
MINILM_ONNX = "minilm-onnx"
FORMAT = 1  # bump when the graph changes: the cache file name carries it
BATCH = 32


def base_spec(spec: str) -> str | None:
    """The sentence-transformers spec an ONNX spec wraps, or None when ``spec`` is not one."""
    spec = spec.strip()
    if spec.lower() == MINILM_ONNX:
        return ""
    return spec[len(PREFIX) :].strip() if spec.lower().startswith(PREFIX) else None


def onnx_name(base_name: str) -> str:
    """The name an index records for the ONNX int8 build of ``base_name``."""
    return f"{base_name}+onnx-int8"


def export_bert(folder: Path, out: Path) -> None:
    """Write the folder's transformer as ONNX: (input_ids, attention_mask, token_type_ids) ->
    token states, int8 weights."""
    import torch
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    model = AutoModel.from_pretrained(str(folder), attn_implementation="eager").eval()

    class Encoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, ids: Any, mask: Any, types: Any) -> Any:
            return self.model(input_ids=ids, attention_mask=mask, token_type_ids=types)[0]

    example = tuple(torch.ones(2, 7, dtype=torch.int64) for _ in range(3))
    names = ["input_ids", "attention_mask", "token_type_ids"]
    axes = {n: {0: "b", 1: "t"} for n in [*names, "hidden"]}
    _export(Encoder().eval(), example, names, ["hidden"], axes, out, True)


def _weights_digest(folder: Path) -> str:
    """sha256 of the folder's weights file (a tuned model is another file)."""
    for name in ("model.safetensors", "pytorch_model.bin"):
        path = folder / name
        if path.exists():
            h = hashlib.sha256()
            with path.open("rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
            return h.hexdigest()
    raise ValueError(f"{folder} has no model.safetensors: not a sentence-transformers folder")


def folder_prompts(folder: Path) -> dict[str, str]:
    """The query/passage prompts a sentence-transformers folder names (none for MiniLM)."""
    try:
        config = json.loads((folder / "config_sentence_transformers.json").read_text())
    except (OSError, ValueError):
        return {}
    prompts = config.get("prompts") or {}
    return {k: str(prompts[k]) for k in ("query", "passage") if prompts.get(k)}


class OnnxSentenceEmbedder:
    """A sentence-transformers folder's model on ONNX Runtime (int8), one thread."""

    def __init__(self, spec: str, cache_dir: Path):
        from tokenizers import Tokenizer

        from backends.retrieval.e5_onnx import _session
        from backends.retrieval.embedder import _resolve

        limit_thread_env()
        base_name, path = _resolve(spec)
        folder = Path(path)
        if not (folder / "tokenizer.json").exists():
            raise ValueError(
                f"{folder} has no tokenizer.json: the ONNX path needs a local "
                "sentence-transformers folder (use the model without 'onnx:')"
            )
        self.name = onnx_name(base_name)
        self.dim = int(json.loads((folder / "config.json").read_text())["hidden_size"])
        max_len = 256
        st_config = folder / "sentence_bert_config.json"
        if st_config.exists():
            max_len = int(json.loads(st_config.read_text()).get("max_seq_length", max_len))
        self._tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self._tokenizer.enable_truncation(max_len)
        self._tokenizer.no_padding()
        digest = _weights_digest(folder)[:16]
        out = Path(cache_dir) / f"st-{digest}-f{FORMAT}-int8.onnx"
        out.parent.mkdir(parents=True, exist_ok=True)
        self._session = _session(out, lambda target: export_bert(folder, target))
        self._prompts = folder_prompts(folder)

    def encode(self, texts: list[str], kind: TextKind = "query") -> np.ndarray:
        """Embed ``texts`` with the folder's prompt for ``kind`` (e5: "query: "; MiniLM has
        none: both kinds alike), L2-normalized."""
        prompt = self._prompts.get(kind, "")
        texts = [prompt + t for t in texts] if prompt else texts
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # little padding
        for start in range(0, len(order), BATCH):
            part = order[start : start + BATCH]
            out[part] = self._encode_batch([texts[i] for i in part])
        return out

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        """One padded batch -> mean-pooled, normalized vectors."""
        encodings = self._tokenizer.encode_batch(texts)
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(texts), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        types = np.zeros_like(ids)
        for row, e in enumerate(encodings):
            n = len(e.ids)
            ids[row, :n], mask[row, :n], types[row, :n] = e.ids, e.attention_mask, e.type_ids
        (hidden,) = self._session.run(
            None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        )
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(1) / np.maximum(weights.sum(1), 1e-9)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
