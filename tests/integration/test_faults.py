"""Turns under faults: a hanging or stalling LLM endpoint, a reader that stops, a crash, a
database that drops its connections. Nothing the user saw may be lost; every cut is marked.

The hanging endpoint is a real TCP server that never answers; the stalling one is a local HTTP
stand-in for an OpenAI-compatible server (it streams one chunk in OpenAI's format, then goes
silent), since no real server can be made to stall on cue. PostgreSQL is real, reached through
a local TCP relay that the test cuts to play a database restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from backends import registry
from backends.base import Backend, Conversation, ReplyMeta
from chatbot.backend_pool import ACTIVE_BACKEND
from chatbot.db import store
from chatbot.db.models import Message
from chatbot.db.recovery import mark_interrupted
from chatbot.errors import DatabaseUnavailable
from chatbot.journal import Journal
from chatbot.runtime import Runtime
from chatbot.settings import Settings

pytestmark = pytest.mark.integration
QUESTION = "What does delivery cost?"
FIRST_WORDS = "Shipping costs "


@pytest.fixture
def make_runtime(
    postgres_url: str, small_index_dir: Path, tmp_path: Path
) -> Iterator[Callable[..., Runtime]]:
    """A runtime on PostgreSQL with ``faq`` (retrieval) and ``llm`` (few-shot at ``config``)."""
    opened: list[Runtime] = []

    def make(config: dict | None = None, *, url: str = postgres_url, **chat) -> Runtime:
        settings = Settings(home=tmp_path / "var", database={"url": url}, chat=chat)
        rt = Runtime.open(settings)
        with rt.sessions.begin() as session:
            faq = {"index_dir": str(small_index_dir)}
            store.put_backend(session=session, name="faq", kind="retrieval", config=faq)
            active = "faq"
            if config is not None:
                store.put_backend(session=session, name="llm", kind="fewshot", config=config)
                active = "llm"
            store.set_setting(session=session, key=ACTIVE_BACKEND, value=active)
        opened.append(rt)
        return rt

    yield make
    for rt in opened:
        rt.engine.dispose()


async def new_conversation(rt: Runtime) -> str:
    with rt.sessions.begin() as session:
        user = store.ensure_user(session=session, username="agent1")
    return await rt.service.start_conversation(user_id=user.id)


def stored(rt: Runtime, conversation: str) -> list[Message]:
    with rt.sessions() as session:
        return store.conversation_messages(session=session, conversation_id=conversation)


@pytest.fixture
def stalling_url() -> Iterator[str]:
    """An OpenAI-compatible stand-in that streams one chunk of an answer, then says nothing."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()
    chunk = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "stand-in",
        "choices": [
            {
                "index": 0,
                "delta": {"role": "assistant", "content": FIRST_WORDS},
                "finish_reason": None,
            }
        ],
    }

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.recv(65536)
            conn.sendall(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n"
                + f"data: {json.dumps(chunk)}\n\n".encode()
            )
            held.append(conn)  # then silence

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/v1"
    stop.set()
    thread.join(timeout=2)
    for conn in held:
        conn.close()
    server.close()


async def test_a_hanging_llm_endpoint_gets_a_first_token_deadline_then_the_fallback(
    make_runtime, stalled_url: str
):
    """The endpoint accepts and never answers; the SDK would wait 30 s x 3 tries."""
    rt = make_runtime(
        {"base_url": stalled_url, "timeout_s": 30, "max_retries": 2}, **{"first_token_timeout_s": 1}
    )
    conversation = await new_conversation(rt)
    start = time.perf_counter()
    reply = rt.service.reply(conversation_id=conversation, text=QUESTION)
    text = "".join([chunk async for chunk in reply])
    print(f"hanging endpoint: fallback answer after {time.perf_counter() - start:.1f} s")
    question, answer = stored(rt, conversation)
    assert text.startswith("The answer service did not answer in time.")
    # the notice is shown, not stored as the answer (it must never become a training target)
    assert "Shipping is free" in text and text.endswith(answer.content)
    assert answer.content.startswith("Shipping is free")
    assert answer.details["fallback"]["notice"].startswith("The answer service did not answer")
    assert answer.backend_name == "faq" and answer.fallback_from == "llm"
    assert "no first token within 1 s" in answer.details["fallback"]["error"]
    assert question.content == QUESTION and answer.status is None


