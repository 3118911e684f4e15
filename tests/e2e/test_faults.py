"""Faults and hostile input against a running ``afina serve``, over a hand-written Socket.IO
client (python-socketio) speaking Chainlit's protocol: bad text, a megabyte message, generated
messages (hypothesis), and a server killed with SIGKILL mid-turn."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
import socketio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from chatbot.backend_pool import ACTIVE_BACKEND
from chatbot.db import store
from chatbot.db.models import Conversation, Message, User
from chatbot.passwords import hash_password
from tests.e2e.conftest import PASSWORD, Server, running_server

pytestmark = pytest.mark.e2e


class Chat:
    """One logged-in Socket.IO session; ``ask`` sends a message and waits for its turn to end."""

    def __init__(self, server: Server, username: str):
        login = requests.post(
            f"{server.chat}/login", data={"username": username, "password": PASSWORD}, timeout=30
        )
        assert login.status_code == 200, login.text
        self.server, self.cookie, self.username = server, login.cookies["access_token"], username
        self.loop = asyncio.new_event_loop()
        self.pool = ThreadPoolExecutor(max_workers=1)
        self.events: list[tuple[str, object]] = []
        self.ended = 0
        self.client = self._run(self._connect())

    def _run(self, coroutine):
        return self.pool.submit(self.loop.run_until_complete, coroutine).result()

    async def _connect(self) -> socketio.AsyncClient:
        client = socketio.AsyncClient(reconnection=False)

        async def any_event(event: str, data: object = None) -> None:
            self.events.append((event, data))
            if event == "task_end":
                self.ended += 1

        client.on("*", any_event)
        await client.connect(
            self.server.url,
            socketio_path="/chat/ws/socket.io",
            headers={"Cookie": f"access_token={self.cookie}"},
            auth={"sessionId": str(uuid.uuid4()), "clientType": "webapp", "threadId": None},
            transports=["websocket"],
            wait_timeout=10,
        )
        await client.emit("connection_successful")
        await asyncio.sleep(0.5)
        return client

    def send(self, text: str) -> None:
        """Send a user message as Chainlit's web client does."""
        message = {
            "id": str(uuid.uuid4()),
            "threadId": "",
            "name": self.username,
            "type": "user_message",
            "output": text,
            "createdAt": "2026-11-29T08:00:00Z",
        }
        self._run(self.client.emit("client_message", {"message": message, "fileReferences": None}))

    def ask(self, text: str, timeout: float = 60) -> str:
        """Send ``text``; the texts the server sent back for it, once its turn has ended."""
        before_end, before_events = self.ended, len(self.events)
        self.send(text)

        async def wait() -> None:
            for _ in range(int(timeout * 20)):
                if self.ended > before_end:
                    return
                await asyncio.sleep(0.05)
            raise AssertionError(f"no end of turn in {timeout} s")

        self._run(wait())
        return "\n".join(str(data) for _, data in self.events[before_events:])

    @property
    def connected(self) -> bool:
        return self.client.connected

    def close(self) -> None:
        if self.client.connected:
            self._run(self.client.disconnect())
        self.pool.shutdown()
        self.loop.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("faults")
    # a short first-token deadline, and the retrieval backend as the fallback of a hung LLM
    env = {"AFINA_CHAT_FIRST_TOKEN_TIMEOUT_S": "2", "AFINA_LLM_FALLBACK_BACKEND": "faq"}
    with running_server(folder, f"sqlite:///{folder / 'afina.db'}", env=env) as running:
        with running.sessions.begin() as session:
            for name in ("ivan", "judy", "fuzz"):
                store.add_user(
                    session=session, username=name, password_hash=hash_password(PASSWORD)
                )
        yield running


def conversations_of(server: Server, username: str) -> list[Conversation]:
    with server.sessions() as session:
        user = store.get_user(session=session, username=username)
        query = select(Conversation).where(Conversation.user_id == user.id)
        return list(session.scalars(query))


