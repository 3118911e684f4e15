"""Login figures: the cost of a check for known, unknown and disabled names; a parallel attack."""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from pathlib import Path

from chatbot.db import store
from chatbot.db.migrate import upgrade
from chatbot.db.session import make_engine, make_sessionmaker
from chatbot.passwords import hash_password
from chatbot.ui.auth import LoginThrottle, TooManyAttempts, check_password, dummy_hash, login
from tests.bench.common import summary, time_ms


def run(quick: bool) -> None:
    """Print the time of a login check per kind of name, and what 50 parallel guesses get."""
    logging.getLogger("chatbot.ui.auth").setLevel(logging.ERROR)  # 49 refusals are expected
    rounds = 5 if quick else 20
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'afina.db'}")
        upgrade(engine)
        sessions = make_sessionmaker(engine)
        with sessions.begin() as session:
            store.add_user(session=session, username="ana", password_hash=hash_password("p" * 12))
            store.add_user(session=session, username="off", password_hash=hash_password("p" * 12))
            store.set_disabled(session=session, username="off", disabled=True)
        dummy_hash()
        print("login check (one Argon2 verification whatever the name; rounds interleaved):")
        kinds = {"known name": "ana", "unknown": "nobody", "disabled": "off"}
        times: dict[str, list[float]] = {label: [] for label in kinds}
        for _ in range(rounds):
            for label, name in kinds.items():
                times[label].append(time_ms(lambda n=name: check_password(sessions, n, "wrong")))
        for label, values in times.items():
            print(f"  {label:10s} {summary(values)}")
        throttle = LoginThrottle()

        async def attack() -> list[object]:
            tries = [login(sessions, throttle, "ana", f"guess-{i}", "10.0.0.1") for i in range(50)]
            return await asyncio.gather(*tries, return_exceptions=True)

        start = time.perf_counter()
        outcomes = asyncio.run(attack())
        took = time.perf_counter() - start
        refused = sum(isinstance(o, TooManyAttempts) for o in outcomes)
        one_by_one = sum(throttle.delay(n) for n in range(1, 50))
        print(
            f"50 parallel wrong logins: {50 - refused} checked, {refused} refused in {took:.2f} s; "
            f"one after another they would wait {one_by_one / 60:.1f} min"
        )
        engine.dispose()