async def test_an_llm_going_silent_mid_answer_keeps_what_was_shown(make_runtime, stalling_url):
    rt = make_runtime({"base_url": stalling_url, "max_retries": 0}, idle_timeout_s=1)
    conversation = await new_conversation(rt)
    reply = rt.service.reply(conversation_id=conversation, text=QUESTION)
    text = "".join([chunk async for chunk in reply])
    assert text == FIRST_WORDS
    assert reply.result.error == "The answer service did not answer in time."
    assert reply.result.status == "partial"
    _, answer = stored(rt, conversation)
    assert answer.content == FIRST_WORDS and answer.status == "partial"
    assert "no token within 1 s" in answer.error and answer.backend_name == "llm"


async def test_a_reader_that_stops_mid_answer_leaves_the_partial_answer_stored(make_runtime):
    """The Stop button or a closed tab: the stream is closed after the first chunk."""
    rt = make_runtime()
    conversation = await new_conversation(rt)
    reply = rt.service.reply(conversation_id=conversation, text=QUESTION)
    async with contextlib.aclosing(aiter(reply)) as stream:
        first = await anext(stream)
    question, answer = stored(rt, conversation)
    assert question.content == QUESTION
    assert answer.content == first and answer.status == "partial"
    assert answer.backend_name == "faq" and answer.error


async def test_a_cancelled_turn_before_any_text_is_stored_as_interrupted(
    make_runtime, stalled_url: str
):
    """The task is cancelled while the model has not said anything yet (a shutdown, Stop)."""
    rt = make_runtime({"base_url": stalled_url, "max_retries": 0})
    conversation = await new_conversation(rt)
    reply = rt.service.reply(conversation_id=conversation, text=QUESTION)
    started = asyncio.Event()

    async def read() -> None:
        async with contextlib.aclosing(aiter(reply)) as stream:
            started.set()
            async for _ in stream:
                pass

    task = asyncio.create_task(read())
    await started.wait()
    for _ in range(50):  # until the question is stored and the backend is being waited on
        await asyncio.sleep(0.1)
        if len(stored(rt, conversation)) == 1:
            break
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    question, answer = stored(rt, conversation)
    assert question.content == QUESTION
    assert answer.status == "interrupted" and answer.content == "" and answer.error


def test_questions_left_without_an_answer_are_marked_interrupted(database_url: str, tmp_path):
    """What a kill -9 leaves: a question as the last message; marked on the next start."""
    rt = Runtime.open(Settings(home=tmp_path / "var", database={"url": database_url}))
    try:
        with rt.sessions.begin() as session:
            user = store.ensure_user(session=session, username="agent1")
            done = store.add_conversation(session=session, user_id=user.id, locale="en")
            store.add_message(session=session, conversation_id=done.id, role="user", content="a")
            store.add_message(
                session=session, conversation_id=done.id, role="assistant", content="b"
            )
            cut = store.add_conversation(session=session, user_id=user.id, locale="en")
            store.add_message(session=session, conversation_id=cut.id, role="user", content="c")
            store.add_message(
                session=session, conversation_id=cut.id, role="assistant", content="d"
            )
            store.add_message(session=session, conversation_id=cut.id, role="user", content="e")
        with rt.sessions.begin() as session:
            assert mark_interrupted(session=session) == 1
        with rt.sessions.begin() as session:
            assert mark_interrupted(session=session) == 0  # once only
        with rt.sessions() as session:
            rows = session.execute(select(Message.content, Message.status)).all()
        assert sorted(rows) == [
            ("a", None),
            ("b", None),
            ("c", None),
            ("d", None),
            ("e", "interrupted"),
        ]
    finally:
        rt.engine.dispose()