def test_bad_messages_get_clear_answers_and_leave_nothing_half_written(server: Server):
    chat = Chat(server, "ivan")
    try:
        empty = chat.ask("\x01\x02\x03\x7f")
        assert "The message is empty" in empty and "too long" not in empty
        huge = chat.ask("x" * 1_000_000)  # a pasted megabyte: a message, not a dropped socket
        assert "The message is too long (1000000 characters; the limit is 4000)" in huge
        assert chat.connected
        assert conversations_of(server, "ivan") == []  # nothing titled with the rejected text
        kept = chat.ask("how much is shipping\ud800?")  # a lone surrogate: cleaned, kept
        assert "Shipping is free" in kept
    finally:
        chat.close()
    [conversation] = conversations_of(server, "ivan")
    with server.sessions() as session:
        question, answer = store.conversation_messages(
            session=session, conversation_id=conversation.id
        )
    assert (
        question.content == "how much is shipping\ufffd?" and conversation.title == question.content
    )
    assert answer.error is None and answer.content.startswith("Shipping is free")


texts = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=300) | (
    st.sampled_from(["\x00", "\ud83d", "\udfff", " \t\n", "\u202e", "\ufeff", "<script>", "😀"])
)


def test_generated_messages_never_break_the_socket_or_lose_a_question(server: Server):
    """Generated text of every Unicode category, surrogates included, over one socket."""
    chat = Chat(server, "fuzz")
    accepted: list[str] = []
    try:

        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
        @given(text=texts)
        def one(text: str) -> None:
            shown = chat.ask(text)
            assert chat.connected
            assert "Traceback" not in shown and "Something went wrong" not in shown
            if "The message is" not in shown:
                accepted.append(text)

        one()
    finally:
        chat.close()
    with server.sessions() as session:
        fuzz = store.get_user(session=session, username="fuzz")
        questions = session.scalar(
            select(func.count())
            .select_from(Message)
            .join(Conversation)
            .where(Conversation.user_id == fuzz.id, Message.role == "user")
        )
        answers = session.scalar(
            select(func.count())
            .select_from(Message)
            .join(Conversation)
            .where(Conversation.user_id == fuzz.id, Message.role == "assistant")
        )
    assert questions == answers == len(accepted) > 0


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | texts,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=12,
)
MESSAGE_KEYS = st.fixed_dictionaries(
    {"type": st.just("user_message"), "name": JSON, "createdAt": JSON, "threadId": JSON},
)


def test_malformed_socket_payloads_get_no_traceback_and_the_socket_keeps_working(
    server: Server,
):
    """Generated JSON as Chainlit's "client_message", either anything at all or a well-formed
    message whose text is not a string."""
    chat = Chat(server, "fuzz")
    try:

        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
        @given(payload=JSON, keys=MESSAGE_KEYS, output=JSON, shaped=st.booleans())
        def one(payload, keys, output, shaped: bool) -> None:
            if shaped:
                message = {**keys, "id": str(uuid.uuid4()), "output": output}
                payload = {"message": message, "fileReferences": None}
            before = chat.ended
            chat._run(chat.client.emit("client_message", payload))
            for _ in range(60):  # a payload the handler cannot take (None) ends no turn
                if chat.ended > before:
                    break
                chat._run(asyncio.sleep(0.05))
            assert chat.connected

        one()
        shown = "\n".join(str(data) for _, data in chat.events)
        assert "Traceback" not in shown and 'File "' not in shown
        assert "Something went wrong" not in shown  # text that is not text is "empty"
        assert "Shipping is free" in chat.ask("how much is shipping?")  # still answering
    finally:
        chat.close()


