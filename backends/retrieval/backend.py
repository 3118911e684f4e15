"""The retrieval backend: answer with the best knowledge-base entry, or hand over to a human."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from backends.base import Backend, BackendError, Conversation, ReplyMeta, Source
from backends.retrieval.embedder import Embedder, SentenceTransformerEmbedder
from backends.retrieval.index import Hit, KnowledgeIndex, KnowledgeIndexError
from backends.retrieval.texts import handoff_text

SNIPPET_CHARS = 240
_CHUNK = re.compile(r"\S+\s*")


class RetrievalBackend(Backend):
    """Nearest entries by cosine similarity; the best entry's answer, its sources cited."""

    kind = "retrieval"

    def __init__(
        self,
        index_dir: Path,
        *,
        model: str = "",
        min_score: float = 0.5,
        top_k: int = 3,
        allow_download: bool = False,
        embedder: Embedder | None = None,
    ):
        self.index_dir = Path(index_dir)
        self.model = model
        self.min_score = min_score
        self.top_k = top_k
        self.allow_download = allow_download
        self._embedder = embedder
        self._index: KnowledgeIndex | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> RetrievalBackend:
        """Build from a stored config: ``index_dir`` required; model, min_score, top_k optional."""
        if "index_dir" not in config:
            raise ValueError("retrieval backend config needs 'index_dir'")
        return cls(
            Path(config["index_dir"]),
            model=str(config.get("model", "")),
            min_score=float(config.get("min_score", 0.5)),
            top_k=int(config.get("top_k", 3)),
            allow_download=bool(config.get("allow_download", False)),
        )

    def load(self) -> KnowledgeIndex:
        """Load the embedder and index once (blocking; call off the event loop)."""
        with self._lock:
            if self._embedder is None:
                self._embedder = SentenceTransformerEmbedder(
                    self.model, allow_download=self.allow_download
                )
            if self._index is None:
                self._index = KnowledgeIndex.load(self.index_dir, model=self._embedder.name)
            return self._index

    async def warm(self) -> None:
        """Load the embedder and the index off the event loop."""
        await asyncio.to_thread(self.load)

    def search(self, text: str, locale: str | None = None, top_k: int | None = None) -> list[Hit]:
        """The best entries for ``text`` (blocking)."""
        index = self.load()
        assert self._embedder is not None
        vector = self._embedder.encode([text], kind="query")[0]
        return index.search(vector, top_k or self.top_k, locale=locale)

    async def stream(self, conversation: Conversation, meta: ReplyMeta) -> AsyncIterator[str]:
        """Stream the best entry's answer, or the hand-over text below ``min_score``."""
        question = conversation.last_user_text
        try:
            hits = await asyncio.to_thread(self.search, question, conversation.locale)
        except (KnowledgeIndexError, ValueError, OSError) as exc:
            raise BackendError(
                "The knowledge base is not available right now; an administrator has been told.",
                retryable=False,
                detail=str(exc),
            ) from exc
        assert self._index is not None
        meta.model = self._index.meta.model
        meta.index_version = self._index.meta.version
        meta.sources = [_source(hit) for hit in hits]
        if not hits or hits[0].score < self.min_score:
            meta.handoff = True
            answer = handoff_text(conversation.locale)
        else:
            answer = hits[0].entry.answer
        for match in _CHUNK.finditer(answer):
            yield match.group(0)


def _source(hit: Hit) -> Source:
    """A cited source for one hit."""
    entry = hit.entry
    snippet = (
        entry.answer if len(entry.answer) <= SNIPPET_CHARS else entry.answer[:SNIPPET_CHARS] + "…"
    )
    return Source(
        id=entry.id, title=entry.title, score=hit.score, snippet=snippet, locale=entry.locale
    )