class Relay:
    """A TCP relay to PostgreSQL that the test can cut, like a database restart."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.down = threading.Event()
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.1)
        self.port = self.server.getsockname()[1]
        self.links: list[socket.socket] = []
        self.stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                client, _ = self.server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self.down.is_set():
                client.close()  # "the database is restarting": connections are refused
                continue
            upstream = socket.create_connection(self.target)
            self.links += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_RDWR)

    def restart(self, seconds: float) -> None:
        """Drop every open connection and refuse new ones for ``seconds``."""
        self.down.set()
        for link in self.links:
            with contextlib.suppress(OSError):
                link.shutdown(socket.SHUT_RDWR)
                link.close()
        self.links.clear()
        threading.Timer(seconds, self.down.clear).start()

    def close(self) -> None:
        self.stop.set()
        self.server.close()


async def test_a_database_restart_between_turns_costs_no_turn(make_runtime, postgres_url: str):
    url = make_url(postgres_url)
    relay = Relay((url.host or "127.0.0.1", url.port or 5432))
    try:
        rt = make_runtime(url=url.set(host="127.0.0.1", port=relay.port).render_as_string(False))
        conversation = await new_conversation(rt)
        for n in range(6):
            if n in (2, 4):
                relay.restart(0.5)  # the pooled connection dies; the next connect is refused
            reply = rt.service.reply(conversation_id=conversation, text=f"{QUESTION} #{n}")
            text = "".join([chunk async for chunk in reply])
            assert reply.result.error is None and "Shipping is free" in text
        messages = stored(rt, conversation)
        assert [m.content for m in messages if m.role == "user"] == [
            f"{QUESTION} #{n}" for n in range(6)
        ]
        assert [m.role for m in messages] == ["user", "assistant"] * 6
    finally:
        relay.close()


class CutsTheDatabase(Backend):
    """Answers like a model, but cuts the database for a while just before it answers.

    Not a fake of an external service: it times the outage inside a turn, on cue."""

    kind = "cuts-database"
    cut: Callable[[], None] = staticmethod(lambda: None)

    def __init__(self, config: dict):
        del config

    async def stream(self, conversation: Conversation, meta: ReplyMeta) -> AsyncIterator[str]:
        meta.model = "outage-probe"
        CutsTheDatabase.cut()
        yield "Shipping is free over 50 EUR."


async def test_a_longer_database_outage_keeps_the_turn_and_writes_it_back(
    make_runtime, postgres_url: str
):
    """The database stays away past the retry: once when the question is stored, once when
    the answer is; both are kept in the journal and written back by the next turn."""
    url = make_url(postgres_url)
    relay = Relay((url.host or "127.0.0.1", url.port or 5432))
    registry.KINDS[CutsTheDatabase.kind] = CutsTheDatabase
    try:
        rt = make_runtime(url=url.set(host="127.0.0.1", port=relay.port).render_as_string(False))
        with rt.sessions.begin() as session:
            store.put_backend(session=session, name="cuts", kind=CutsTheDatabase.kind, config={})
        conversation = await new_conversation(rt)

        relay.restart(3.0)  # longer than the one retry
        with pytest.raises(DatabaseUnavailable, match=r"unsaved-turns\.jsonl"):
            _ = [c async for c in rt.service.reply(conversation_id=conversation, text="lost 1?")]
        time.sleep(3.0)

        CutsTheDatabase.cut = staticmethod(lambda: relay.restart(3.0))
        reply = rt.service.reply(conversation_id=conversation, text="lost 2?", backend="cuts")
        shown: list[str] = []

        async def read() -> None:
            async for chunk in reply:
                shown.append(chunk)

        with pytest.raises(DatabaseUnavailable):
            await read()
        assert shown == ["Shipping is free over 50 EUR."]  # the user saw the answer
        assert len(rt.service.journal.pending()) == 2
        time.sleep(3.0)

        CutsTheDatabase.cut = staticmethod(lambda: None)
        reply = rt.service.reply(conversation_id=conversation, text="back?")
        _ = [c async for c in reply]
        assert reply.result.error is None
        assert rt.service.journal.pending() == []
        rows = [(m.role, m.content, m.status) for m in stored(rt, conversation)]
        assert rows == [
            ("user", "lost 1?", "interrupted"),
            ("user", "lost 2?", None),
            ("assistant", "Shipping is free over 50 EUR.", None),
            ("user", "back?", None),
            ("assistant", reply.result.text, None),
        ]
        lost = stored(rt, conversation)[0]
        assert "the database was unavailable" in lost.error
    finally:
        registry.KINDS.pop(CutsTheDatabase.kind, None)
        relay.close()


def test_the_journal_survives_a_cut_line_and_keeps_what_still_fails(tmp_path: Path):
    """A crash while appending leaves half a line; a record whose write fails stays."""
    journal = Journal(tmp_path / "unsaved-turns.jsonl")
    journal.add({"kind": "question", "n": 1})
    journal.add({"kind": "answer", "n": 2})
    with journal.path.open("a") as handle:
        handle.write('{"kind": "quest')  # the process died here
    written: list[int] = []

    def write(record: dict) -> None:
        if record["n"] == 2:
            raise ConnectionError("still down")
        written.append(record["n"])

    assert journal.replay(write) == 1 and written == [1]
    assert journal.pending() == [{"kind": "answer", "n": 2}]
    assert journal.replay(lambda record: None) == 1
    assert journal.pending() == [] and not journal.path.exists()
