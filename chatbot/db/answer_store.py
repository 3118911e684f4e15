"""Assistant answers stored as they stream (checkpoints) and once they end, in one row."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, update
from sqlalchemy.orm import Session

from chatbot.db import store
from chatbot.db.models import Message
from chatbot.db.pii_store import note_new_text

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
) -> str:
    """Store the finished (or cut) answer and return its id: the checkpointed row is updated
    in place (one row per answer), else a row is inserted; the conversation is touched (and
    follows ``locale``). Core statements: an INSERT (or UPDATE) and an UPDATE, no reads."""
    updated = 0
    if checkpointed:
        changes = {k: v for k, v in fields.items() if k != "id"}
        changes["pii_version"] = None  # the text changed: detect personal data again
        statement = update(Message).where(Message.id == fields["id"]).values(**changes)
        updated = store.connection(session).execute(statement).rowcount
        if updated:
            note_new_text(session, "messages", fields["id"])
    if not updated:
        values = {"conversation_id": conversation_id, "role": "assistant", **fields}
        store.insert_message(session=session, values=values)
    follow = {"locale": locale} if locale else {}
    store.touch_conversation(session=session, conversation_id=conversation_id, **follow)
    return str(fields["id"])
