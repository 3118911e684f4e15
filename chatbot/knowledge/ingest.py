"""Build (or rebuild) the knowledge-base index, embedding only rows whose content changed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from backends.retrieval.embedder import Embedder
from backends.retrieval.index import KnowledgeIndex, KnowledgeIndexError, read_meta
from chatbot.knowledge.loaders import load_path


@dataclass(frozen=True)
class IngestReport:
    """What an ingest did."""

    entries: int
    rows: int
    embedded: int
    reused: int
    version: str
    index_type: str


def previous_vectors(index_dir: Path, model: str) -> dict:
    """Row vectors of the current index when it was built by the same embedder."""
    try:
        if read_meta(index_dir).model != model:
            return {}
        return KnowledgeIndex.load(index_dir, model=model).row_vectors()
    except KnowledgeIndexError:
        return {}


def ingest(
    path: Path,
    *,
    index_dir: Path,
    embedder: Embedder,
    hnsw_min_rows: int,
    on_start: Callable[[int], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> IngestReport:
    """Parse everything first (nothing half-ingested), embed changed rows, save atomically."""
    entries = load_path(path)
    if on_start:
        on_start(sum(len(e.texts) for e in entries))
    index = KnowledgeIndex.build(
        entries,
        embedder,
        hnsw_min_rows=hnsw_min_rows,
        reuse=previous_vectors(index_dir, embedder.name),
        progress=progress,
    )
    index.save(index_dir)
    return IngestReport(
        entries=index.meta.entries,
        rows=index.meta.rows,
        embedded=index.embedded_now,
        reused=index.meta.rows - index.embedded_now,
        version=index.meta.version,
        index_type=index.meta.index_type,
    )
