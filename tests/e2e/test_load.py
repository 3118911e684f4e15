"""The load test (tests/load) in small: real Socket.IO sessions through whole turns, every
turn answered and stored. Timing figures live in ``python -m tests.load``; none asserted."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from tests.conftest import SMALL_KB
from tests.load import driver, figures
from tests.load.dbcheck import check
from tests.load.servers import Running, running

pytestmark = pytest.mark.e2e
SESSIONS, MESSAGES = 5, 3


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Running, list[tuple[str, str]]]]:
    """One ``afina serve`` on SQLite with the small knowledge base and five agents."""
    folder = tmp_path_factory.mktemp("load")
    database_url = f"sqlite:///{folder / 'var' / 'afina.db'}"
    env = {"AFINA_RETRIEVAL_KB_PATH": str(SMALL_KB)}
    with running(folder, database_url, users=SESSIONS, env=env) as started:
        yield started


@pytest.mark.parametrize("mode", ["open", "closed"])
def test_load_every_turn_answered_and_stored(server, mode: str):
    running_server, users = server
    plan = driver.Plan(
        url=running_server.url,
        sessions=SESSIONS,
        messages=MESSAGES,
        interval_s=0.5 if mode == "open" else None,
        max_seconds=120,
        users=users,
        resend=False,
    )
    files_before = figures.session_files()
    outcome = asyncio.run(driver.run(plan))
    # the correction editor under each answer is sent as props, not written to a file per answer
    assert figures.session_files() == files_before
    assert len(outcome.turns) == SESSIONS * MESSAGES
    lost = [(t.session, t.question, t.lost) for t in outcome.turns if t.lost]
    assert lost == []
    assert all(t.answer.strip() for t in outcome.turns)  # each session saw a whole answer
    stored = check(running_server.database_url, outcome.turns)
    assert stored.missing == []
    assert stored.questions_stored == stored.answers_stored == SESSIONS * MESSAGES
    assert stored.conversations == SESSIONS  # one conversation per session, all turns in it
