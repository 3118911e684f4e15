"""Named backends: read from the database, completed with settings defaults, built once."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from backends import registry
from backends.base import Backend
from chatbot.db import store
from chatbot.settings import Settings

ACTIVE_BACKEND = "active_backend"
DEFAULT_BACKEND = "faq"


@dataclass(frozen=True)
class ResolvedBackend:
    """A ready backend with the name and config hash its replies are stored under."""

    name: str
    kind: str
    config_hash: str
    backend: Backend


def kind_defaults(settings: Settings, kind: str) -> dict[str, Any]:
    """Config a stored backend inherits from settings unless its own config says otherwise."""
    if kind == "retrieval":
        r = settings.retrieval
        return {
            "index_dir": str(settings.index_dir),
            "model": r.model,
            "min_score": r.min_score,
            "top_k": r.top_k,
            "allow_download": r.allow_download,
        }
    return {}


def register_defaults(*, session: Session) -> None:
    """Register the built-in ``faq`` retrieval backend and make it active if nothing is."""
    if not any(b.name == DEFAULT_BACKEND for b in store.list_backends(session=session)):
        store.put_backend(session=session, name=DEFAULT_BACKEND, kind="retrieval", config={})
    if store.get_setting(session=session, key=ACTIVE_BACKEND) is None:
        store.set_setting(session=session, key=ACTIVE_BACKEND, value=DEFAULT_BACKEND)


class BackendPool:
    """Builds each (name, config) once and hands out the active or a named backend."""

    def __init__(self, sessions: sessionmaker[Session], settings: Settings):
        self._sessions = sessions
        self._settings = settings
        self._built: dict[tuple[str, str], Backend] = {}

    def resolve(self, name: str | None = None) -> ResolvedBackend:
        """The backend ``name``, or the app-wide active one (blocking: reads the database)."""
        with self._sessions() as session:
            if name is None:
                name = store.get_setting(session=session, key=ACTIVE_BACKEND) or DEFAULT_BACKEND
            record = store.get_backend(session=session, name=name)
            kind, own = record.kind, dict(record.config or {})
        config = {**kind_defaults(self._settings, kind), **own}
        digest = registry.config_hash(kind, config)
        key = (name, digest)
        if key not in self._built:
            self._built[key] = registry.build(kind, config)
        return ResolvedBackend(name=name, kind=kind, config_hash=digest, backend=self._built[key])

    async def aclose(self) -> None:
        """Close every built backend."""
        await asyncio.gather(*(b.aclose() for b in self._built.values()))
        self._built.clear()