@pytest.fixture
def hanging_llm() -> Iterator[str]:
    """A real TCP server that accepts connections and never answers (a hung model server)."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
    stop.set()
    for conn in held:
        conn.close()
    listener.close()


def test_a_hung_llm_shows_work_in_progress_then_the_fallback_answers(
    server: Server, hanging_llm: str
):
    with server.sessions.begin() as session:
        config = {"base_url": hanging_llm, "max_retries": 2, "timeout_s": 30}
        store.put_backend(session=session, name="hung", kind="fewshot", config=config)
        store.set_setting(session=session, key=ACTIVE_BACKEND, value="hung")
    chat = Chat(server, "judy")
    try:
        shown = chat.ask("how much is shipping?")
    finally:
        chat.close()
        with server.sessions.begin() as session:
            store.set_setting(session=session, key=ACTIVE_BACKEND, value="faq")
    # the search step is on screen (running) before any answer token arrives
    search = [
        i
        for i, (event, data) in enumerate(chat.events)
        if event == "new_message" and "Knowledge-base search" in str(data)
    ]
    stream = [i for i, (event, _) in enumerate(chat.events) if event == "stream_start"]
    assert search and stream and search[0] < stream[0]
    assert "The answer service did not answer in time." in shown and "Shipping is free" in shown
    [conversation] = conversations_of(server, "judy")
    with server.sessions() as session:
        _, answer = store.conversation_messages(session=session, conversation_id=conversation.id)
    assert answer.fallback_from == "hung" and answer.backend_name == "faq"


def test_stop_while_the_model_is_silent_stores_the_turn_as_interrupted(
    server: Server, hanging_llm: str
):
    """The Stop button (Chainlit's "stop" event) while nothing was shown yet."""
    with server.sessions.begin() as session:
        config = {"base_url": hanging_llm, "max_retries": 0, "timeout_s": 30}
        store.put_backend(session=session, name="silent", kind="fewshot", config=config)
        store.set_setting(session=session, key=ACTIVE_BACKEND, value="silent")
        store.add_user(session=session, username="lena", password_hash=hash_password(PASSWORD))
    chat = Chat(server, "lena")
    try:
        chat.send("is anybody there?")
        for _ in range(100):
            if conversations_of(server, "lena"):
                break
            chat._run(asyncio.sleep(0.1))
        chat._run(asyncio.sleep(0.5))
        chat._run(chat.client.emit("stop"))
        chat._run(asyncio.sleep(2))
    finally:
        chat.close()
        with server.sessions.begin() as session:
            store.set_setting(session=session, key=ACTIVE_BACKEND, value="faq")
    [conversation] = conversations_of(server, "lena")
    with server.sessions() as session:
        question, answer = store.conversation_messages(
            session=session, conversation_id=conversation.id
        )
    assert question.content == "is anybody there?"
    assert answer.status == "interrupted" and answer.backend_name == "silent"


def test_a_question_cut_by_kill_9_is_marked_interrupted_after_restart(
    tmp_path: Path, hanging_llm: str
):
    url = f"sqlite:///{tmp_path / 'afina.db'}"
    with running_server(tmp_path, url) as first:
        with first.sessions.begin() as session:
            store.add_user(session=session, username="kim", password_hash=hash_password(PASSWORD))
            config = {"base_url": hanging_llm, "max_retries": 0, "timeout_s": 60}
            store.put_backend(session=session, name="hang", kind="fewshot", config=config)
            store.set_setting(session=session, key=ACTIVE_BACKEND, value="hang")
        chat = Chat(first, "kim")
        try:
            chat.send("where is my parcel?")
            for _ in range(100):  # the question is stored before the model is asked
                with first.sessions() as session:
                    if session.scalar(select(Message).where(Message.role == "user")):
                        break
                chat._run(asyncio.sleep(0.1))
            first.process.kill()  # SIGKILL: no clean-up of any kind
            first.process.wait()
        finally:
            chat.close()
    with running_server(tmp_path, url, seed=False) as second:
        with second.sessions() as session:
            question = session.scalar(select(Message).where(Message.role == "user"))
            assert question.content == "where is my parcel?"
            assert question.status == "interrupted"
            owner = session.get(User, session.get(Conversation, question.conversation_id).user_id)
            assert owner.username == "kim"
        login = requests.post(
            f"{second.chat}/login", data={"username": "kim", "password": PASSWORD}, timeout=30
        )
        thread = requests.get(
            f"{second.chat}/project/thread/{question.conversation_id}",
            cookies={"access_token": login.cookies["access_token"]},
            timeout=30,
        )
        assert thread.status_code == 200
        assert "This question was not answered: the server stopped" in thread.text


@pytest.fixture
def talking_llm() -> Iterator[str]:
    """An OpenAI-compatible stand-in that streams a long answer, a word every 0.1 s (a model
    decoding slowly, on cue: no real server can be held mid-answer for a test)."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def talk(conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)
            conn.sendall(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n"
            )
            for n in range(600):
                if stop.wait(0.1):
                    return
                delta = {"role": "assistant", "content": f"word{n} "}
                chunk = {
                    "id": "chatcmpl-1",
                    "object": "chat.completion.chunk",
                    "created": 0,
                    "model": "talker",
                    "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
                }
                try:
                    conn.sendall(f"data: {json.dumps(chunk)}\n\n".encode())
                except OSError:  # the server was killed
                    return

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn = listener.accept()[0]
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=talk, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
    stop.set()
    listener.close()


def shown_text(chat: Chat) -> str:
    """The answer text the browser received so far (stream start, then tokens)."""
    parts = []
    for event, data in list(chat.events):
        if event == "stream_start" and isinstance(data, dict):
            parts.append(str(data.get("output") or ""))
        elif event == "stream_token" and isinstance(data, dict):
            parts.append(str(data.get("token") or ""))
    return "".join(parts)


def test_an_answer_cut_by_kill_9_mid_stream_keeps_what_the_user_saw(
    tmp_path: Path, talking_llm: str
):
    url = f"sqlite:///{tmp_path / 'afina.db'}"
    with running_server(tmp_path, url, env={"AFINA_CHAT_CHECKPOINT_S": "0.3"}) as first:
        with first.sessions.begin() as session:
            store.add_user(session=session, username="max", password_hash=hash_password(PASSWORD))
            config = {"base_url": talking_llm, "max_retries": 0, "max_tokens": 2000}
            store.put_backend(session=session, name="talker", kind="fewshot", config=config)
            store.set_setting(session=session, key=ACTIVE_BACKEND, value="talker")
        chat = Chat(first, "max")
        try:
            chat.send("tell me everything about shipping")
            stored = ""
            for _ in range(300):  # stored while it streams, before it ends
                with first.sessions() as session:
                    stored = (
                        session.scalar(
                            select(Message.content).where(
                                Message.role == "assistant", Message.status == "streaming"
                            )
                        )
                        or ""
                    )
                if len(stored.split()) >= 5 and shown_text(chat).startswith(stored):
                    break
                chat._run(asyncio.sleep(0.1))
            first.process.kill()  # SIGKILL: no clean-up of any kind
            first.process.wait()
            chat._run(asyncio.sleep(0.5))  # what was on its way arrives
            shown = shown_text(chat)
        finally:
            chat.close()
    assert len(stored.split()) >= 5, "no answer was stored while it streamed"
    with running_server(tmp_path, url, seed=False) as second:
        with second.sessions() as session:
            question = session.scalar(select(Message).where(Message.role == "user"))
            answer = session.scalar(select(Message).where(Message.role == "assistant"))
        assert question.status is None  # it has its (partial) answer
        assert answer.status == "partial" and "server stopped" in answer.error
        assert answer.content.startswith(stored) and shown.startswith(answer.content)
        assert answer.backend_name == "talker"
        login = requests.post(
            f"{second.chat}/login", data={"username": "max", "password": PASSWORD}, timeout=30
        )
        thread = requests.get(
            f"{second.chat}/project/thread/{question.conversation_id}",
            cookies={"access_token": login.cookies["access_token"]},
            timeout=30,
        )
        assert thread.status_code == 200
        assert answer.content.strip() in thread.text
        assert "The answer was cut off before it finished." in thread.text


@pytest.mark.parametrize(
    ("question", "error"),
    [
        (b"how much is ship\xffping?", "the question is not valid UTF-8"),
        (b"\x01\x02\x03", "The message is empty"),
    ],
)
def test_afina_ask_refuses_bad_text_in_one_line_and_stores_nothing(
    tmp_path: Path, question: bytes, error: str
):
    """Bytes straight from a shell script that is not UTF-8, or only control characters."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AFINA_")}
    environ.update(AFINA_HOME=str(tmp_path / "var"), LANG="C.UTF-8", LC_ALL="C.UTF-8")
    done = subprocess.run(
        [sys.executable.encode(), b"-m", b"chatbot.cli.main", b"ask", question],
        capture_output=True,
        env=environ,
        cwd=tmp_path,
        timeout=120,
    )
    stderr = done.stderr.decode("utf-8", "replace")
    assert done.returncode == 1 and error in " ".join(stderr.split())
    assert "Traceback" not in stderr
    assert not (tmp_path / "var" / "afina.db").exists()  # refused before anything was opened
