"""Attacks on a running ``afina serve``, made the way they were found: by hand over HTTP and a
hand-written Socket.IO client speaking Chainlit's protocol (python-socketio)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import socketio
from sqlalchemy import select

from chatbot.db import history, store
from chatbot.db.models import Conversation, Feedback
from chatbot.passwords import hash_password
from tests.e2e.conftest import CHAINLIT_TRAPS, PASSWORD, Server, running_server

pytestmark = pytest.mark.e2e
EVIL = "http://evil.example"
TARGETS = ("target", "dora", "erin", "frank", "gina", "hank", "ivan")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server on SQLite, with extra agents that only these attacks log in as."""
    folder = tmp_path_factory.mktemp("security")
    with running_server(folder, f"sqlite:///{folder / 'afina.db'}") as running:
        with running.sessions.begin() as session:
            for name in TARGETS:
                store.add_user(
                    session=session, username=name, password_hash=hash_password(PASSWORD)
                )
        yield running


def log_in(server: Server, username: str, password: str = PASSWORD) -> requests.Response:
    """POST the login form as the browser does."""
    return requests.post(
        f"{server.chat}/login", data={"username": username, "password": password}, timeout=30
    )


def cookie_of(server: Server, username: str, password: str = PASSWORD) -> str:
    """A fresh login cookie (``access_token``) of ``username``."""
    response = log_in(server, username, password)
    assert response.status_code == 200, response.text
    return response.cookies["access_token"]


def as_user(server: Server, cookie: str, path: str = "/user", **headers: str) -> requests.Response:
    """GET a Chainlit route with a cookie (``/chat/user`` needs a valid login)."""
    return requests.get(
        f"{server.chat}{path}",
        headers={"Cookie": f"access_token={cookie}", **headers},
        timeout=30,
    )


def in_own_loop(coroutine):
    """Run a coroutine on a fresh event loop in a worker thread."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


async def socket_client(
    server: Server, cookie: str, *, origin: str | None = None, websocket_only: bool = False
) -> socketio.AsyncClient:
    """Connect to Chainlit's Socket.IO endpoint as its web client does; raises when refused."""
    client = socketio.AsyncClient(reconnection=False)
    headers = {"Cookie": f"access_token={cookie}"}
    if origin:
        headers["Origin"] = origin
    await client.connect(
        server.url,
        socketio_path="/chat/ws/socket.io",
        headers=headers,
        auth={"sessionId": str(uuid.uuid4()), "clientType": "webapp", "threadId": None},
        transports=["websocket"] if websocket_only else None,
        wait_timeout=10,
    )
    return client


async def socket_accepted(server: Server, cookie: str, **options) -> bool:
    """Whether the server lets this cookie (and origin) open a Socket.IO session."""
    try:
        client = await socket_client(server, cookie, **options)
    except socketio.exceptions.ConnectionError:
        return False
    await client.disconnect()
    return True


