"""Afina's parts wired together from settings: database, backends, chat service."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from backends.retrieval.embedder import Embedder, load_embedder
from backends.retrieval.index_set import IndexSet, Routes
from backends.threads import limit_thread_env
from chatbot.backend_pool import BackendPool, register_defaults
from chatbot.db import migrate
from chatbot.db.session import check_connection, make_engine, make_sessionmaker
from chatbot.service import ChatService
from chatbot.settings import Settings
from chatbot.training.pii.worker import PiiWorker


@dataclass
class Runtime:
    """An open engine and the service built on it; ``close()`` when done."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    pool: BackendPool
    service: ChatService
    # detects personal data in stored messages in the background (see start_pii_worker)
    pii_worker: PiiWorker | None = None

    @classmethod
    def open(cls, settings: Settings, *, upgrade: bool = True) -> Runtime:
        """Connect (a clear error naming the setting if unreachable), migrate, register defaults."""
        limit_thread_env()
        engine = make_engine(settings.database_url, echo=settings.database.echo)
        check_connection(engine)
        if upgrade:
            migrate.upgrade(engine)
        sessions = make_sessionmaker(engine)
        with sessions.begin() as session:
            register_defaults(session=session)
        pool = BackendPool(sessions, settings)
        return cls(settings, engine, sessions, pool, ChatService(sessions, pool, settings.chat))

    def start_pii_worker(self) -> None:
        """Detect personal data in messages as they are stored (when the settings say so)."""
        if self.settings.pii.detect_on_store and self.pii_worker is None:
            self.pii_worker = PiiWorker(self.sessions, self.settings.pii).start()

    async def aclose(self) -> None:
        """Close backends and the engine."""
        if self.pii_worker is not None:
            await asyncio.to_thread(self.pii_worker.stop)
        await self.pool.aclose()
        self.engine.dispose()


def index_exists(index_dir: Path) -> bool:
    """Whether a knowledge-base index has been built in ``index_dir``."""
    return IndexSet.exists(index_dir)


def retrieval_routes(settings: Settings) -> Routes:
    """Which embedder serves which language, from settings and the active tuned embedders."""
    from chatbot.knowledge.tuning.registry import active_language_models

    r = settings.retrieval
    return Routes(default_model=r.model, language_models=active_language_models(settings))


def make_embedder(settings: Settings) -> Embedder:
    """The default embedder (languages without their own model); loads it once per process."""
    r = settings.retrieval
    return load_embedder(r.model, allow_download=r.allow_download, model_cache=r.model_cache)
