"""An answer is stored while it streams (one row, checkpointed), so a crash keeps what the user
saw; a quick answer costs no extra write; a row left streaming by a crash becomes "partial".

The slow backend is in process: it stands for a model decoding a long answer and lets the test
look at the database mid-answer. The killed ``afina serve`` is in tests/e2e/test_faults.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import event, select

from backends import registry
from backends.base import Backend, Conversation, ReplyMeta
from chatbot.backend_pool import ACTIVE_BACKEND
from chatbot.db import recovery, store
from chatbot.db.models import Message
from chatbot.runtime import Runtime
from chatbot.settings import Settings
from chatbot.training.export import ExportOptions, run_export
from chatbot.training.split import SplitPlan

pytestmark = pytest.mark.integration
WORDS = 40


class SlowBackend(Backend):
    """Yields ``WORDS`` words, one every 50 ms (a model decoding a long answer)."""

    kind = "slow"

    def __init__(self, config):
        pass

    async def stream(self, conversation: Conversation, meta: ReplyMeta) -> AsyncIterator[str]:
        meta.model = "slow-1"
        for n in range(WORDS):
            await asyncio.sleep(0.05)
            yield f"word{n} "


@pytest.fixture
def runtime(database_url: str, small_index_dir: Path, tmp_path: Path) -> Iterator[Runtime]:
    settings = Settings(
        home=tmp_path / "var",
        database={"url": database_url},
        chat={"checkpoint_s": 0.3, "stream_batch_s": 0},
    )
    rt = Runtime.open(settings)
    registry.KINDS[SlowBackend.kind] = SlowBackend
    with rt.sessions.begin() as session:
        faq = {"index_dir": str(small_index_dir)}
        store.put_backend(session=session, name="faq", kind="retrieval", config=faq)
        store.put_backend(session=session, name="slow", kind="slow", config={})
    yield rt
    registry.KINDS.pop(SlowBackend.kind, None)
    rt.engine.dispose()


def use(rt: Runtime, name: str) -> None:
    with rt.sessions.begin() as session:
        store.set_setting(session=session, key=ACTIVE_BACKEND, value=name)


async def new_conversation(rt: Runtime) -> str:
    with rt.sessions.begin() as session:
        user = store.ensure_user(session=session, username="agent1")
    return await rt.service.start_conversation(user_id=user.id)


def answers(rt: Runtime, conversation: str) -> list[Message]:
    with rt.sessions() as session:
        messages = store.conversation_messages(session=session, conversation_id=conversation)
    return [m for m in messages if m.role == "assistant"]


async def test_long_answer_is_stored_as_it_streams_then_finished_in_the_same_row(
    runtime: Runtime,
):
    use(runtime, "slow")
    conversation = await new_conversation(runtime)
    reply = runtime.service.reply(conversation_id=conversation, text="tell me a long story")
    shown, mid_answer = "", None
    async for chunk in aiter(reply):
        shown += chunk
        if mid_answer is None and len(shown.split()) >= 20:  # ~1 s in: checkpoints are due
            mid_answer = answers(runtime, conversation)
            with runtime.sessions() as session:
                seen_by_model = store.conversation_turns(
                    session=session, conversation_id=conversation
                )
    [stored] = mid_answer or []
    assert stored.status == "streaming" and stored.error
    assert stored.content and shown.startswith(stored.content)  # what the user saw, so far
    assert [role for role, _ in seen_by_model] == ["user"]  # not a finished answer yet
    [final] = answers(runtime, conversation)
    assert final.id == stored.id == reply.result.reply_id  # one row per answer
    assert final.status is None and final.error is None
    assert final.content == shown and len(shown.split()) == WORDS and final.model == "slow-1"


async def test_quick_answer_costs_no_extra_write(runtime: Runtime):
    conversation = await new_conversation(runtime)
    writes: list[str] = []

    def record(_conn, _cursor, statement: str, *_args) -> None:
        if statement.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE")):
            writes.append(" ".join(statement.split()[:3]).lower())

    event.listen(runtime.engine, "before_cursor_execute", record)
    try:
        reply = runtime.service.reply(conversation_id=conversation, text="how much is shipping?")
        text = "".join([c async for c in reply])
    finally:
        event.remove(runtime.engine, "before_cursor_execute", record)
    assert text.startswith("Shipping is free")
    # the question and the answer, each with its conversation's last-activity time
    assert sorted(writes) == sorted(["insert into messages"] * 2 + ["update conversations set"] * 2)


async def test_answer_left_streaming_by_a_crash_is_kept_as_partial_and_never_trained_on(
    runtime: Runtime, tmp_path: Path
):
    """What a killed process leaves: a question and its answer's last checkpoint."""
    conversation = await new_conversation(runtime)
    done = runtime.service.reply(conversation_id=conversation, text="how much is shipping?")
    _ = [c async for c in done]  # a finished turn before: it stays as it was
    with runtime.sessions.begin() as session:
        store.add_message(
            session=session, conversation_id=conversation, role="user", content="and returns?"
        )
    cut = {"id": "c" * 36, "content": "Returns are accepted within", "backend_name": "slow"}
    runtime.service._checkpoint(conversation, cut, True)
    with runtime.sessions.begin() as session:
        assert recovery.mark_cut_answers(session=session) == 1
        assert recovery.mark_interrupted(session=session) == 0  # the question has its answer
    with runtime.sessions.begin() as session:
        assert recovery.mark_cut_answers(session=session) == 0  # once only
        answer = session.get(Message, cut["id"])
        assert answer.status == "partial" and answer.content == "Returns are accepted within"
        assert "server stopped" in answer.error
        turns = store.conversation_turns(session=session, conversation_id=conversation)
    assert [role for role, _ in turns] == ["user", "assistant", "user"]  # the model's view
    plan = SplitPlan(validation=0.0, test=0.0, seed=0)
    options = ExportOptions.from_settings(
        runtime.settings.training, near_duplicates=False, plan=plan
    )
    run_export(sessions=runtime.sessions, out=tmp_path / "out", options=options, created_by="t")
    exported = (tmp_path / "out" / "train.jsonl").read_text(encoding="utf-8")
    contents = [
        m["content"] for line in exported.splitlines() for m in json.loads(line)["messages"]
    ]
    assert any(c.startswith("Shipping is free") for c in contents)
    assert not any("Returns are accepted" in c or c == "and returns?" for c in contents)


async def test_empty_answer_left_streaming_is_marked_interrupted(runtime: Runtime):
    conversation = await new_conversation(runtime)
    with runtime.sessions.begin() as session:
        store.add_message(
            session=session, conversation_id=conversation, role="user", content="hello?"
        )
    runtime.service._checkpoint(conversation, {"id": "e" * 36, "content": ""}, True)
    with runtime.sessions.begin() as session:
        assert recovery.mark_cut_answers(session=session) == 1
        status = session.scalar(select(Message.status).where(Message.id == "e" * 36))
    assert status == "interrupted"
