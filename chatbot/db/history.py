"""Queries behind the browser UI: thread lists, feedback, corrections, run steps, first admin."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import delete, exists, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from chatbot.db import store
from chatbot.db.models import Conversation, Correction, Feedback, Message, User, utcnow
from chatbot.errors import InputError, NotFoundError

FIRST_ADMIN = "admin"
TITLE_CHARS = 80


@dataclass
class ThreadView:
    """A conversation as the UI shows it: owner, messages, and the owner's ratings."""

    conversation: Conversation
    owner: str
    messages: list[Message] = field(default_factory=list)
    # message id -> (value, comment)
    feedback: dict[str, tuple[int, str | None]] = field(default_factory=dict)
    # message id -> the newest correction's text
    corrections: dict[str, str] = field(default_factory=dict)


# users ---------------------------------------------------------------------------------------
def get_user_by_id(*, session: Session, user_id: int) -> User | None:
    """The user with this id, if any."""
    return session.get(User, user_id)


def needs_first_admin(*, session: Session) -> bool:
    """Whether no admin can log in (no enabled admin has a password)."""
    admin = exists().where(
        User.role == "admin", User.password_hash.is_not(None), User.disabled.is_(False)
    )
    return not session.scalar(select(admin))


def create_first_admin(*, session: Session, password_hash: str) -> User:
    """Create ``admin`` (or give a password-less ``admin`` one) with the admin role."""
    user = store.get_user(session=session, username=FIRST_ADMIN)
    if user is None:
        return store.add_user(
            session=session, username=FIRST_ADMIN, role="admin", password_hash=password_hash
        )
    user.role, user.password_hash = "admin", password_hash
    session.flush()
    return user


# conversations -------------------------------------------------------------------------------
def ensure_conversation(
    *, session: Session, conversation_id: str, user_id: int, locale: str
) -> Conversation:
    """The conversation with this id, created for ``user_id`` when missing.

    Another user's conversation is a ``NotFoundError``: ids never leak across users.
    """
    conversation = session.get(Conversation, conversation_id)
    if conversation is None:
        try:
            with session.begin_nested():
                conversation = store.add_conversation(
                    session=session,
                    user_id=user_id,
                    locale=locale,
                    conversation_id=conversation_id,
                )
        except IntegrityError:  # created at the same moment by another request
            conversation = session.get(Conversation, conversation_id)
    if conversation is None or conversation.user_id != user_id:
        raise NotFoundError(f"no conversation {conversation_id!r}")
    return conversation


def conversation_owner(*, session: Session, conversation_id: str) -> str | None:
    """The username owning the conversation, or None when it does not exist."""
    query = (
        select(User.username)
        .join(Conversation, Conversation.user_id == User.id)
        .where(Conversation.id == conversation_id)
    )
    return session.scalar(query)


def list_conversations(
    *,
    session: Session,
    user_id: int,
    search: str | None = None,
    rating: int | None = None,
    offset: int = 0,
    limit: int = 20,
) -> tuple[list[tuple[Conversation, str]], bool]:
    """One page of the user's conversations, newest first, and whether more follow.

    ``search`` matches the title or any message (case-insensitive); ``rating`` keeps
    conversations with a feedback of that value (+1/-1).
    """
    query = (
        select(Conversation, User.username)
        .join(User, User.id == Conversation.user_id)
        .where(Conversation.user_id == user_id, Conversation.origin != "eval")
    )
    if search:
        needle = f"%{search.lower()}%"
        in_messages = exists().where(
            Message.conversation_id == Conversation.id, func.lower(Message.content).like(needle)
        )
        query = query.where(or_(func.lower(Conversation.title).like(needle), in_messages))
    if rating is not None:
        rated = (
            select(Message.id)
            .join(Feedback, Feedback.message_id == Message.id)
            .where(Message.conversation_id == Conversation.id, Feedback.value == rating)
        )
        query = query.where(exists(rated))
    query = query.order_by(Conversation.updated_at.desc(), Conversation.id)
    rows = [(c, name) for c, name in session.execute(query.offset(offset).limit(limit + 1))]
    return rows[:limit], len(rows) > limit


