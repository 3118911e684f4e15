"""A knowledge base as per-language indexes, each built with the embedder best for its language."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from backends.retrieval.defaults import DEFAULT_LANGUAGE_MODELS
from backends.retrieval.embedder import embedder_name
from backends.retrieval.files import write_folder
from backends.retrieval.index import Entry, KnowledgeIndex, KnowledgeIndexError

ANY = "any"  # the group of a knowledge base whose entries carry no locale
PREFERRED = "en"  # answered from when the customer's language has no index


@dataclass(frozen=True)
class Routes:
    """Which embedder serves which language; languages not listed use ``default_model``."""

    default_model: str = ""
    language_models: Mapping[str, str] = field(
        default_factory=lambda: dict(DEFAULT_LANGUAGE_MODELS)
    )

    def model_for(self, group: str) -> str:
        """The embedder spec for a language group (an empty entry means ``default_model``)."""
        return self.language_models.get(group) or self.default_model


def group_entries(entries: Sequence[Entry]) -> dict[str, list[Entry]]:
    """Entries by locale; entries without a locale join every group (or form ``any``)."""
    shared = [e for e in entries if not e.locale]
    locales = sorted({e.locale for e in entries if e.locale})
    if not locales:
        return {ANY: shared}
    return {loc: [e for e in entries if e.locale == loc] + shared for loc in locales}


class IndexSet:
    """The per-language indexes under one folder (``<root>/<locale>/``)."""

    def __init__(self, indexes: Mapping[str, KnowledgeIndex]):
        if not indexes:
            raise KnowledgeIndexError("a knowledge base needs at least one entry")
        self.indexes = dict(indexes)

    @staticmethod
    def exists(root: Path) -> bool:
        """Whether an index set has been built in ``root``."""
        return any((sub / "meta.json").exists() for sub in _subfolders(root))

    @classmethod
    def load(cls, root: Path, routes: Routes) -> IndexSet:
        """Load every language index, refusing one built by another embedder than ``routes``'."""
        root = Path(root)
        indexes = {
            sub.name: KnowledgeIndex.load(sub, model=embedder_name(routes.model_for(sub.name)))
            for sub in _subfolders(root)
            if (sub / "meta.json").exists()
        }
        if not indexes:
            raise KnowledgeIndexError(
                f"no knowledge-base index in {root}: build one with 'afina kb ingest PATH'"
            )
        return cls(indexes)

    def pick(self, locale: str | None) -> tuple[str, KnowledgeIndex]:
        """The index for ``locale``; else the locale-free one, else English, else any."""
        for group in (locale, ANY, PREFERRED):
            if group in self.indexes:
                return group, self.indexes[group]
        group = sorted(self.indexes)[0]
        return group, self.indexes[group]

    def save(self, root: Path) -> None:
        """Write all indexes, then swap the folder: readers never see a mix of versions."""

        def fill(folder: Path) -> None:
            for group, index in self.indexes.items():
                index.save(folder / group)

        write_folder(root, fill)


def _subfolders(root: Path) -> list[Path]:
    """Sub-folders of ``root`` (none when it does not exist)."""
    root = Path(root)
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
