"""Login internals under attack: parallel tries, password sprays, name probing, revoked epochs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatbot import passwords
from chatbot.db import store
from chatbot.db.migrate import upgrade
from chatbot.db.session import make_engine, make_sessionmaker
from chatbot.passwords import hash_password
from chatbot.ui import auth
from chatbot.ui.auth import LoginThrottle, TooManyAttempts, check_password, login, session_user
from chatbot.ui.guard import origin_allowed

pytestmark = pytest.mark.integration
PASSWORD = "right-password-1"


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[object]:
    """A migrated SQLite database with one enabled and one disabled agent."""
    engine = make_engine(f"sqlite:///{tmp_path / 'afina.db'}")
    upgrade(engine)
    made = make_sessionmaker(engine)
    with made.begin() as session:
        store.add_user(session=session, username="alice", password_hash=hash_password(PASSWORD))
        store.add_user(session=session, username="gone", password_hash=hash_password(PASSWORD))
        store.set_disabled(session=session, username="gone", disabled=True)
    yield made
    engine.dispose()


def test_parallel_wrong_logins_for_one_name_are_not_all_tried(sessions):
    """50 wrong passwords sent at once: one is verified, the other 49 are refused unchecked."""
    throttle = LoginThrottle()

    async def attack() -> list[object]:
        tries = [login(sessions, throttle, "alice", f"guess-{i}", "10.0.0.1") for i in range(50)]
        return await asyncio.gather(*tries, return_exceptions=True)

    outcomes = asyncio.run(attack())
    refused = [o for o in outcomes if isinstance(o, TooManyAttempts)]
    assert outcomes.count(None) == 1 and len(refused) == 49
    assert "try again in" in str(refused[0])


def test_tries_one_after_another_wait_ever_longer_and_a_success_clears_it(sessions):
    """Sequential wrong passwords are not refused but slowed: 0.05, 0.1, 0.2, 0.4, 0.4 s."""
    throttle = LoginThrottle(base_s=0.05, max_s=0.4)
    keys = throttle.keys("alice", None)

    async def run() -> list[float]:
        waits = []
        for i in range(6):
            waits.append(throttle.reserve(keys) or 0.0)
            throttle.release(keys, None)  # only looked: nothing was tried
            assert await login(sessions, throttle, "alice", f"bad-{i}") is None
        assert await login(sessions, throttle, "alice", PASSWORD) is not None
        return waits

    waits = asyncio.run(run())
    assert waits[0] == 0.0
    assert [round(w, 2) for w in waits[1:]] == pytest.approx([0.05, 0.1, 0.2, 0.4, 0.4], abs=0.03)
    assert throttle.reserve(keys) == 0.0  # cleared by the success


def test_a_spray_over_many_names_from_one_client_is_slowed_and_bounded():
    """One client trying one password on many names: at most 4 in flight, then a back-off."""
    throttle = LoginThrottle(client_free=20)
    keys = [throttle.keys(f"user{i}", "10.0.0.9") for i in range(6)]
    assert [throttle.reserve(k) for k in keys[:4]] == [0.0] * 4
    assert throttle.reserve(keys[4]) is None  # a fifth parallel try from the same client
    for k in keys[:4]:
        throttle.release(k, False)
    for i in range(16):
        k = throttle.keys(f"other{i}", "10.0.0.9")
        assert throttle.reserve(k) == 0.0
        throttle.release(k, False)
    assert (throttle.reserve(throttle.keys("fresh-name", "10.0.0.9")) or 0) > 0  # slowed
    assert throttle.reserve(throttle.keys("fresh-name", "10.0.0.10")) is None  # name busy now
    assert throttle.reserve(throttle.keys("another-name", "10.0.0.10")) == 0.0  # others fine


def test_unknown_and_disabled_names_verify_a_hash_like_known_ones(sessions, monkeypatch):
    """Name probing: the same Argon2 work runs whatever the name (timings: printed only)."""
    calls: list[str] = []
    real = passwords.verify_password

    def counting(stored, password):
        calls.append(stored)
        return real(stored, password)

    monkeypatch.setattr(auth, "verify_password", counting)
    auth.dummy_hash()  # made once at start by the web app
    timings = {}
    for name in ("alice", "nobody-by-this-name", "gone"):
        calls.clear()
        start = time.perf_counter()
        assert check_password(sessions, name, "wrong-password") is None
        timings[name] = (time.perf_counter() - start) * 1000
        assert len(calls) == 1 and calls[0].startswith("$argon2id$")
    assert check_password(sessions, "gone", PASSWORD) is None  # disabled: right password refused
    assert check_password(sessions, "alice", PASSWORD) is not None
    print("login check ms:", {k: round(v, 1) for k, v in timings.items()})


def test_a_cookie_epoch_is_void_after_password_change_or_disabling(sessions):
    with sessions() as session:
        user = session_user(session=session, username="alice", epoch=0)
        assert user is not None and user.epoch == 0
    with sessions.begin() as session:
        alice = store.get_user(session=session, username="alice")
        store.end_sessions(session=session, user=alice)  # what `afina users passwd` does
    with sessions() as session:
        assert session_user(session=session, username="alice", epoch=0) is None
        assert session_user(session=session, username="alice", epoch=1) is not None
        assert session_user(session=session, username="alice", epoch="1") is None
    with sessions.begin() as session:
        store.set_disabled(session=session, username="alice", disabled=True)
    with sessions() as session:
        assert session_user(session=session, username="alice", epoch=2) is None


@pytest.mark.parametrize(
    ("origin", "host", "ok"),
    [
        (None, "afina.example:8000", True),
        ("http://afina.example:8000", "afina.example:8000", True),
        ("https://afina.example:8000", "afina.example:8000", True),
        ("http://evil.example", "afina.example:8000", False),
        ("http://afina.example:9000", "afina.example:8000", False),
        ("null", "afina.example:8000", False),
        ("https://intranet.example", "afina.example:8000", True),
    ],
)
def test_origin_allowed_is_the_own_origin_or_a_listed_one(origin, host, ok):
    assert origin_allowed(origin, host, ["https://intranet.example/"]) is ok
