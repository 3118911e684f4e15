"""Corrections of answers: the one place that writes them, with the ownership check (UI and CLI)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from chatbot.db import history
from chatbot.db.models import Correction
from chatbot.errors import NotFoundError


def correct(*, session: Session, message_id: str, user_id: int, text: str) -> Correction:
    """Store ``text`` as the better answer for an answer in one of ``user_id``'s conversations.

    Correcting again adds a newer correction, which replaces the earlier one everywhere (the
    latest one is shown and exported). ``NotFoundError`` for another user's answer, as for a
    missing one: nobody learns that someone else's answer exists."""
    try:
        owner = history.message_owner_id(session=session, message_id=message_id)
    except NotFoundError:
        owner = None
    if owner != user_id:
        raise NotFoundError(
            f"no answer {message_id!r} in your conversations: reopen the chat and try again"
        )
    return history.add_correction(
        session=session, message_id=message_id, user_id=user_id, content=text
    )


def latest_corrections(*, session: Session, message_ids: list[str]) -> dict[str, str]:
    """The newest correction text of each of ``message_ids`` that has one."""
    return history.latest_corrections(session=session, message_ids=message_ids)
