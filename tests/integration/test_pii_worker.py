"""Personal data is detected on store in a low-priority child process that never outlives the
server and is started again when it dies. Real parts: the installed spaCy models, SQLite files,
real processes and signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from chatbot.db.models import Conversation, Message, User
from chatbot.runtime import Runtime
from chatbot.settings import Settings
from chatbot.training.pii import worker
from chatbot.training.pii.spans import VERSION

pytestmark = pytest.mark.integration


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[Runtime]:
    runtime = Runtime.open(Settings(home=tmp_path / "var"))
    runtime.start_pii_worker()
    yield runtime
    if runtime.pii_worker is not None:
        runtime.pii_worker.stop()
    runtime.engine.dispose()


def store(rt: Runtime, text: str, mid: str) -> None:
    with rt.sessions.begin() as session:
        user = session.scalar(select(User)) or User(username="ana")
        session.add(user)
        session.flush()
        if session.get(Conversation, "c1") is None:
            session.add(Conversation(id="c1", user_id=user.id, locale="en"))
        session.add(Message(id=mid, conversation_id="c1", role="user", content=text))


def detected(rt: Runtime, mid: str) -> set[str] | None:
    with rt.sessions() as session:
        message = session.get(Message, mid)
        assert message is not None
        if message.pii_version != VERSION:
            return None
        return {s["type"] for s in message.pii_spans or []}


def gone(pid: int) -> bool:
    """No such process, or a zombie nobody has reaped yet."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


def wait_gone(pid: int, limit_s: float = 30.0) -> bool:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if gone(pid):
            return True
        time.sleep(0.2)
    return False


def test_detection_runs_in_a_low_priority_child_that_ends_with_the_server(rt: Runtime):
    assert rt.pii_worker is not None
    store(rt, "I'm Emily Clarke, call (415) 555-0199", "m1")
    rt.pii_worker.drain()
    assert detected(rt, "m1") == {"PERSON", "PHONE"}
    pid = rt.pii_worker.pid
    assert pid is not None and pid != os.getpid()
    nice = os.getpriority(os.PRIO_PROCESS, pid) - os.getpriority(os.PRIO_PROCESS, 0)
    assert nice == min(rt.settings.pii.worker_nice, 19 - os.getpriority(os.PRIO_PROCESS, 0))
    rt.pii_worker.stop()
    assert gone(pid)


def test_a_detector_that_died_is_started_again(rt: Runtime, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(worker, "RESTART_AFTER_S", 0.0)
    assert rt.pii_worker is not None
    first = rt.pii_worker.pid
    assert first is not None
    os.kill(first, signal.SIGKILL)
    assert wait_gone(first)
    store(rt, "My SSN is 123-45-6789, I'm John Smith.", "m2")  # starts a new child
    rt.pii_worker.drain()
    assert detected(rt, "m2") == {"PERSON", "US_SSN"}
    assert rt.pii_worker.pid not in (None, first)


SERVER = """
import sys
from chatbot.runtime import Runtime
from chatbot.settings import Settings
rt = Runtime.open(Settings(home=sys.argv[1]))
rt.start_pii_worker()
print(rt.pii_worker.pid, flush=True)
sys.stdin.read()
"""


def test_the_detector_ends_when_the_server_is_killed(tmp_path: Path):
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(tmp_path / "var")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        child = int(server.stdout.readline())
        assert not gone(child)
    finally:
        server.kill()
        server.wait()
    assert wait_gone(child), "the detector outlived a killed server"
