"""Switch a language's embedder (a tuned version or the default) and re-embed its index."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from backends.retrieval.embedder import load_embedder
from backends.retrieval.index import KnowledgeIndex
from backends.retrieval.index_set import IndexSet
from chatbot.knowledge.calibrate import calibrate_configured, stored_sources
from chatbot.knowledge.tuning import registry
from chatbot.settings import Settings


@dataclass(frozen=True)
class Switched:
    """What a switch did."""

    language: str
    name: str
    model: str
    rows: int  # index rows embedded again (0: no index for this language yet)


def use_model(
    settings: Settings,
    language: str,
    name: str,
    *,
    on_start: Callable[[int], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> Switched:
    """Make ``name`` (``default`` or a tuned version) serve ``language``: the model is checked
    file by file (sha256), the language's index is re-embedded from its stored entries and
    swapped in atomically, then the choice is recorded. A failure changes nothing."""
    if name == registry.DEFAULT:
        r = settings.retrieval
        spec = r.language_models.get(language, r.model)
    else:
        folder = registry.model_folder(settings, language, name)
        registry.check_model(folder, language, full=True)
        spec = registry.serving_spec(settings, language, folder)
    rows = reembed(settings, language, spec, on_start=on_start, progress=progress)
    registry.set_active(settings, language, name)
    return Switched(language, name, spec or "all-MiniLM-L6-v2", rows)


def reembed(
    settings: Settings,
    language: str,
    spec: str,
    *,
    on_start: Callable[[int], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Embed the entries of ``language``'s index again with ``spec``; the other languages'
    indexes are kept as they are. Returns the rows embedded (0 when there is no such index)."""
    root = Path(settings.index_dir)
    if not (root / language / "meta.json").exists():
        return 0
    indexes = {
        sub.name: KnowledgeIndex.load(sub)
        for sub in sorted(p for p in root.iterdir() if (p / "meta.json").exists())
    }
    old = indexes[language]
    r = settings.retrieval
    embedder = load_embedder(spec, allow_download=r.allow_download, model_cache=r.model_cache)
    same = old.meta.model == embedder.name
    if on_start:
        on_start(old.meta.rows)
    indexes[language] = KnowledgeIndex.build(
        old.entries,
        embedder,
        hnsw_min_rows=r.hnsw_min_rows,
        reuse=old.row_vectors() if same else None,
        reuse_sparse=old.row_sparse() if same else None,
        progress=progress,
    )
    sources = stored_sources(root)  # calibrated before: calibrate the new index again
    IndexSet(indexes).save(root)
    if sources:
        models = {**registry.active_language_models(settings), language: spec}
        calibrate_configured(settings, sources, language_models=models)
    return indexes[language].embedded_now
