"""Retrieval benchmarks: Banking77 accuracy, query latency at 10k/100k, ingest throughput."""

from __future__ import annotations

import asyncio
import functools
import json
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from backends.base import Conversation, ReplyMeta, Turn
from backends.retrieval.backend import RetrievalBackend
from backends.retrieval.embedder import SentenceTransformerEmbedder
from backends.retrieval.index import Entry, KnowledgeIndex
from backends.retrieval.index_set import ANY, IndexSet, Routes
from chatbot.knowledge.ingest import ingest
from tests.bench.common import banking77, summary, time_ms

ENGLISH_ONLY = Routes(language_models={})  # MiniLM for every entry


def banking_entries() -> list[Entry]:
    """Each Banking77 intent as one FAQ entry whose phrasings are its train rows."""
    by_intent: dict[str, list[str]] = defaultdict(list)
    for text, intent in banking77("train"):
        by_intent[intent].append(text)
    return [
        Entry(id=intent, title=intent, answer=f"answer for {intent}", texts=tuple(texts))
        for intent, texts in sorted(by_intent.items())
    ]


def accuracy(
    embedder: SentenceTransformerEmbedder, index: KnowledgeIndex, limit: int | None
) -> None:
    """Banking77 top-1: the best entry is the question's intent."""
    test = banking77("test")[:limit]
    vectors = embedder.encode([t for t, _ in test])
    right = sum(
        index.search(v, top_k=1)[0].entry.id == intent
        for v, (_, intent) in zip(vectors, test, strict=True)
    )
    print(
        f"Banking77 top-1 (entry = mean of its two best phrasings): {right / len(test):.1%}  "
        f"({right}/{len(test)}; all-MiniLM-L6-v2 nearest neighbour reference: 92.0%)"
    )


def grown(index: KnowledgeIndex, rows: int, hnsw_min_rows: int) -> KnowledgeIndex:
    """An index of ``rows`` entries: the real vectors plus noisy copies of them (renormalized)."""
    rng = np.random.default_rng(7)
    base = index.vectors
    picks = rng.integers(0, len(base), rows)
    noisy = base[picks] + rng.normal(0, 0.05, (rows, base.shape[1])).astype(np.float32)
    noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
    entries = [Entry(f"e{i}", f"entry {i}", f"answer {i}", (f"row {i}",)) for i in range(rows)]
    meta = index.meta.__class__(
        **{
            **index.meta.__dict__,
            "entries": rows,
            "rows": rows,
            "index_type": "hnsw" if rows >= hnsw_min_rows else "flat",
        }
    )
    return KnowledgeIndex(meta, entries, np.arange(rows), noisy)


def _turn(backend: RetrievalBackend, question: str) -> None:
    """One full backend turn (encode, search, score entries, stream the answer)."""

    async def go() -> None:
        async for _ in backend.stream(Conversation("b", (Turn("user", question),)), ReplyMeta()):
            pass

    asyncio.run(go())


def _raw(embedder: SentenceTransformerEmbedder, faiss_index, question: str) -> None:
    """The raw cost: one encode and one FAISS search."""
    faiss_index.search(embedder.encode([question]), 64)


def latency(
    embedder: SentenceTransformerEmbedder, base: KnowledgeIndex, queries: list[str]
) -> None:
    """Backend query latency vs the raw cost of one encode + one FAISS search."""
    for rows, hnsw_min in ((10_000, 50_000), (100_000, 200_000), (100_000, 50_000)):
        index = grown(base, rows, hnsw_min)
        with tempfile.TemporaryDirectory() as tmp:
            IndexSet({ANY: index}).save(Path(tmp) / "index")
            backend = RetrievalBackend(
                Path(tmp) / "index", routes=ENGLISH_ONLY, embedders=lambda _: embedder
            )
            faiss_index = backend.load().indexes[ANY]._faiss
            turn = functools.partial(_turn, backend)
            raw = functools.partial(_raw, embedder, faiss_index)
            for q in queries[:5]:
                raw(q)
                turn(q)
            raw_ms = [time_ms(functools.partial(raw, q)) for q in queries]
            full_ms = [time_ms(functools.partial(turn, q)) for q in queries]
        ratio = np.median(full_ms) / np.median(raw_ms)
        label = f"{rows:>7,} rows {index.meta.index_type:<5}"
        print(f"query  {label} backend  {summary(full_ms)}")
        print(f"query  {label} raw      {summary(raw_ms)}   backend/raw (p50) {ratio:.2f}x")


def throughput(embedder: SentenceTransformerEmbedder, entries: list[Entry], rows: int) -> None:
    """Ingest rows/s (parse + embed + index + save) next to the raw encoder's sentences/s."""
    texts = [t for e in entries for t in e.texts][:rows]
    start = time.perf_counter()
    embedder.encode(texts)
    raw = len(texts) / (time.perf_counter() - start)
    with tempfile.TemporaryDirectory() as tmp:
        kb = Path(tmp) / "kb.jsonl"
        with kb.open("w") as out:
            for i in range(0, len(texts), 10):
                out.write(
                    json.dumps({"id": f"e{i}", "questions": texts[i : i + 10], "answer": "a"})
                    + "\n"
                )
        build = functools.partial(
            ingest,
            kb,
            index_dir=Path(tmp) / "index",
            routes=ENGLISH_ONLY,
            embedders=lambda _: embedder,
            hnsw_min_rows=50_000,
        )
        start = time.perf_counter()
        (report,) = build()
        full = report.rows / (time.perf_counter() - start)
        start = time.perf_counter()
        build()
        again = time.perf_counter() - start
    print(
        f"ingest {report.rows} rows: {full:7.1f} rows/s; raw encoder {raw:7.1f} sentences/s; "
        f"ingest/raw {full / raw:.2f}x; unchanged re-ingest {again:.2f} s"
    )


def run(quick: bool) -> None:
    """All retrieval figures."""
    embedder = SentenceTransformerEmbedder()
    entries = banking_entries()
    if quick:
        entries = [Entry(e.id, e.title, e.answer, e.texts[:20]) for e in entries]
    start = time.perf_counter()
    index = KnowledgeIndex.build(entries, embedder)
    print(f"built Banking77 index: {index.meta.rows} rows in {time.perf_counter() - start:.1f} s")
    accuracy(embedder, index, 500 if quick else None)
    queries = [t for t, _ in banking77("test")[: 50 if quick else 200]]
    latency(embedder, index, queries)
    throughput(embedder, entries, 500 if quick else 2000)
