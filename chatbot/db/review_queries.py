"""Queries of the admin review page: answers worth a look, and marking what training may use."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, aliased

from chatbot.db.models import Conversation, Correction, Feedback, Message, User, utcnow
from chatbot.errors import InputError, NotFoundError

REVIEW_STATUSES = ("approved", "rejected")


@dataclass(frozen=True)
class ReviewItem:
    """An answer to review, with its question, rating, newest correction and why it is listed."""

    message_id: str
    conversation_id: str
    created_at: datetime
    agent: str
    locale: str
    backend: str | None
    question: str
    answer: str
    rating: int
    correction: str | None
    handoff: bool
    fallback_from: str | None
    excluded: bool
    review_status: str | None = None  # "approved" / "rejected" by an admin; None = to review
    reviewed_by: str | None = None
    reviewed_at: datetime | None = None

    @property
    def reasons(self) -> list[str]:
        """downvoted / corrected / handed over / fallback."""
        marks = [
            ("downvoted", self.rating < 0),
            ("upvoted", self.rating > 0),
            ("corrected", self.correction is not None),
            ("handed over", self.handoff),
            ("fallback", self.fallback_from is not None),
        ]
        return [name for name, on in marks if on]


def review_items(
    *,
    session: Session,
    since: datetime | None = None,
    until: datetime | None = None,
    backend: str | None = None,
    locale: str | None = None,
    agent: str | None = None,
    limit: int = 100,
) -> list[ReviewItem]:
    """The newest answers that were downvoted, corrected, handed over or from the fallback."""
    rating = (
        select(func.sum(Feedback.value))
        .where(Feedback.message_id == Message.id)
        .correlate(Message)
        .scalar_subquery()
    )
    corrected = select(Correction.id).where(Correction.message_id == Message.id).exists()
    reviewer = aliased(User)
    query = (
        select(Message, Conversation, User.username, rating.label("rating"), reviewer.username)
        .join(Conversation, Conversation.id == Message.conversation_id)
        .join(User, User.id == Conversation.user_id)
        .outerjoin(reviewer, reviewer.id == Message.reviewed_by)
        .where(Message.role == "assistant", Message.error.is_(None))
        .where(Conversation.origin == "chat")
        .where(
            or_(
                rating < 0,
                corrected,
                Message.handoff.is_(True),
                Message.fallback_from.isnot(None),
                Message.review_status.isnot(None),
            )
        )
    )
    if since is not None:
        query = query.where(Message.created_at >= since)
    if until is not None:
        query = query.where(Message.created_at < until)
    if backend:
        query = query.where(Message.backend_name == backend)
    if locale:
        query = query.where(Conversation.locale == locale)
    if agent:
        query = query.where(User.username == agent)
    rows = session.execute(query.order_by(Message.created_at.desc()).limit(limit)).all()
    ids = [m.id for m, *_ in rows]
    newest: dict[str, str] = {}
    for message_id, content in session.execute(
        select(Correction.message_id, Correction.content)
        .where(Correction.message_id.in_(ids))
        .order_by(Correction.created_at, Correction.id)
    ):
        newest[message_id] = content
    return [
        ReviewItem(
            message.id,
            conversation.id,
            message.created_at,
            username,
            conversation.locale,
            message.backend_name,
            _question_before(session, message),
            message.content,
            int(value or 0),
            newest.get(message.id),
            message.handoff,
            message.fallback_from,
            conversation.exclude_from_training,
            message.review_status,
            reviewed_by,
            message.reviewed_at,
        )
        for message, conversation, username, value, reviewed_by in rows
    ]


def _question_before(session: Session, answer: Message) -> str:
    """The user's message the answer replied to ('' when none)."""
    question = aliased(Message)
    return (
        session.scalar(
            select(question.content)
            .where(question.conversation_id == answer.conversation_id, question.role == "user")
            .where(question.created_at <= answer.created_at)
            .order_by(question.created_at.desc())
            .limit(1)
        )
        or ""
    )


def set_review(
    *, session: Session, message_id: str, status: str | None, user_id: int | None
) -> Message:
    """Store an admin's review of an answer (``None`` clears it: to be reviewed again)."""
    if status is not None and status not in REVIEW_STATUSES:
        raise InputError(f"unknown review {status!r}; use one of: {', '.join(REVIEW_STATUSES)}")
    message = session.get(Message, message_id)
    if message is None or message.role != "assistant":
        raise NotFoundError(f"no answer {message_id!r}: reload the review page")
    message.review_status = status
    message.reviewed_by = user_id if status is not None else None
    message.reviewed_at = utcnow() if status is not None else None
    session.flush()
    return message


def set_excluded(*, session: Session, conversation_id: str, excluded: bool) -> None:
    """Mark a conversation as never (or again) usable for training."""
    conversation = session.get(Conversation, conversation_id)
    if conversation is None:
        raise NotFoundError(f"no conversation {conversation_id!r}")
    conversation.exclude_from_training = excluded
    session.flush()
