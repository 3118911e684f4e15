"""Engines and sessions; one place turns a database URL into a working connection."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from chatbot.errors import ConfigError

DRIVERS = {
    "postgresql": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mariadb+pymysql",
}
URL_SETTING = "AFINA_DATABASE_URL"
POOL_SIZE = 10  # connections kept open per process (see make_engine)
T = TypeVar("T")
log = logging.getLogger(__name__)


def normalize_url(url: str) -> str:
    """Pick the installed driver for bare ``postgresql://`` / ``mysql://`` URLs."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(
            f"{URL_SETTING} is not a database URL: {url!r} "
            "(e.g. sqlite:///var/afina.db or postgresql://user@host/db)"
        ) from None
    driver = DRIVERS.get(parsed.drivername)
    return parsed.set(drivername=driver).render_as_string(False) if driver else url


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine for ``url``; SQLite files get their folder, WAL mode and foreign keys.

    The pool keeps as many connections as threads may ask for at once (asyncio's default
    executor runs up to CPUs + 4 of them): past ``pool_size`` each
    checkout opens and closes a connection, a connect per turn on PostgreSQL."""
    url = normalize_url(url)
    parsed = make_url(url)
    pool = {"pool_size": POOL_SIZE, "max_overflow": POOL_SIZE}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        else:
            pool = {}  # in-memory SQLite uses a single-connection pool
        engine = create_engine(url, echo=echo, connect_args={"timeout": 30}, **pool)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, echo=echo, pool_pre_ping=True, **pool)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    """Enforce foreign keys (cascades) and let readers run beside a writer. In WAL mode
    ``synchronous=NORMAL`` syncs the log at checkpoints instead of on every commit: a killed
    process loses nothing (the log is in the OS's cache), a power cut may lose the last
    commits; a commit costs ~0.1 ms instead of a disk flush (~1 ms, far more on a busy disk)."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def check_connection(engine: Engine) -> None:
    """Fail with a message naming the setting when the database cannot be reached."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        safe = engine.url.render_as_string(hide_password=True)
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise ConfigError(
            f"cannot connect to the database {safe}: {reason}. "
            f"Check {URL_SETTING} (or unset it to use the local SQLite file)."
        ) from None


def outage(exc: BaseException) -> bool:
    """Whether ``exc`` says the database could not be reached (not a bug, not a constraint)."""
    return isinstance(exc, OperationalError) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    )


def retrying(work: Callable[..., T], *args: Any, pause_s: float = 1.0) -> T:
    """``work(*args)`` (one transaction); run once more after ``pause_s`` when the database
    connection failed (a restart, a dropped connection): the pool's pre-ping and the retry
    carry a turn over a short outage. Blocking."""
    try:
        return work(*args)
    except DBAPIError as exc:
        if not outage(exc):
            raise
        log.warning("database error, retrying once in %.1f s: %s", pause_s, _first_line(exc))
    time.sleep(pause_s)
    return work(*args)


def _first_line(exc: DBAPIError) -> str:
    return (str(exc.orig) if exc.orig else str(exc)).strip().split("\n")[0][:200]


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded objects usable after commit."""
    return sessionmaker(engine, expire_on_commit=False)
