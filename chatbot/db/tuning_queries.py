"""Queries for embedder tuning: customer questions whose answer an agent approved or corrected."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import exists, func, or_, select
from sqlalchemy.orm import Session

from chatbot.db.models import Conversation, Correction, Feedback, Message
from chatbot.db.training_queries import conversation_filter


@dataclass(frozen=True)
class LabelledQuestion:
    """A question and what answered it: the first source of an approved answer, or a correction."""

    conversation_id: str
    question: str
    locale: str  # the answer's language: its first source's, else the conversation's
    entry_id: str | None  # approved: the first source's entry id
    correction: str | None  # corrected: the agent's answer (the latest correction)


def tuning_conditions() -> list[Any]:
    """Conversations that may train the embedder: the export's rules (never evaluation chats,
    never ``exclude_from_training``), and never chats pinned to an export's test split."""
    pinned_test = Conversation.pinned_split == "test"
    return [*conversation_filter(), or_(Conversation.pinned_split.is_(None), ~pinned_test)]


def labelled_questions(*, session: Session) -> list[LabelledQuestion]:
    """Each approved (net rating > 0 or an admin's approval, not a hand-over) or corrected
    assistant answer with the user question just before it, in conversation order; never one
    an admin rejected (nor its correction)."""
    rating = (
        select(func.coalesce(func.sum(Feedback.value), 0))
        .where(Feedback.message_id == Message.id)
        .scalar_subquery()
    )
    corrected = exists().where(Correction.message_id == Message.id)
    answers = session.execute(
        select(Message.id, Message.conversation_id, Message.sources, Conversation.locale)
        .join(Conversation, Conversation.id == Message.conversation_id)
        .where(
            *tuning_conditions(),
            Message.role == "assistant",
            Message.error.is_(None),
            or_(Message.review_status.is_(None), Message.review_status != "rejected"),
            or_(
                corrected,
                ((rating > 0) | (Message.review_status == "approved")) & Message.handoff.is_(False),
            ),
        )
        .order_by(Message.conversation_id, Message.created_at)
    ).all()
    if not answers:
        return []
    questions = _questions_before(session, sorted({a.conversation_id for a in answers}))
    corrections = _latest_corrections(session, [a.id for a in answers])
    found = []
    for answer in answers:
        question = questions.get(answer.id)
        if not question:
            continue
        first = (answer.sources or [{}])[0] if answer.sources else {}
        entry_id = first.get("id") if isinstance(first, dict) else None
        locale = (first.get("locale") if isinstance(first, dict) else None) or answer.locale
        correction = corrections.get(answer.id)
        if correction is None and not entry_id:
            continue
        found.append(
            LabelledQuestion(
                conversation_id=answer.conversation_id,
                question=question,
                locale=locale,
                entry_id=None if correction is not None else entry_id,
                correction=correction,
            )
        )
    return found


def _questions_before(session: Session, conversation_ids: list[str]) -> dict[str, str]:
    """For each assistant message of these conversations, the user message just before it."""
    last_user: dict[str, str] = {}
    before: dict[str, str] = {}
    for start in range(0, len(conversation_ids), 500):
        rows = session.execute(
            select(Message.conversation_id, Message.id, Message.role, Message.content)
            .where(Message.conversation_id.in_(conversation_ids[start : start + 500]))
            .order_by(Message.conversation_id, Message.created_at, Message.role.desc())
        )
        for conversation_id, message_id, role, content in rows:
            if role == "user":
                last_user[conversation_id] = content
            elif role == "assistant" and conversation_id in last_user:
                before[message_id] = last_user[conversation_id]
    return before


def _latest_corrections(session: Session, message_ids: list[str]) -> dict[str, str]:
    """The latest correction of each of these messages."""
    latest: dict[str, str] = {}
    by_message: dict[str, list[str]] = defaultdict(list)
    for start in range(0, len(message_ids), 500):
        rows = session.execute(
            select(Correction.message_id, Correction.content)
            .where(Correction.message_id.in_(message_ids[start : start + 500]))
            .order_by(Correction.created_at, Correction.id)
        )
        for message_id, content in rows:
            by_message[message_id].append(content)
    for message_id, contents in by_message.items():
        latest[message_id] = contents[-1]
    return latest
