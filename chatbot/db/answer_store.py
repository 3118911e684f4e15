"""Assistant answers stored as they stream (checkpoints) and once they end, in one row."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, update
from sqlalchemy.orm import Session

from chatbot.db.models import Conversation, Message, utcnow

# status of an answer row written while its answer still streams; the error keeps it out of
# everything that reads finished answers (the model's view, exports, review) until it ends
STREAMING = "streaming"
STILL_STREAMING = "the answer was still streaming when this was stored"


def checkpoint(*, session: Session, conversation_id: str, fields: dict[str, Any]) -> None:
    """Insert the answer row ``fields["id"]`` with the text so far, marked "streaming".

    Core statements: no ORM bookkeeping, and the personal-data watcher (which sees ORM inserts)
    waits for the finished text."""
    values = {**fields, "status": STREAMING, "error": STILL_STREAMING}
    session.execute(
        insert(Message).values(conversation_id=conversation_id, role="assistant", **values)
    )


def update_checkpoint(*, session: Session, message_id: str, content: str) -> None:
    """The streaming answer's text so far (and "streaming" again, should a restart of another
    process have marked it cut meanwhile)."""
    session.execute(
        update(Message)
        .where(Message.id == message_id)
        .values(content=content, status=STREAMING, error=STILL_STREAMING, pii_version=None)
    )


def save_answer(
    *,
    session: Session,
    conversation_id: str,
    fields: dict[str, Any],
    checkpointed: bool,
    locale: str | None = None,
) -> Message:
    """Store the finished (or cut) answer: the checkpointed row is updated in place (one row
    per answer), else a row is added; the conversation is touched (and follows ``locale``).
    ``checkpointed=False`` reads nothing: an INSERT and an UPDATE."""
    message = session.get(Message, fields["id"]) if checkpointed else None
    if message is None:
        message = Message(conversation_id=conversation_id, role="assistant", **fields)
        session.add(message)
    else:
        for key, value in fields.items():
            setattr(message, key, value)
        message.pii_version = None  # the text changed: detect personal data again
    touched: dict[str, Any] = {"updated_at": utcnow()} | ({"locale": locale} if locale else {})
    session.execute(
        update(Conversation).where(Conversation.id == conversation_id).values(**touched)
    )  # flushes the answer first
    return message
