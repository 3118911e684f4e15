"""Queries of demo data (`afina demo chats`): conversations tagged ``origin="demo"``."""

from __future__ import annotations

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from chatbot.db.models import Conversation, Message

DEMO_ORIGIN = "demo"


def add_demo_conversation(*, session: Session, user_id: int, locale: str) -> str:
    """A new conversation tagged ``origin="demo"`` (training data like any approved chat)."""
    conversation = Conversation(user_id=user_id, locale=locale, origin=DEMO_ORIGIN)
    session.add(conversation)
    session.flush()
    return conversation.id


def count_demo_conversations(*, session: Session) -> int:
    """How many demo conversations are stored."""
    query = select(func.count()).select_from(Conversation)
    return int(session.scalar(query.where(Conversation.origin == DEMO_ORIGIN)) or 0)


def delete_demo_conversations(*, session: Session) -> int:
    """Delete every demo conversation with its messages and ratings; how many went."""
    ids = select(Conversation.id).where(Conversation.origin == DEMO_ORIGIN)
    count = count_demo_conversations(session=session)
    # messages first (their feedback and corrections follow by ON DELETE CASCADE)
    session.execute(delete(Message).where(Message.conversation_id.in_(ids)))
    session.execute(delete(Conversation).where(Conversation.origin == DEMO_ORIGIN))
    return count
