"""``afina serve --workers 2`` behind nginx (Debian's package, config from deploy/nginx.conf)
on one PostgreSQL database, driven by the load test's Socket.IO sessions.

What the product guarantees when a worker dies (SIGKILL) mid-run, and these tests assert:
its sessions reconnect through nginx to the other worker and resume their conversations there;
every answer a session was shown is stored; a question the dead worker was answering is
stored and, after ``--interrupted-after`` seconds, marked "interrupted" (or keeps the part of
its answer that was shown); the supervisor starts the worker again. Throughput per worker
count is printed by ``python -m tests.load --workers 1,2 --nginx --postgres``, not asserted."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from chatbot.backend_pool import ACTIVE_BACKEND, DEFAULT_BACKEND
from chatbot.db import store
from chatbot.db.models import Message
from chatbot.db.session import make_engine, make_sessionmaker
from tests.conftest import SMALL_KB
from tests.load import driver, figures
from tests.load.dbcheck import check
from tests.load.servers import ROOT, Running, running, throwaway_postgres
from tests.load.session import ChatSession, log_in

pytestmark = pytest.mark.e2e
ADMIN_PASSWORD = "admin-password-scaleout"
GRACE_S = 3  # --interrupted-after: a dead worker's cut questions are marked this much later
STRICT = "strict"  # a retrieval backend that always hands over


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Running, list]]:
    """nginx + 2 workers + a throwaway PostgreSQL database, with 8 agents."""
    folder = tmp_path_factory.mktemp("scaleout")
    env = {"AFINA_RETRIEVAL_KB_PATH": str(SMALL_KB), "AFINA_WEB_ADMIN_PASSWORD": ADMIN_PASSWORD}
    with (
        throwaway_postgres() as database_url,
        running(
            folder,
            database_url,
            workers=2,
            nginx=True,
            users=8,
            env=env,
            serve_args=("--interrupted-after", str(GRACE_S)),
        ) as started,
    ):
        yield started


def test_the_deploy_nginx_config_is_accepted_by_nginx(tmp_path: Path):
    """deploy/nginx.conf as an admin installs it (inside nginx's http block): nginx -t."""
    conf = tmp_path / "nginx.conf"
    deploy = (ROOT / "deploy" / "nginx.conf").read_text()
    conf.write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
        f"http {{\naccess_log off;\n{deploy}\n}}\n"
    )
    checked = subprocess.run(
        [shutil.which("nginx") or "/usr/sbin/nginx", "-t", "-c", str(conf), "-p", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr


def plan(server: Running, users: list, **changes) -> driver.Plan:
    """Browser-like sessions through nginx: long-polling first, then the websocket upgrade
    (which only works when nginx keeps each session on one worker)."""
    base = dict(url=server.url, sessions=6, messages=4, interval_s=0.5, max_seconds=120)
    return driver.Plan(users=users, websocket=False, **{**base, **changes})


def test_two_workers_behind_nginx_answer_and_store_every_turn(cluster):
    server, users = cluster
    outcome = asyncio.run(driver.run(plan(server, users)))
    assert [t.lost for t in outcome.turns if t.lost] == []
    stored = check(server.database_url, outcome.turns)
    assert stored.missing == []
    assert stored.answers_stored == len(outcome.turns) == 24


def test_origin_checks_see_the_browsers_host_through_nginx(cluster):
    """nginx passes the Host on: the chat's own origin (the proxy's address) may log in and
    open a socket; another origin may not."""
    server, users = cluster
    name, password = users[0]
    cookie = None
    for origin, allowed in ((server.url, True), ("http://evil.example", False)):
        login = requests.post(
            f"{server.url}/chat/login",
            data={"username": name, "password": password},
            headers={"Origin": origin},
            timeout=30,
        )
        assert (login.status_code == 200) is allowed, login.text
        cookie = cookie or login.cookies["access_token"]
        handshake = requests.get(  # with a valid login cookie either way
            f"{server.url}/chat/ws/socket.io/",
            params={"EIO": "4", "transport": "polling"},
            headers={"Origin": origin},
            cookies={"access_token": cookie},
            timeout=30,
        )
        assert (handshake.status_code == 200) is allowed, handshake.text


async def _switch_on_one_answer_on_the_other(server: Running, users: list) -> list[str]:
    """The admin switches the backend on worker 1; an agent asks on each worker directly."""
    import aiohttp

    first, second = (f"http://127.0.0.1:{p}" for p in server.worker_ports)
    async with aiohttp.ClientSession() as http:
        admin_cookie = await log_in(http, first, "admin", ADMIN_PASSWORD)
        agent_cookies = [await log_in(http, url, *users[0]) for url in (first, second)]
    admin = ChatSession(0, first, admin_cookie, username="admin", websocket=True)
    await admin.connect()
    try:
        await admin.client.emit("chat_settings_change", {"backend": STRICT})
        await _until(lambda: _active(server) == STRICT)
    finally:
        await admin.close()
    answers = []
    for url, cookie in zip((first, second), agent_cookies, strict=True):
        agent = ChatSession(1, url, cookie, username=users[0][0], websocket=True)
        await agent.connect()
        try:
            turn = await agent.ask("how much is shipping?")
        finally:
            await agent.close()
        assert turn.lost is None
        answers.append(turn.answer_id)
    return answers


def test_the_admins_backend_switch_reaches_every_worker(cluster):
    server, users = cluster
    with _sessions(server) as sessions, sessions.begin() as session:
        store.put_backend(session=session, name=STRICT, kind="retrieval", config={"min_score": 2})
    try:
        answer_ids = asyncio.run(_switch_on_one_answer_on_the_other(server, users))
        with _sessions(server) as sessions, sessions() as session:
            answers = [session.get(Message, i) for i in answer_ids]
            assert [a.backend_name for a in answers] == [STRICT, STRICT]
            assert all(a.handoff for a in answers)  # the strict backend always hands over
    finally:
        with _sessions(server) as sessions, sessions.begin() as session:
            store.set_setting(session=session, key=ACTIVE_BACKEND, value=DEFAULT_BACKEND)


def test_a_killed_worker_s_sessions_go_on_through_the_other_and_nothing_is_lost(cluster):
    server, users = cluster
    victim_port = server.worker_ports[0]
    victim = server.worker_pid(victim_port)
    assert victim is not None

    async def load_and_kill() -> driver.Outcome:
        finished: list = []
        load = plan(server, users, sessions=8, messages=8)
        run = asyncio.create_task(driver.run(load, on_turn=finished.append))
        while not run.done() and len(finished) < 12:  # mid-run: some turns done, most not
            await asyncio.sleep(0.05)
        os.kill(victim, signal.SIGKILL)
        return await run

    outcome = asyncio.run(load_and_kill())
    lost = [t for t in outcome.turns if t.lost]
    assert lost, "the kill cut no session: were all sessions on one worker?"
    assert outcome.connect_failures == 0
    resent = [t for t in outcome.turns if t.resent]
    assert resent and all(t.lost is None for t in resent)  # asked again, answered elsewhere
    stored = check(server.database_url, outcome.turns)
    assert stored.missing == []  # every answer a session was shown is stored
    _wait_healthy(f"http://127.0.0.1:{victim_port}")  # the supervisor restarted the worker
    time.sleep(GRACE_S + 2)  # the supervisor marks the dead worker's cut questions
    outcomes = []
    with _sessions(server) as sessions, sessions() as session:
        for turn in lost:
            question = session.get(Message, turn.question_id)
            if question is None:
                outcomes.append("not stored")  # died before storing it; asked again
                continue
            outcomes.append(question.status or "answered")
            assert question.status == "interrupted" or _followed_by_an_answer(session, question)
    print(f"{len(outcome.turns)} turns, {len(lost)} cut by the kill: {outcomes}")


def _followed_by_an_answer(session, question: Message) -> bool:
    """Whether the next message of the question's conversation is an answer (maybe partial)."""
    later = session.scalars(
        select(Message)
        .where(Message.conversation_id == question.conversation_id)
        .where(Message.created_at > question.created_at)
        .order_by(Message.created_at)
        .limit(1)
    ).first()
    return later is not None and later.role == "assistant"


class _sessions:
    """A session factory on the cluster's database, disposed afterwards."""

    def __init__(self, server: Running):
        self.engine = make_engine(server.database_url)

    def __enter__(self):
        return make_sessionmaker(self.engine)

    def __exit__(self, *_):
        self.engine.dispose()


def _active(server: Running) -> str | None:
    with _sessions(server) as sessions, sessions() as session:
        return store.get_setting(session=session, key=ACTIVE_BACKEND)


async def _until(condition, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.2)


def _wait_healthy(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{url} did not come back in {timeout:.0f} s")


def test_the_load_test_kills_a_worker_mid_run_and_reports_what_the_agents_saw(cluster):
    """``python -m tests.load --kill-worker-after S``, in small: the worker is killed while
    sessions are sending; every cut turn was answered when asked again, the worker came back,
    and the report says so."""
    from tests.load.__main__ import measure, report

    server, users = cluster
    load = plan(server, users, sessions=8, messages=10)
    run = measure("open", load, server.pids, server.database_url, kill=(server, 1.5))
    summary, stored = asyncio.run(run)
    assert summary.killed is not None and "answering again" in summary.killed
    assert summary.worker_back and summary.connect_failures == 0
    assert summary.lost == 0 and summary.answered == 80
    assert summary.cut == summary.resent  # each cut turn asked once more, and answered
    assert stored.missing == []
    verdicts = dict(figures.verdicts(summary, stored))
    assert verdicts["the killed worker's sessions reconnected and went on"]
    assert verdicts["0 lost turns"]
    report("kill a worker", summary, stored)  # printed with -s
