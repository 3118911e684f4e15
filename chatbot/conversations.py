"""Conversations' own writes (start, open, rename, delete): one place, ownership checked here.

ChatService (``afina chat``, ``afina ask``, the evaluator) starts conversations through it, and
the browser UI opens, renames and deletes them through it; messages are ChatService's. Another
user's conversation is a ``NotFoundError``, exactly like a missing one (ids never leak).
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from chatbot.db import history, store
from chatbot.db.models import Conversation
from chatbot.errors import NotFoundError


def start(
    *, session: Session, user_id: int, locale: str, conversation_id: str | None = None
) -> Conversation:
    """A new conversation of ``user_id``."""
    return store.add_conversation(
        session=session, user_id=user_id, locale=locale, conversation_id=conversation_id
    )


def open_own(*, session: Session, conversation_id: str, user_id: int, locale: str) -> Conversation:
    """The conversation ``conversation_id`` of ``user_id``, started on their first message
    (the browser names a chat before anything is stored)."""
    return history.ensure_conversation(
        session=session, conversation_id=conversation_id, user_id=user_id, locale=locale
    )


def _own(session: Session, conversation_id: str, user_id: int | None) -> Conversation:
    conversation = session.get(Conversation, conversation_id)
    if user_id is None or conversation is None or conversation.user_id != user_id:
        raise NotFoundError(f"no conversation {conversation_id!r} of yours")
    return conversation


def rename(*, session: Session, conversation_id: str, user_id: int | None, title: str) -> None:
    """Give one of ``user_id``'s conversations a new title (cut to fit, broken text mended)."""
    _own(session, conversation_id, user_id)
    text = title.encode("utf-8", "replace").decode("utf-8")[: history.TITLE_CHARS]
    history.rename_conversation(session=session, conversation_id=conversation_id, title=text)


def delete(*, session: Session, conversation_id: str, user_id: int | None) -> None:
    """Delete one of ``user_id``'s conversations with its messages, ratings and corrections."""
    _own(session, conversation_id, user_id)
    history.delete_conversation(session=session, conversation_id=conversation_id)