def thread_view(*, session: Session, conversation_id: str) -> ThreadView | None:
    """The conversation with its messages and its owner's feedback, or None."""
    conversation = session.get(Conversation, conversation_id)
    if conversation is None:
        return None
    owner = session.get(User, conversation.user_id)
    messages = store.conversation_messages(session=session, conversation_id=conversation_id)
    ratings = session.execute(
        select(Feedback.message_id, Feedback.value, Feedback.comment)
        .join(Message, Message.id == Feedback.message_id)
        .where(Message.conversation_id == conversation_id)
        .where(Feedback.user_id == conversation.user_id)
    )
    feedback = {mid: (value, comment) for mid, value, comment in ratings}
    answers = [m.id for m in messages if m.role == "assistant"]
    corrections = latest_corrections(session=session, message_ids=answers)
    return ThreadView(
        conversation, owner.username if owner else "", messages, feedback, corrections
    )


def rename_conversation(*, session: Session, conversation_id: str, title: str) -> None:
    """Set the conversation's title (no-op when it does not exist)."""
    conversation = session.get(Conversation, conversation_id)
    if conversation is not None:
        conversation.title = title[:255]
        session.flush()


def delete_conversation(*, session: Session, conversation_id: str) -> None:
    """Delete the conversation and (by cascade) its messages, ratings and corrections."""
    session.execute(delete(Message).where(Message.conversation_id == conversation_id))
    session.execute(delete(Conversation).where(Conversation.id == conversation_id))


# run steps, feedback, corrections -------------------------------------------------------------
def set_run_step(*, session: Session, message_id: str, run_step_id: str) -> None:
    """Record the Chainlit run step an assistant message belongs to (feedback points at it)."""
    message = session.get(Message, message_id)
    if message is None:
        raise NotFoundError(f"no message {message_id!r}")
    message.run_step_id = run_step_id
    session.flush()


def message_for_run_step(*, session: Session, run_step_id: str) -> Message:
    """The assistant message of a run step, or ``NotFoundError``."""
    message = session.scalar(
        select(Message).where(Message.run_step_id == run_step_id, Message.role == "assistant")
    )
    if message is None:
        raise NotFoundError(f"no answer for step {run_step_id!r}")
    return message


def message_owner_id(*, session: Session, message_id: str) -> int:
    """The id of the user owning the message's conversation, or ``NotFoundError``."""
    owner = session.scalar(
        select(Conversation.user_id)
        .join(Message, Message.conversation_id == Conversation.id)
        .where(Message.id == message_id)
    )
    if owner is None:
        raise NotFoundError(f"no message {message_id!r}")
    return owner


def upsert_feedback(
    *, session: Session, message_id: str, user_id: int, value: int, comment: str | None
) -> Feedback:
    """Rate an assistant message (+1/-1); rating again replaces the earlier rating."""
    if value not in (-1, 1):
        raise InputError(f"feedback must be +1 or -1, not {value!r}")
    row = session.scalar(
        select(Feedback).where(Feedback.message_id == message_id, Feedback.user_id == user_id)
    )
    if row is None:
        row = Feedback(message_id=message_id, user_id=user_id, value=value, comment=comment)
        session.add(row)
    else:
        row.value, row.comment, row.created_at = value, comment, utcnow()
    session.flush()
    return row


def delete_feedback(*, session: Session, message_id: str, user_id: int) -> None:
    """Remove the user's rating of a message."""
    session.execute(
        delete(Feedback).where(Feedback.message_id == message_id, Feedback.user_id == user_id)
    )


def add_correction(*, session: Session, message_id: str, user_id: int, content: str) -> Correction:
    """Store a better answer for an assistant message (the training target)."""
    text = content.strip()
    if not text:
        raise InputError("The correction is empty: write the answer Afina should have given.")
    message = session.get(Message, message_id)
    if message is None or message.role != "assistant":
        raise NotFoundError(f"no answer {message_id!r} to correct")
    correction = Correction(message_id=message_id, user_id=user_id, content=text)
    session.add(correction)
    session.flush()
    return correction


def latest_corrections(*, session: Session, message_ids: list[str]) -> dict[str, str]:
    """The newest correction text of each of ``message_ids`` that has one."""
    if not message_ids:
        return {}
    query = select(Correction.message_id, Correction.content).where(
        Correction.message_id.in_(message_ids)
    )
    newest: dict[str, str] = {}
    for message_id, content in session.execute(
        query.order_by(Correction.created_at, Correction.id)
    ):
        newest[message_id] = content
    return newest


def list_corrections(*, session: Session, message_id: str) -> list[Correction]:
    """Corrections written for a message, oldest first."""
    query = select(Correction).where(Correction.message_id == message_id)
    return list(session.scalars(query.order_by(Correction.created_at)))
