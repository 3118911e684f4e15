"""A worker of ``afina serve --workers`` died: its cut questions are marked, nothing else."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from chatbot.db import store
from chatbot.db.models import Message
from chatbot.db.recovery import mark_unanswered
from chatbot.runtime import Runtime
from chatbot.settings import Settings

pytestmark = pytest.mark.integration
T0 = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_questions_cut_by_a_dead_worker_are_marked_even_when_the_chat_went_on(
    database_url: str, tmp_path: Path
):
    rt = Runtime.open(Settings(home=tmp_path / "var", database={"url": database_url}))
    try:
        with rt.sessions.begin() as session:
            user = store.ensure_user(session=session, username="agent1")
            chat = store.add_conversation(session=session, user_id=user.id, locale="en")
            other = store.add_conversation(session=session, user_id=user.id, locale="en")
            rows = [  # (conversation, role, content, seconds)
                (chat, "user", "answered", 1),
                (chat, "assistant", "answer", 2),
                (chat, "user", "cut, then asked again on another worker", 3),
                (chat, "user", "asked again", 10),
                (chat, "assistant", "answer again", 11),
                (other, "user", "before the worker started", -100),
                (other, "user", "cut, the last message", 4),
                (other, "user", "after the worker died", 30),
            ]
            for conversation, role, content, seconds in rows:
                store.add_message(
                    session=session,
                    conversation_id=conversation.id,
                    role=role,
                    content=content,
                    created_at=at(seconds),
                )
        with rt.sessions.begin() as session:  # the worker lived from T0 to T0 + 5 s
            assert mark_unanswered(session=session, since=at(0), until=at(5)) == 2
        with rt.sessions.begin() as session:
            assert mark_unanswered(session=session, since=at(0), until=at(5)) == 0  # once only
        with rt.sessions() as session:
            marked = session.scalars(
                select(Message.content).where(Message.status == "interrupted")
            ).all()
        cut = ["cut, the last message", "cut, then asked again on another worker"]
        assert sorted(marked) == cut
    finally:
        rt.engine.dispose()
