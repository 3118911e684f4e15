"""Trained weights -> GGUF files llama.cpp loads: a LoRA adapter, or a whole merged model.

Names and layout follow llama.cpp's own converters: LLaMA-family tensors are renamed
(``model.layers.3.self_attn.q_proj`` -> ``blk.3.attn_q``), and the query/key rows are permuted
the way llama.cpp's rotary embedding expects (for a LoRA pair only ``B``, the output side).
Files are written next to their destination and renamed into place, so a crash or a cancel never
leaves half a file under the final name.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from chatbot.training.lineage import sha256_file

ARCH = "llama"
_LAYER = re.compile(r"(?:^|\.)layers\.(\d+)\.(self_attn|mlp)\.(\w+)$")
_LINEAR = {
    "q_proj": "attn_q",
    "k_proj": "attn_k",
    "v_proj": "attn_v",
    "o_proj": "attn_output",
    "gate_proj": "ffn_gate",
    "up_proj": "ffn_up",
    "down_proj": "ffn_down",
}
_OTHER = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
}
_NORMS = {"input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm"}


def gguf_name(hf_name: str) -> str | None:
    """llama.cpp's name for a Hugging Face LLaMA weight (``None`` for one it has no name for)."""
    if hf_name in _OTHER:
        return _OTHER[hf_name]
    norm = re.search(r"layers\.(\d+)\.(\w+)\.weight$", hf_name)
    if norm and norm.group(2) in _NORMS:
        return f"blk.{norm.group(1)}.{_NORMS[norm.group(2)]}.weight"
    linear = _LAYER.search(hf_name.removesuffix(".weight"))
    if linear and linear.group(3) in _LINEAR:
        return f"blk.{linear.group(1)}.{_LINEAR[linear.group(3)]}.weight"
    return None


def permute_rows(weights: np.ndarray, n_head: int) -> np.ndarray:
    """Reorder query/key output rows for llama.cpp's rotary layout (its converter's permute)."""
    rows = weights.shape[0]
    return (
        weights.reshape(n_head, 2, rows // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def _heads_for(name: str, n_head: int, n_kv_head: int) -> int | None:
    """How many heads to permute a tensor by: queries and keys only."""
    if ".attn_q." in name:
        return n_head
    if ".attn_k." in name:
        return n_kv_head
    return None


def _finish(tmp: Path, path: Path) -> str:
    """Move a written temporary file into place; return the file's sha256."""
    digest = sha256_file(tmp)
    os.replace(tmp, path)
    return digest


def write_lora(
    path: Path,
    pairs: Mapping[str, tuple[np.ndarray, np.ndarray]],
    *,
    alpha: float,
    n_head: int,
    n_kv_head: int,
) -> str:
    """Write a LoRA adapter GGUF from ``{hf module name: (A, B)}``; return its sha256.

    ``A`` is (rank, in) and ``B`` (out, rank), as peft stores them; the adapter scales B @ A
    by alpha / rank like peft does.
    """
    import gguf

    tmp = path.with_name(path.name + ".partial")
    writer = gguf.GGUFWriter(tmp, ARCH)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(alpha))
    for module, (a, b) in sorted(pairs.items()):
        name = gguf_name(module + ".weight")
        if name is None:
            raise ValueError(f"no llama.cpp name for the LoRA target {module!r}")
        heads = _heads_for(name, n_head, n_kv_head)
        b = permute_rows(b, heads) if heads else b
        writer.add_tensor(name + ".lora_a", np.ascontiguousarray(a, dtype=np.float32))
        writer.add_tensor(name + ".lora_b", np.ascontiguousarray(b, dtype=np.float32))
    _write(writer)
    return _finish(tmp, path)


def write_merged(
    path: Path,
    base_gguf: Path,
    weights: Mapping[str, np.ndarray],
    *,
    n_head: int,
    n_kv_head: int,
) -> str:
    """Write a whole model GGUF: the base file's metadata and tokenizer, trained weights in F16.

    Only tensors the base file has are written (a tied output layer stays tied); norms stay F32.
    """
    import gguf

    reader = gguf.GGUFReader(base_gguf)
    wanted = {t.name for t in reader.tensors}
    tmp = path.with_name(path.name + ".partial")
    writer = gguf.GGUFWriter(tmp, ARCH)
    _copy_metadata(reader, writer)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    by_name = {gguf_name(hf): array for hf, array in weights.items()}
    missing = sorted(wanted - set(by_name))
    if missing:
        raise ValueError(f"trained weights lack {', '.join(missing[:3])}")
    for tensor in reader.tensors:
        array = by_name[tensor.name]
        heads = _heads_for(tensor.name, n_head, n_kv_head)
        array = permute_rows(array, heads) if heads else array
        dtype = np.float32 if array.ndim == 1 else np.float16
        writer.add_tensor(tensor.name, np.ascontiguousarray(array, dtype=dtype))
    _write(writer)
    return _finish(tmp, path)


def _copy_metadata(reader: Any, writer: Any) -> None:
    """Copy every key of a GGUF file except the header's own and the file type."""
    import gguf

    for field in reader.fields.values():
        if field.name.startswith("GGUF.") or field.name in (
            "general.architecture",
            "general.file_type",
        ):
            continue
        main = field.types[0]
        sub = field.types[-1] if main == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), main, sub)


def _write(writer: Any) -> None:
    """Header, keys, tensors, close."""
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
