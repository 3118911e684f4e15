"""The FAISS knowledge index: entries scored (not rows), saved with metadata, re-ingest rules."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from backends.retrieval.embedder import embedder_name
from backends.retrieval.index import Entry, KnowledgeIndex, KnowledgeIndexError
from backends.retrieval.index_set import IndexSet, Routes
from chatbot.errors import InputError
from chatbot.knowledge.ingest import ingest
from tests.conftest import SMALL_KB

MINILM_ONLY = Routes(language_models={})


def test_entry_with_many_phrasings_fills_one_slot(embedder):
    chatty = Entry("pw", "pw", "Reset it.", tuple(f"reset password variant {i}" for i in range(30)))
    other = Entry("ship", "ship", "4.95", ("how much is shipping",))
    index = KnowledgeIndex.build([chatty, other], embedder)
    hits = index.search(embedder.encode(["reset my password"])[0], top_k=2)
    assert [h.entry.id for h in hits] == ["pw", "ship"]
    assert hits[0].score > hits[1].score


def test_entry_score_is_the_mean_of_its_two_best_phrasings(embedder):
    entry = Entry("pw", "pw", "Reset it.", ("reset my password", "forgot password", "parcel"))
    index = KnowledgeIndex.build([entry], embedder)
    query = embedder.encode(["reset my password"])[0]
    sims = sorted(embedder.encode(list(entry.texts)) @ query)
    assert index.search(query, top_k=1)[0].score == pytest.approx(
        (sims[-1] + sims[-2]) / 2, abs=1e-5
    )


def test_each_language_gets_its_own_index_and_embedder(small_index_dir: Path):
    indexes = IndexSet.load(small_index_dir, Routes())
    assert sorted(indexes.indexes) == ["en", "es"]
    # English: MiniLM on ONNX Runtime int8 (the default), Spanish: e5
    assert indexes.indexes["en"].meta.model == "sentence-transformers/all-MiniLM-L6-v2+onnx-int8"
    assert indexes.indexes["es"].meta.model == embedder_name(Routes().model_for("es"))
    assert "multilingual-e5-small" in indexes.indexes["es"].meta.model
    assert {e.locale for e in indexes.indexes["es"].entries} == {"es"}
    assert indexes.pick("es")[0] == "es"
    assert indexes.pick("fr")[0] == "en"  # no French index: English answers


def test_saved_index_records_model_dimension_and_ids(small_index_dir: Path):
    meta = json.loads((small_index_dir / "en" / "meta.json").read_text())
    assert meta["model"] == "sentence-transformers/all-MiniLM-L6-v2+onnx-int8"
    assert meta["dim"] == 384
    assert meta["index_type"] == "flat"
    assert meta["built_at"]
    ids = [json.loads(line)["id"] for line in (small_index_dir / "en" / "entries.jsonl").open()]
    assert "return-window" in ids


def test_loading_with_another_model_asks_for_reingest(small_index_dir: Path):
    with pytest.raises(KnowledgeIndexError, match="re-ingest"):
        IndexSet.load(small_index_dir, MINILM_ONLY)  # the Spanish index was built with e5


def test_missing_index_says_how_to_build_one(tmp_path: Path):
    with pytest.raises(KnowledgeIndexError, match="afina kb ingest"):
        IndexSet.load(tmp_path / "nothing", Routes())


def test_hnsw_above_threshold_finds_the_same_best_entry(embedder):
    rng = np.random.default_rng(0)
    words = ["order", "refund", "card", "parcel", "size", "account", "invoice", "voucher"]
    entries = [
        Entry(f"e{i}", f"e{i}", f"answer {i}", (" ".join(rng.choice(words, 4)),))
        for i in range(300)
    ]
    flat = KnowledgeIndex.build(entries, embedder)
    hnsw = KnowledgeIndex.build(entries, embedder, hnsw_min_rows=100, reuse=flat.row_vectors())
    assert hnsw.meta.index_type == "hnsw"
    assert hnsw.embedded_now == 0
    query = embedder.encode(["refund for my card order"])[0]
    assert flat.search(query, 1)[0].entry.id == hnsw.search(query, 1)[0].entry.id


def test_reingest_embeds_only_changed_rows(tmp_path: Path):
    kb = tmp_path / "kb.jsonl"
    kb.write_text('{"id": "a", "questions": ["one", "two"], "answer": "x"}\n')
    index_dir = tmp_path / "index"
    (first,) = ingest(kb, index_dir=index_dir, routes=MINILM_ONLY, hnsw_min_rows=10_000)
    kb.write_text('{"id": "a", "questions": ["one", "two", "three"], "answer": "x"}\n')
    (second,) = ingest(kb, index_dir=index_dir, routes=MINILM_ONLY, hnsw_min_rows=10_000)
    assert (first.embedded, second.embedded, second.reused) == (2, 1, 2)
    assert first.version != second.version


def test_failed_ingest_leaves_the_previous_index(tmp_path: Path):
    index_dir = tmp_path / "index"
    ingest(SMALL_KB, index_dir=index_dir, routes=MINILM_ONLY, hnsw_min_rows=10_000)
    before = (index_dir / "en" / "meta.json").read_text()
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "ok.jsonl").write_text('{"id": "a", "questions": ["q"], "answer": "x"}\n')
    (bad / "broken.jsonl").write_text("{not json\n")
    with pytest.raises(InputError, match=r"broken\.jsonl:1"):
        ingest(bad, index_dir=index_dir, routes=MINILM_ONLY, hnsw_min_rows=10_000)
    assert (index_dir / "en" / "meta.json").read_text() == before
    assert IndexSet.load(index_dir, MINILM_ONLY).indexes["en"].meta.entries > 1


def test_sparse_channel_is_saved_reused_and_changes_scores(tmp_path: Path):
    kb = tmp_path / "kb.jsonl"
    kb.write_text(
        '{"id": "a", "questions": ["quiero devolver un jersey", "devolución"], "answer": "x", '
        '"locale": "es"}\n{"id": "b", "questions": ["gastos de envío"], "answer": "y", '
        '"locale": "es"}\n'
    )
    index_dir = tmp_path / "index"
    ingest(kb, index_dir=index_dir, routes=Routes(), hnsw_min_rows=10_000)
    index = IndexSet.load(index_dir, Routes()).indexes["es"]
    assert index.sparse is not None and index.sparse.shape[0] == 3
    before = index.row_sparse()
    kb.write_text(kb.read_text().replace("gastos de envío", "precio del envío"))
    (report,) = ingest(kb, index_dir=index_dir, routes=Routes(), hnsw_min_rows=10_000)
    assert report.embedded == 1
    after = IndexSet.load(index_dir, Routes()).indexes["es"].row_sparse()
    shared = set(before) & set(after)
    assert len(shared) == 2
    assert all((before[k] != after[k]).nnz == 0 for k in shared)

    from backends.retrieval.embedder import load_embedder

    e5 = load_embedder(Routes().model_for("es"))
    question = "me gustaria devolver el jersey"
    vector, sparse_vector = e5.encode([question])[0], e5.encode_sparse([question])
    dense = index.search(vector, 1)[0]
    hybrid = index.search(vector, 1, sparse_vector, 0.3)[0]
    assert dense.entry.id == hybrid.entry.id == "a"
    rows = index.sparse[0:2] @ sparse_vector.T  # entry "a": its two phrasings
    sims = (index.vectors[0:2] @ vector + 0.3 * rows.toarray().ravel()) / 1.3
    assert hybrid.score == pytest.approx(sims.mean(), abs=1e-5)
    assert hybrid.score != pytest.approx(dense.score, abs=1e-3)


def test_spanish_entries_also_carry_english_phrasings_and_their_answer(tmp_path: Path):
    """Cross-lingual views: the Spanish index holds each FAQ entry's English phrasings (same
    id) and its answer; an entry scores 0.4 own + 0.4 English + 0.2 answer (each view by its
    best two rows), saved and loaded with the index."""
    kb = tmp_path / "kb.jsonl"
    kb.write_text(
        '{"id": "pw", "questions": ["olvidé mi contraseña", "restablecer contraseña"], '
        '"answer": "Pulsa «¿Olvidaste tu contraseña?».", "locale": "es"}\n'
        '{"id": "pw", "questions": ["I forgot my password"], "answer": "Click it.", '
        '"locale": "en"}\n'
        '{"id": "ship", "questions": ["gastos de envío"], "answer": "Gratis.", "locale": "es"}\n'
    )
    ingest(kb, index_dir=tmp_path / "index", routes=Routes(), hnsw_min_rows=10_000)
    index = IndexSet.load(tmp_path / "index", Routes()).indexes["es"]
    pw = next(e for e in index.entries if e.id == "pw")
    assert pw.aliases == ("I forgot my password",)
    assert index.row_view.tolist() == [0, 0, 1, 2, 0]  # pw: 2 own, 1 English, answer; ship
    from backends.retrieval.embedder import load_embedder

    e5 = load_embedder(Routes().model_for("es"))
    vector = e5.encode(["no me acuerdo de la contraseña"])[0]
    sims = index.vectors[:4] @ vector
    hit = index.search(vector, 1, view_weights=(0.4, 0.4, 0.2))[0]
    assert hit.entry.id == "pw"
    assert hit.score == pytest.approx(0.4 * sims[:2].mean() + 0.4 * sims[2] + 0.2 * sims[3])
    # without view weights an entry is scored on its own phrasings only
    assert index.search(vector, 1)[0].score == pytest.approx(sims[:2].mean(), abs=1e-5)
