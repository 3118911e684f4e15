"""Browser-test fixtures: a real ``afina serve`` on a free port, Chromium driven by Playwright."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from chatbot.db import store
from chatbot.db.session import make_engine, make_sessionmaker
from chatbot.passwords import hash_password
from chatbot.runtime import Runtime
from chatbot.settings import DatabaseSettings, RetrievalSettings, Settings
from tests.conftest import ROOT, SMALL_KB
from tests.load.servers import wait_ready

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = ROOT / "test-artifacts"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
ADMIN_PASSWORD = "admin-password-e2e"
PASSWORD = "agent-password-e2e"
AGENTS = ("alice", "bob", "carmen")
# Chainlit changes behaviour on these (CI=true fakes OPENAI_API_KEY, DATABASE_URL switches
# its data layer); a spawned server must not see them.
CHAINLIT_TRAPS = ("CI", "DEBUG", "WATCH", "HEADLESS", "NO_CACHE", "DATABASE_URL")
STRICT = "strict"  # a second retrieval backend that always hands over
BROKEN = "broken"  # a backend whose index is missing: every answer fails


@dataclass
class Server:
    """A running ``afina serve`` and a way to read its database."""

    url: str
    database_url: str
    home: Path
    sessions: object
    log: Path
    process: subprocess.Popen | None = None  # to kill it hard (tests/e2e/test_faults.py)

    @property
    def chat(self) -> str:
        """The chat page."""
        return f"{self.url}/chat"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _seed(settings: Settings) -> None:
    """Agents and the extra backends the tests switch between (the server adds admin)."""
    runtime = Runtime.open(settings)
    try:
        with runtime.sessions.begin() as session:
            for name in AGENTS:
                store.add_user(
                    session=session,
                    username=name,
                    role="agent",
                    password_hash=hash_password(PASSWORD),
                )
            store.put_backend(
                session=session, name=STRICT, kind="retrieval", config={"min_score": 2.0}
            )
            store.put_backend(
                session=session,
                name=BROKEN,
                kind="retrieval",
                config={"index_dir": str(settings.home / "no-such-index")},
            )
    finally:
        runtime.engine.dispose()


def _server_env(home: Path, database_url: str, admin_password: str | None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("AFINA_") and k not in CHAINLIT_TRAPS and not k.startswith("CHAINLIT_")
    }
    env.update(
        AFINA_HOME=str(home),
        AFINA_DATABASE_URL=database_url,
        AFINA_RETRIEVAL_KB_PATH=str(SMALL_KB),
        # no fallback backend: a failing backend must show its error (the fallback is tested
        # with the LLM backends)
        AFINA_LLM_FALLBACK_BACKEND="",
        HF_HUB_OFFLINE="1",
        OMP_NUM_THREADS="1",
        OPENBLAS_NUM_THREADS="1",
    )
    if admin_password is not None:
        env["AFINA_WEB_ADMIN_PASSWORD"] = admin_password
    return env


def _wait_ready(url: str, process: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    """Until ``url``/healthz answers (the load test's wait); a test failure with the log's end."""
    try:
        wait_ready(url, process, log, timeout)
    except RuntimeError as exc:
        pytest.fail(f"afina serve: {exc}")


@contextmanager
def running_server(
    folder: Path,
    database_url: str,
    *,
    admin_password: str | None = ADMIN_PASSWORD,
    seed: bool = True,
    env: dict[str, str] | None = None,
) -> Iterator[Server]:
    """Seed the database, start ``afina serve`` on a free port, stop it afterwards.

    ``admin_password=None`` lets the server generate the first admin's password (and print it);
    ``env`` adds or overrides the server's environment (AFINA_* settings).
    """
    home = folder / "var"
    settings = Settings(
        home=home,
        database=DatabaseSettings(url=database_url),
        retrieval=RetrievalSettings(kb_path=str(SMALL_KB)),
    )
    if seed:
        _seed(settings)
    port, log = free_port(), folder / "serve.log"
    with log.open("a") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "chatbot.cli.main", "serve", "--port", str(port)],
            env={**_server_env(home, database_url, admin_password), **(env or {})},
            cwd=folder,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    engine = make_engine(database_url)
    try:
        _wait_ready(url, process, log)
        yield Server(url, database_url, home, make_sessionmaker(engine), log, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        engine.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Debian's Chromium driven by Playwright (no ``playwright install``); fails when missing.

    Module-scoped: sync Playwright holds an event loop while it runs, which would break
    the asyncio tests of later modules."""
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        pytest.fail(
            "browser tests need Debian's Chromium: apt-get install -y chromium (.ci/run does)"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium"),
            args=CHROMIUM_ARGS,
        )
        yield launched
        launched.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Remember each phase's outcome on the test item (for screenshots on failure)."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def open_chat(browser, request: pytest.FixtureRequest) -> Iterator[Callable[..., object]]:
    """Open the chat as a user (logged in through the API); screenshots on failure."""
    contexts: list = []
    pages: list = []

    def open_page(
        server: Server,
        username: str,
        *,
        locale: str = "en-US",
        password: str | None = None,
        viewport: dict[str, int] | None = None,
    ):
        context = browser.new_context(locale=locale, viewport=viewport or DESKTOP)
        contexts.append(context)
        context.route(
            "**/*",
            lambda route: (
                route.continue_()
                if route.request.url.startswith((server.url, "data:"))
                else route.abort()
            ),
        )
        secret = password or (ADMIN_PASSWORD if username == "admin" else PASSWORD)
        response = context.request.post(
            f"{server.chat}/login", form={"username": username, "password": secret}
        )
        assert response.ok, response.text()
        page = context.new_page()
        page.set_default_timeout(30_000)
        pages.append(page)
        page.goto(f"{server.chat}/")
        page.wait_for_selector('[data-step-type="assistant_message"]')  # the welcome
        return page

    yield open_page
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        for index, page in enumerate(pages):
            try:
                page.screenshot(
                    path=str(ARTIFACTS / f"{request.node.name}-{index}.png"), full_page=True
                )
            except Exception as exc:  # a closed page must not hide the real failure
                print(f"screenshot failed: {exc}")
    for context in contexts:
        context.close()