def cli(server: Server, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    """Run the real ``afina`` CLI against the server's database."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AFINA_", "CHAINLIT_")) and k not in CHAINLIT_TRAPS
    }
    env.update(AFINA_HOME=str(server.home), AFINA_DATABASE_URL=server.database_url)
    return subprocess.run(
        [sys.executable, "-m", "chatbot.cli.main", *args],
        input=stdin,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


# login -----------------------------------------------------------------------------------------
def test_parallel_wrong_logins_are_refused_not_tried(server: Server):
    """50 wrong passwords for one name at once: all but one refused with 429, unchecked."""
    with ThreadPoolExecutor(max_workers=50) as pool:
        answers = list(pool.map(lambda i: log_in(server, "target", f"guess-{i}"), range(50)))
    codes = [a.status_code for a in answers]
    assert codes.count(429) >= 45 and codes.count(200) == 0, codes
    assert set(codes) <= {401, 429}
    refused = next(a for a in answers if a.status_code == 429)
    assert "too many failed logins" in refused.json()["detail"]
    wait = int(refused.headers["Retry-After"])
    assert 1 <= wait <= 8
    ok = log_in(server, "target")  # slowed, not locked out: the owner gets in after the wait
    assert ok.status_code == 200 and "access_token" in ok.cookies


def test_unknown_and_known_names_answer_alike(server: Server):
    """Same status and body for a wrong password and an unknown name (timings printed only)."""
    known = log_in(server, "hank", "not-the-password")
    unknown = log_in(server, f"nobody-{uuid.uuid4().hex[:6]}", "not-the-password")
    assert (known.status_code, known.json()) == (unknown.status_code, unknown.json())
    assert known.json() == {"detail": "invalid credentials"}
    print(
        f"login answer: known name {known.elapsed.total_seconds() * 1000:.0f} ms, "
        f"unknown name {unknown.elapsed.total_seconds() * 1000:.0f} ms"
    )


# origins ---------------------------------------------------------------------------------------
def test_foreign_origin_gets_no_cors_echo_and_cannot_write(server: Server):
    cookie = cookie_of(server, "gina")
    foreign = as_user(server, cookie, Origin=EVIL)
    assert "access-control-allow-origin" not in foreign.headers
    preflight = requests.options(
        f"{server.chat}/feedback",
        headers={"Origin": EVIL, "Access-Control-Request-Method": "PUT"},
        timeout=30,
    )
    assert preflight.headers.get("access-control-allow-origin") not in (EVIL, "*")
    forged = requests.delete(
        f"{server.chat}/feedback",
        json={"feedbackId": str(uuid.uuid4())},
        headers={"Cookie": f"access_token={cookie}", "Origin": EVIL},
        timeout=30,
    )
    assert forged.status_code == 403
    cross_login = requests.post(
        f"{server.chat}/login",
        data={"username": "gina", "password": PASSWORD},
        headers={"Origin": EVIL},
        timeout=30,
    )
    assert cross_login.status_code == 403 and "access_token" not in cross_login.cookies
    own = as_user(server, cookie, Origin=server.url)  # the page's own origin works
    assert own.status_code == 200 and own.json()["identifier"] == "gina"


def test_websocket_from_a_foreign_origin_is_refused(server: Server):
    cookie = cookie_of(server, "gina")
    assert not in_own_loop(socket_accepted(server, cookie, origin=EVIL, websocket_only=True))
    for origin, accepted in ((EVIL, False), (server.url, True)):  # long-polling, by hand
        handshake = requests.get(
            f"{server.chat}/ws/socket.io/",
            params={"EIO": "4", "transport": "polling"},
            headers={"Cookie": f"access_token={cookie}", "Origin": origin},
            timeout=30,
        )
        assert (handshake.status_code == 200) is accepted, handshake.text
        assert handshake.headers.get("access-control-allow-origin") in (
            (origin, None) if accepted else (None,)
        )
    assert in_own_loop(socket_accepted(server, cookie, origin=server.url, websocket_only=True))


# cookie revocation -----------------------------------------------------------------------------
def test_logout_voids_the_cookie_on_http_and_websocket(server: Server):
    cookie = cookie_of(server, "dora")
    assert as_user(server, cookie).status_code == 200
    logout = requests.post(
        f"{server.chat}/logout", headers={"Cookie": f"access_token={cookie}"}, timeout=30
    )
    assert logout.status_code == 200
    assert as_user(server, cookie).status_code == 401
    assert not in_own_loop(socket_accepted(server, cookie))
    jwt_swap = requests.post(  # trading the old cookie for a new one is closed too
        f"{server.chat}/auth/jwt", headers={"Authorization": f"Bearer {cookie}"}, timeout=30
    )
    assert jwt_swap.status_code == 404
    fresh = cookie_of(server, "dora")
    assert as_user(server, fresh).status_code == 200


def test_password_change_voids_old_cookies(server: Server):
    old = cookie_of(server, "erin")
    assert in_own_loop(socket_accepted(server, old))
    cli(server, "users", "passwd", "erin", "--password-stdin", stdin="a-brand-new-password\n")
    assert as_user(server, old).status_code == 401
    assert not in_own_loop(socket_accepted(server, old))
    assert log_in(server, "erin").status_code == 401
    assert as_user(server, cookie_of(server, "erin", "a-brand-new-password")).status_code == 200


async def _ask_on_open_socket(server: Server, cookie: str, revoke) -> list[str]:
    """Open a socket, revoke the login (``revoke`` runs the CLI), then send a question."""
    client = await socket_client(server, cookie)
    seen: list[str] = []
    client.on("new_message", lambda data: seen.append(json.dumps(data)))
    try:
        await client.emit("connection_successful")
        await asyncio.sleep(1.0)
        await asyncio.to_thread(revoke)
        message = {
            "id": str(uuid.uuid4()),
            "threadId": str(uuid.uuid4()),
            "name": "frank",
            "type": "user_message",
            "output": "how much is shipping?",
            "createdAt": "2026-11-29T08:00:00Z",
        }
        await client.emit("client_message", {"message": message, "fileReferences": None})
        for _ in range(100):
            if any("session has ended" in s for s in seen):
                break
            await asyncio.sleep(0.1)
    finally:
        await client.disconnect()
    return seen


def test_disabled_user_is_out_everywhere_and_enable_lets_them_back(server: Server):
    cookie = cookie_of(server, "frank")
    seen = in_own_loop(
        _ask_on_open_socket(server, cookie, lambda: cli(server, "users", "disable", "frank"))
    )
    assert any("session has ended" in s for s in seen)  # the open socket asks no more
    assert not any("Shipping is free" in s for s in seen)
    assert as_user(server, cookie).status_code == 401
    assert not in_own_loop(socket_accepted(server, cookie))
    assert log_in(server, "frank").status_code == 401
    with server.sessions() as session:
        assert history.list_conversations(
            session=session,
            user_id=store.get_user(session=session, username="frank").id,
            search=None,
            rating=None,
            offset=0,
            limit=10,
        ) == ([], False)
    cli(server, "users", "enable", "frank")
    assert as_user(server, cookie_of(server, "frank")).status_code == 200


# feedback ownership ----------------------------------------------------------------------------
async def _ask_twice_deleting_between(server: Server, cookie: str) -> tuple[list[str], str]:
    """Ask on one socket, delete the conversation (as another tab would), ask again."""
    client = await socket_client(server, cookie)
    seen: list[str] = []
    client.on("new_message", lambda data: seen.append(json.dumps(data)))
    client.on("update_message", lambda data: seen.append(json.dumps(data)))

    async def ask(text: str, done) -> None:
        message = {
            "id": str(uuid.uuid4()),
            "threadId": "",
            "name": "ivan",
            "type": "user_message",
            "output": text,
            "createdAt": "2026-11-29T08:00:00Z",
        }
        await client.emit("client_message", {"message": message, "fileReferences": None})
        for _ in range(200):
            if done():
                return
            await asyncio.sleep(0.1)

    try:
        await client.emit("connection_successful")
        await asyncio.sleep(1.0)
        await ask("how much is shipping?", lambda: any("Sources" in s for s in seen))
        with server.sessions.begin() as session:
            ivan = store.get_user(session=session, username="ivan")
            (thread_id,) = session.scalars(
                select(Conversation.id).where(Conversation.user_id == ivan.id)
            ).all()
            history.delete_conversation(session=session, conversation_id=thread_id)
        await ask("and to Spain?", lambda: any("not available" in s for s in seen))
    finally:
        await client.disconnect()
    return seen, thread_id


def test_a_chat_deleted_in_another_tab_takes_no_more_questions(server: Server):
    """A browser session opens its conversation once; deleted meanwhile, the next question
    is refused with a clear message and nothing is stored."""
    seen, thread_id = in_own_loop(_ask_twice_deleting_between(server, cookie_of(server, "ivan")))
    assert any("not available" in s for s in seen), seen[-3:]
    with server.sessions() as session:
        assert store.conversation_messages(session=session, conversation_id=thread_id) == []


def _alices_answer(server: Server) -> tuple[str, str]:
    """An answer in one of Alice's conversations, tied to a run step (as the UI stores it)."""
    with server.sessions.begin() as session:
        alice = store.get_user(session=session, username="alice")
        thread = store.add_conversation(session=session, user_id=alice.id, locale="en")
        store.add_message(session=session, conversation_id=thread.id, role="user", content="hi")
        answer = store.add_message(
            session=session, conversation_id=thread.id, role="assistant", content="Hello!"
        )
        run = str(uuid.uuid4())
        history.set_run_step(session=session, message_id=answer.id, run_step_id=run)
        return answer.id, run


def _ratings(server: Server, message_id: str) -> list[tuple[int, str | None]]:
    with server.sessions() as session:
        rows = session.scalars(select(Feedback).where(Feedback.message_id == message_id))
        return [(r.value, r.comment) for r in rows]


def test_feedback_on_another_users_answer_is_refused(server: Server):
    answer, run = _alices_answer(server)
    alice, bob = cookie_of(server, "alice"), cookie_of(server, "bob")

    def put(cookie: str, value: int, comment: str) -> requests.Response:
        body = {"feedback": {"forId": run, "value": value, "comment": comment}, "sessionId": "s"}
        return requests.put(
            f"{server.chat}/feedback",
            json=body,
            headers={"Cookie": f"access_token={cookie}"},
            timeout=30,
        )

    assert put(alice, 1, "mine").status_code == 200
    forged = put(bob, 0, "forged by bob")
    assert forged.status_code == 404
    delete = requests.delete(
        f"{server.chat}/feedback",
        json={"feedbackId": answer},
        headers={"Cookie": f"access_token={bob}"},
        timeout=30,
    )
    assert delete.status_code == 404
    assert _ratings(server, answer) == [(1, "mine")]
    anonymous = requests.put(
        f"{server.chat}/feedback",
        json={"feedback": {"forId": run, "value": 0}, "sessionId": "s"},
        timeout=30,
    )
    assert anonymous.status_code == 401
    assert _ratings(server, answer) == [(1, "mine")]


# API docs --------------------------------------------------------------------------------------
def test_api_docs_are_not_public(server: Server):
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert requests.get(f"{server.url}{path}", timeout=30).status_code == 404
    for path in ("/chat/docs", "/chat/redoc", "/chat/openapi.json"):
        response = requests.get(f"{server.url}{path}", timeout=30)
        assert "swagger" not in response.text.lower() and '"openapi"' not in response.text
