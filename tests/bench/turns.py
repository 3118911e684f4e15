"""ChatService overhead per turn (service time minus backend time) on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from sqlalchemy import Engine, create_engine, text

from backends import registry
from backends.base import Backend, Conversation, ReplyMeta
from backends.retrieval.backend import RetrievalBackend
from chatbot.db import store
from chatbot.runtime import Runtime
from chatbot.settings import Settings
from tests.bench.common import pct, summary

BACKEND_MS: list[float] = []


class TimedRetrieval(Backend):
    """The real retrieval backend, timed from the inside so the service's share can be isolated."""

    kind = "timed-retrieval"
    uses_history = RetrievalBackend.uses_history
    may_hang = RetrievalBackend.may_hang

    def __init__(self, config):
        self.inner = RetrievalBackend.from_config(config)

    async def stream(self, conversation: Conversation, meta: ReplyMeta) -> AsyncIterator[str]:
        start = time.perf_counter()
        async for chunk in self.inner.stream(conversation, meta):
            yield chunk
        BACKEND_MS.append((time.perf_counter() - start) * 1000)


def floor(engine: Engine, turns: int, *, sync: str | None = None) -> list[float]:
    """The least a turn can cost the database: two raw commits (an INSERT each) on a DBAPI
    connection of ``engine`` (same driver and SQLite pragmas; ``sync`` overrides SQLite's
    ``synchronous`` for the run), per turn, in milliseconds."""
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        if sync:
            cursor.execute(f"PRAGMA synchronous={sync}")
        cursor.execute("CREATE TABLE bench_floor (n INTEGER)")
        raw.commit()
        times = []
        for n in range(turns):
            start = time.perf_counter()
            for _ in range(2):
                cursor.execute(f"INSERT INTO bench_floor (n) VALUES ({n})")
                raw.commit()
            times.append((time.perf_counter() - start) * 1000)
        cursor.execute("DROP TABLE bench_floor")
        raw.commit()
        if sync:
            cursor.execute("PRAGMA synchronous=NORMAL")  # as chatbot/db/session.py sets it
        return times
    finally:
        raw.close()


async def measure(
    url: str, index_dir: Path, turns: int
) -> tuple[list[float], list[float], dict[str, list[float]]]:
    """(turn wall times, backend times, floors) for ``turns`` turns on the database at
    ``url``; the floors (two raw commits) are measured right after, in the same process:
    with the app's settings, and on SQLite also with a disk flush per commit (FULL)."""
    registry.KINDS[TimedRetrieval.kind] = TimedRetrieval
    with tempfile.TemporaryDirectory() as home:
        rt = Runtime.open(Settings(home=Path(home), database={"url": url}))
        with rt.sessions.begin() as session:
            store.put_backend(
                session=session,
                name="faq",
                kind=TimedRetrieval.kind,
                config={"index_dir": str(index_dir)},
            )
            user = store.ensure_user(session=session, username="bench")
        await (await asyncio.to_thread(rt.pool.resolve)).backend.inner.warm()
        BACKEND_MS.clear()
        total: list[float] = []
        conversation = await rt.service.start_conversation(user_id=user.id)
        for i in range(turns):
            if i % 10 == 0:
                conversation = await rt.service.start_conversation(user_id=user.id)
            start = time.perf_counter()
            async for _ in rt.service.reply(
                conversation_id=conversation, text=f"how much is shipping {i}"
            ):
                pass
            total.append((time.perf_counter() - start) * 1000)
        least = {"floor": floor(rt.engine, turns)}
        if rt.engine.dialect.name == "sqlite":
            least["floor-FULL"] = floor(rt.engine, turns, sync="FULL")
        await rt.aclose()
    return total, list(BACKEND_MS), least


def run(index_dir: Path, turns: int, postgres_admin: str) -> None:
    """Print overhead figures for SQLite and PostgreSQL."""
    name = f"afina_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(postgres_admin, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    targets = {
        "sqlite": None,
        "postgresql": admin.url.set(database=name).render_as_string(hide_password=False),
    }
    try:
        for label, url in targets.items():
            with tempfile.TemporaryDirectory() as tmp:
                url = url or f"sqlite:///{tmp}/bench.db"
                total, backend, floors = asyncio.run(measure(url, index_dir, turns))
            overhead = [t - b for t, b in zip(total, backend, strict=True)]
            print(f"turn   {label:<10} total    {summary(total)}")
            print(f"turn   {label:<10} backend  {summary(backend)}")
            print(
                f"turn   {label:<10} overhead {summary(overhead)}   "
                f"overhead/total (p50) {pct(overhead, 50) / pct(total, 50):.0%}"
            )
            for kind, least in floors.items():
                print(f"turn   {label:<10} {kind:<8} {summary(least)}   (two raw commits)")
                print(
                    f"turn   {label:<10} overhead/{kind}  p50 "
                    f"{pct(overhead, 50) / pct(least, 50):.1f}x  p95 "
                    f"{pct(overhead, 95) / pct(least, 95):.1f}x   (goal: p95 within 3x)"
                )
        print(f"turn   load average {os.getloadavg()[0]:.2f} (figures are noisy when > 0.5)")
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))
        admin.dispose()
