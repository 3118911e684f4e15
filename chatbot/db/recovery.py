"""After a crash: questions the server stopped answering are marked, so none is silently lost."""

from __future__ import annotations

from sqlalchemy import and_, exists, select, update
from sqlalchemy.orm import Session, aliased

from chatbot.db.models import Message

INTERRUPTED = "interrupted"


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
    ids = list(session.scalars(unanswered))
    for start in range(0, len(ids), 500):
        session.execute(
            update(Message)
            .where(Message.id.in_(ids[start : start + 500]))
            .values(status=INTERRUPTED)
        )
    return len(ids)
