"""all-MiniLM-L6-v2 on ONNX Runtime int8 (``minilm-onnx``): the same answers as on PyTorch,
converted offline from the bundled model and cached."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from backends.retrieval.e5_onnx import default_cache_dir
from backends.retrieval.embedder import embedder_name, load_embedder
from backends.retrieval.st_onnx import OnnxSentenceEmbedder

TEXTS = [
    "How do I reset my password?",
    "hey wheres my package?? ordered last thursday and got no idea where it is",
    "Hi, quick one. Order NB4471920 - is there a tracking number I can use?",
    "emoji 😀 and ﬁ ligatures",
    "",
]


@pytest.fixture(scope="module")
def onnx() -> OnnxSentenceEmbedder:
    return OnnxSentenceEmbedder("", default_cache_dir())


def test_vectors_match_pytorch(onnx: OnnxSentenceEmbedder):
    ours = onnx.encode(TEXTS)
    theirs = load_embedder("").encode(TEXTS)
    assert ours.shape == (len(TEXTS), 384)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, rtol=1e-4)
    # int8: measured 0.990-0.995 on questions; the empty text (two special tokens) 0.974
    cosines = (ours * theirs).sum(1)
    assert cosines[:-1].min() > 0.985 and cosines[-1] > 0.95


def test_index_records_the_onnx_build(onnx: OnnxSentenceEmbedder):
    assert onnx.name == embedder_name("minilm-onnx") == embedder_name("onnx:")
    assert onnx.name.startswith("sentence-transformers/all-MiniLM-L6-v2")


def test_english_questions_find_the_right_entry(onnx: OnnxSentenceEmbedder, tmp_path: Path):
    from backends.retrieval.backend import RetrievalBackend
    from backends.retrieval.index_set import Routes
    from chatbot.knowledge.ingest import ingest

    kb = Path(__file__).resolve().parents[1] / "data" / "kb_small"
    routes = Routes(language_models={"en": "minilm-onnx"})
    ingest(kb, index_dir=tmp_path / "index", routes=routes, hnsw_min_rows=50_000)
    backend = RetrievalBackend(tmp_path / "index", routes=routes)
    found = backend.answer("I can't remember my password", "en")
    assert found.best is not None and found.best.entry.id == "reset-password"
    assert found.index.meta.model == onnx.name


def test_a_folder_without_a_tokenizer_is_refused_with_the_fix(tmp_path: Path):
    with pytest.raises(ValueError, match=r"no tokenizer.json"):
        OnnxSentenceEmbedder(str(tmp_path), default_cache_dir())
