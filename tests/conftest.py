"""Shared fixtures: isolated settings, real databases (SQLite, PostgreSQL, MariaDB), real models."""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from backends.threads import limit_thread_env

limit_thread_env()
os.environ["HF_HUB_OFFLINE"] = "1"

from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from chatbot.settings import get_settings  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SMALL_KB = ROOT / "tests" / "data" / "kb_small"
# Servers the tests create throw-away databases on (PostgreSQL on 5432, MariaDB on 3306).
SERVERS = {
    "postgresql": os.environ.get(
        "AFINA_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    ),
    "mariadb": os.environ.get("AFINA_TEST_MARIADB", "mysql+pymysql://root@127.0.0.1:3306/test"),
}
DIALECTS = ["sqlite", "postgresql", "mariadb"]


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test gets its own AFINA_HOME and no stray AFINA_ variables or .env."""
    for name in list(os.environ):
        if name.startswith("AFINA_") and not name.startswith("AFINA_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AFINA_HOME", str(tmp_path / "var"))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _server_database(dialect: str) -> Iterator[str]:
    """Create an empty database on a real server; drop it afterwards."""
    admin_url = make_url(SERVERS[dialect])
    name = f"afina_t_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            if dialect == "postgresql":
                conn.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))
            else:
                conn.execute(text(f"DROP DATABASE {name}"))
        admin.dispose()


@pytest.fixture(params=DIALECTS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database on SQLite, PostgreSQL and MariaDB in turn."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'afina.db'}"
    else:
        yield from _server_database(request.param)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """An empty PostgreSQL database."""
    yield from _server_database("postgresql")


@pytest.fixture(scope="session")
def embedder():
    """The bundled all-MiniLM-L6-v2, loaded once."""
    from backends.retrieval.embedder import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder()


@pytest.fixture(scope="session")
def small_index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Per-language indexes of tests/data/kb_small with the default embedders, built once."""
    from backends.retrieval.index_set import Routes
    from chatbot.knowledge.ingest import ingest

    folder = tmp_path_factory.mktemp("small-index") / "index"
    ingest(SMALL_KB, index_dir=folder, routes=Routes(), hnsw_min_rows=50_000)
    return folder


class StalledUrl(str):
    """The stalled server's URL; ``held`` fills as clients connect (a request is in flight)."""

    held: list[socket.socket]


@pytest.fixture
def stalled_url() -> Iterator[StalledUrl]:
    """A real TCP server that accepts connections and never answers (a hung upstream)."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(conn)  # read nothing, answer nothing

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    url = StalledUrl(f"http://127.0.0.1:{server.getsockname()[1]}/v1")
    url.held = held
    yield url
    stop.set()
    thread.join(timeout=2)
    for conn in held:
        conn.close()
    server.close()
