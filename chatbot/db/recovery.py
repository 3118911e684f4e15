"""After a crash or an outage: unanswered questions are marked, unsaved turns written back."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, exists, select, update
from sqlalchemy.orm import Session, aliased

from chatbot.db import answer_store, store
from chatbot.db.models import Conversation, Message

log = logging.getLogger(__name__)

INTERRUPTED = "interrupted"
CUT = "the server stopped while this answer was streaming; the text shown until then is kept"


def mark_interrupted(*, session: Session) -> int:
    """Mark each question that is the last message of its conversation and has no status as
    "interrupted" (its answer never came: the process died mid-turn); returns how many.

    Run at start, before any turn: a turn in flight in another process (``afina ask``) could
    otherwise be marked; its answer is still stored when it comes."""
    later = aliased(Message)
    unanswered = (
        select(Message.id)
        .where(Message.role == "user", Message.status.is_(None))
        .where(
            ~exists().where(
                and_(
                    later.conversation_id == Message.conversation_id,
                    later.id != Message.id,
                    later.created_at >= Message.created_at,
                )
            )
        )
    )
    return _mark_interrupted(session, unanswered)


def _mark_interrupted(session: Session, questions: Select[str]) -> int:
    """Mark the questions ``questions`` selects as interrupted, 500 at a time; how many."""
    ids = list(session.scalars(questions))
    for start in range(0, len(ids), 500):
        session.execute(
            update(Message)
            .where(Message.id.in_(ids[start : start + 500]))
            .values(status=INTERRUPTED)
        )
    return len(ids)


def write_unsaved(*, session: Session, record: dict[str, Any]) -> None:
    """Write a record kept while the database was down (``chatbot.journal``); idempotent.

    "question": the question, marked interrupted with the database error (its turn stopped);
    "answer": the answer the user saw, with its provenance, after its stored question."""
    conversation = session.get(Conversation, record["conversation_id"])
    if conversation is None:
        if record.get("user_id") is None:
            log.warning(
                "unsaved %s dropped: no conversation %s", record["kind"], record["conversation_id"]
            )
            return
        conversation = store.add_conversation(
            session=session,
            user_id=int(record["user_id"]),
            locale=str(record.get("locale") or "en"),
            conversation_id=record["conversation_id"],
        )
    at = datetime.fromisoformat(record["at"])
    if record["kind"] == "question":
        if session.get(Message, record["question_id"]) is None:
            store.add_message(
                session=session,
                conversation_id=conversation.id,
                role="user",
                content=record["question"],
                id=record["question_id"],
                created_at=at,
                status=INTERRUPTED,
                error=f"not answered, the database was unavailable: {record.get('error')}",
            )
            conversation.title = conversation.title or record["question"][:80]
    else:
        stored = session.get(Message, record["answer"]["id"])
        if stored is None:
            store.add_message(
                session=session,
                conversation_id=conversation.id,
                role="assistant",
                created_at=at,
                **record["answer"],
            )
        elif stored.status is not None:  # a checkpoint of it (or this record, written before)
            answer_store.save_answer(
                session=session,
                conversation_id=conversation.id,
                fields=record["answer"],
                checkpointed=True,
            )
    session.flush()


def mark_cut_answers(*, session: Session) -> int:
    """Answers a stopped process left "streaming" become "partial" (what the user saw), or
    "interrupted" when empty, with an error saying so; returns how many.

    Harmless to an answer another process is still streaming: its next checkpoint marks it
    "streaming" again and its end stores it whole."""
    cut = (Message.role == "assistant") & (Message.status == answer_store.STREAMING)
    partial = session.execute(
        update(Message).where(cut, Message.content != "").values(status="partial", error=CUT)
    )
    empty = session.execute(update(Message).where(cut).values(status=INTERRUPTED, error=CUT))
    return int(partial.rowcount or 0) + int(empty.rowcount or 0)  # type: ignore[attr-defined]


def mark_unanswered(*, session: Session, since: datetime, until: datetime) -> int:
    """Mark questions asked between ``since`` and ``until`` that got no answer before the
    next question of their conversation as "interrupted"; returns how many.

    For one process of several that died (``afina serve --workers``): its sessions resumed
    their threads on another process and went on, so its cut questions are no longer the last
    message of their conversation (``mark_interrupted`` would miss them)."""
    answer, later = aliased(Message), aliased(Message)
    answered = exists().where(
        answer.conversation_id == Message.conversation_id,
        answer.role == "assistant",
        answer.created_at >= Message.created_at,
        ~exists().where(
            later.conversation_id == Message.conversation_id,
            later.role == "user",
            later.created_at > Message.created_at,
            later.created_at < answer.created_at,
        ),
    )
    unanswered = select(Message.id).where(
        Message.role == "user",
        Message.status.is_(None),
        Message.created_at >= since,
        Message.created_at <= until,
        ~answered,
    )
    return _mark_interrupted(session, unanswered)
