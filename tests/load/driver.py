"""Drive N chat sessions at once, open loop (a message every few seconds) or closed loop
(the next message as soon as the answer is done), bounded in messages and seconds."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from tests.load.session import ChatSession, Refused, Turn, log_in

DATA = Path(__file__).resolve().parents[1] / "data"
QUESTION_FILES = ("heldout_questions.jsonl", "bilingual_questions.jsonl")
LOGIN_PARALLEL = 3  # the server refuses more than 4 logins at once from one address


def questions() -> list[str]:
    """Real customer questions in English and Spanish (tests/data), shuffled the same way."""
    texts = []
    for name in QUESTION_FILES:
        for line in (DATA / name).read_text(encoding="utf-8").splitlines():
            if line.strip():
                texts.append(json.loads(line)["text"])
    random.Random(15).shuffle(texts)
    return texts


@dataclass
class Plan:
    """What to send: how many sessions, how often, for how long."""

    url: str
    sessions: int
    messages: int  # per session
    interval_s: float | None  # None = closed loop
    max_seconds: float
    users: list[tuple[str, str]]  # (name, password); session i logs in as users[i % len]
    websocket: bool = True  # False: start with long-polling and upgrade, like the browser
    turn_timeout_s: float = 60.0
    resend: bool = True  # a lost turn is asked again after reconnecting (as an agent would)


@dataclass
class Outcome:
    """Every turn, plus what the sessions went through."""

    turns: list[Turn] = field(default_factory=list)
    seconds: float = 0.0
    login_s: float = 0.0
    connect_failures: int = 0
    disconnects: int = 0
    threads: dict[int, set[str]] = field(default_factory=dict)  # session -> thread ids


async def _log_in_all(plan: Plan, http: aiohttp.ClientSession) -> list[str]:
    """One cookie per user, a few logins at a time (the server throttles parallel logins)."""
    gate = asyncio.Semaphore(LOGIN_PARALLEL)

    async def one(name: str, password: str) -> str:
        async with gate:
            return await log_in(http, plan.url, name, password)

    needed = plan.users[: min(len(plan.users), plan.sessions)]
    return list(await asyncio.gather(*(one(n, p) for n, p in needed)))


async def run(
    plan: Plan,
    on_turn: Callable[[Turn], None] | None = None,
    on_start: Callable[[], None] | None = None,
) -> Outcome:
    """Log in, connect every session, drive them (``on_start`` is called once all are
    connected, ``on_turn`` after each turn), and return every turn."""
    outcome, texts = Outcome(), questions()
    started = time.perf_counter()
    async with aiohttp.ClientSession() as http:
        cookies = await _log_in_all(plan, http)
    outcome.login_s = time.perf_counter() - started
    sessions = [
        ChatSession(
            i,
            plan.url,
            cookies[i % len(cookies)],
            username=plan.users[i % len(cookies)][0],
            websocket=plan.websocket,
        )
        for i in range(plan.sessions)
    ]
    gate = asyncio.Semaphore(20)  # connects (each runs on_chat_start on the server)

    async def connect(session: ChatSession) -> None:
        async with gate:
            await session.reconnect()

    await asyncio.gather(*(connect(s) for s in sessions))
    if on_start is not None:
        on_start()
    deadline = time.perf_counter() + plan.max_seconds
    begun = time.perf_counter()

    def record(turn: Turn) -> None:
        outcome.turns.append(turn)
        if turn.thread_id:
            outcome.threads.setdefault(turn.session, set()).add(turn.thread_id)
        if on_turn is not None:
            on_turn(turn)

    async def drive(session: ChatSession) -> None:
        rng = random.Random(session.index)
        phase = rng.uniform(0, plan.interval_s) if plan.interval_s else 0.0
        for k in range(plan.messages):
            due = begun + phase + k * (plan.interval_s or 0)
            if plan.interval_s:
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
            if time.perf_counter() > deadline:
                return
            text = texts[(session.index * 37 + k) % len(texts)]
            turn = await session.ask(text, timeout=plan.turn_timeout_s)
            turn.late_s = max(0.0, turn.sent_at - due) if plan.interval_s else 0.0
            record(turn)
            if turn.lost and plan.resend:
                await _recover(session, turn, plan, record, outcome)

    try:
        await asyncio.gather(*(drive(s) for s in sessions))
    finally:
        outcome.seconds = time.perf_counter() - begun
        outcome.disconnects = sum(s.disconnects for s in sessions)
        await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)
    return outcome


async def _recover(
    session: ChatSession, lost: Turn, plan: Plan, record: Callable[[Turn], None], outcome: Outcome
) -> None:
    """After a lost turn: reconnect when the socket dropped (the thread resumes, maybe on
    another worker) and ask the same question again, as the agent would."""
    if not session.connected:
        try:
            await session.reconnect()
        except (Refused, TimeoutError, OSError):
            outcome.connect_failures += 1
            return
    again = await session.ask(lost.question, timeout=plan.turn_timeout_s, resent=True)
    lost.answered_again = again.lost is None
    record(again)
