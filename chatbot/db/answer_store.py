"""Assistant answers stored as they stream (checkpoints) and once they end, in one row."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, update
from sqlalchemy.orm import Session

from chatbot.db import store
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
    *, session: Session, conversation_id: str, fields: dict[str, Any], checkpointed: bool
) -> Message:
    """Store the finished (or cut) answer: the checkpointed row is updated in place (one row
    per answer), else a row is added. ``checkpointed=False`` costs no read."""
    message = session.get(Message, fields["id"]) if checkpointed else None
    if message is None:
        return store.add_message(
            session=session, conversation_id=conversation_id, role="assistant", **fields
        )
    for key, value in fields.items():
        setattr(message, key, value)
    message.pii_version = None  # the text changed: detect personal data again
    conversation = session.get(Conversation, conversation_id)
    if conversation is not None:
        conversation.updated_at = utcnow()
    session.flush()
    return message
