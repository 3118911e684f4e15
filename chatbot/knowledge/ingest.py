"""Build (or rebuild) the knowledge base's per-language indexes, embedding only changed rows."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from pathlib import Path

from backends.retrieval.defaults import DEFAULT_LANGUAGE_VIEW_WEIGHTS
from backends.retrieval.embedder import Embedder, load_embedder
from backends.retrieval.index import (
    Entry,
    KnowledgeIndex,
    KnowledgeIndexError,
    entry_rows,
    read_meta,
)
from backends.retrieval.index_set import IndexSet, Routes, group_entries
from chatbot.knowledge.loaders import load_path
from chatbot.settings import Settings


@dataclass(frozen=True)
class IngestReport:
    """What an ingest did for one language group."""

    group: str
    model: str
    entries: int
    rows: int
    embedded: int
    reused: int
    version: str
    index_type: str
    handover: float | None = None  # the hand-over score calibrated again after the build


def previous_index(folder: Path, model: str) -> KnowledgeIndex | None:
    """The index in ``folder`` when it was built by the same embedder (its rows are reused)."""
    try:
        if read_meta(folder).model != model:
            return None
        return KnowledgeIndex.load(folder, model=model)
    except KnowledgeIndexError:
        return None


def ingest(
    path: Path,
    *,
    index_dir: Path,
    routes: Routes,
    hnsw_min_rows: int,
    embedders: Callable[[str], Embedder] | None = None,
    on_start: Callable[[int], None] | None = None,
    progress: Callable[[int], None] | None = None,
    cross_lingual: Collection[str] = tuple(DEFAULT_LANGUAGE_VIEW_WEIGHTS),
) -> list[IngestReport]:
    """Parse everything first (nothing half-ingested), embed changed rows, save atomically.

    Groups in ``cross_lingual`` (multilingual embedders) also index each FAQ entry's phrasings
    in the other languages, found by entry id, and its answer (``KnowledgeIndex.search``).
    """
    grouped = group_entries(load_path(path))
    for group in cross_lingual:
        if group in grouped:
            grouped[group] = with_aliases(grouped[group], grouped, group)
    get_embedder = embedders or (lambda group: load_embedder(routes.model_for(group)))
    if on_start:
        on_start(sum(len(entry_rows(e)) for entries in grouped.values() for e in entries))
    built = {}
    for group, entries in grouped.items():
        embedder = get_embedder(group)
        previous = previous_index(Path(index_dir) / group, embedder.name)
        built[group] = KnowledgeIndex.build(
            entries,
            embedder,
            hnsw_min_rows=hnsw_min_rows,
            reuse=previous.row_vectors() if previous else None,
            reuse_sparse=previous.row_sparse() if previous else None,
            progress=progress,
        )
        if previous is not None and previous.meta.version == built[group].meta.version:
            built[group].handover = previous.handover  # same index: its calibration still holds
    IndexSet(built).save(index_dir)
    return [_report(group, index) for group, index in built.items()]


def with_aliases(entries: list[Entry], grouped: dict[str, list[Entry]], group: str) -> list[Entry]:
    """``entries`` with each FAQ entry's phrasings in the other language groups as aliases."""
    others: dict[str, list[str]] = {}
    for other, items in grouped.items():
        if other != group:
            for e in items:
                if e.kind == "query" and e.locale:
                    others.setdefault(e.id, []).extend(e.texts)
    return [
        replace(e, aliases=tuple(others[e.id])) if e.kind == "query" and e.id in others else e
        for e in entries
    ]


def _report(group: str, index: KnowledgeIndex) -> IngestReport:
    """The report line of one language group."""
    meta = index.meta
    return IngestReport(
        group=group,
        model=meta.model,
        entries=meta.entries,
        rows=meta.rows,
        embedded=index.embedded_now,
        reused=meta.rows - index.embedded_now,
        version=meta.version,
        index_type=meta.index_type,
    )


def ingest_configured(
    settings: Settings,
    path: Path | None = None,
    *,
    on_start: Callable[[int], None] | None = None,
    progress: Callable[[int], None] | None = None,
    language_models: dict[str, str] | None = None,
) -> list[IngestReport]:
    """Ingest ``path`` (default: the configured or bundled knowledge base) as settings say,
    each language with its active embedder (a tuned one chosen by `afina kb use-model`), or
    with ``language_models`` when given."""
    from chatbot.knowledge.calibrate import recalibrate, stored_sources
    from chatbot.knowledge.tuning.registry import active_language_models

    r = settings.retrieval
    models = active_language_models(settings) if language_models is None else language_models
    routes = Routes(default_model=r.model, language_models=models)
    sources = stored_sources(settings.index_dir)  # read before the new build replaces them
    reports = ingest(
        path or settings.kb_path,
        index_dir=settings.index_dir,
        routes=routes,
        hnsw_min_rows=r.hnsw_min_rows,
        embedders=lambda group: load_embedder(
            routes.model_for(group), allow_download=r.allow_download, model_cache=r.model_cache
        ),
        on_start=on_start,
        progress=progress,
        cross_lingual=tuple(r.language_view_weights),
    )
    return recalibrate(settings, reports, sources, models)
