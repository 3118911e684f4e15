"""Corrections and reviews of answers: the one writer behind the UI (ownership checked here)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from chatbot.db import history, review_queries
from chatbot.db.models import Correction
from chatbot.db.training_queries import iter_training_conversations
from chatbot.errors import NotFoundError
from chatbot.training.filters import ExportFilters, is_approved, keep_conversation


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
    correction = history.add_correction(
        session=session, message_id=message_id, user_id=user_id, content=text
    )
    # a new text needs a new review: an earlier approval or rejection was of another text
    review_queries.set_review(session=session, message_id=message_id, status=None, user_id=None)
    return correction


def latest_corrections(*, session: Session, message_ids: list[str]) -> dict[str, str]:
    """The newest correction text of each of ``message_ids`` that has one."""
    return history.latest_corrections(session=session, message_ids=message_ids)


def approve(*, session: Session, message_id: str, admin_id: int) -> None:
    """An admin approves an answer (its newest correction, if any) as a training target,
    whatever its ratings; stored on the answer and shown again on the review page."""
    review_queries.set_review(
        session=session, message_id=message_id, status="approved", user_id=admin_id
    )


def reject(*, session: Session, message_id: str, admin_id: int) -> None:
    """An admin rejects an answer and its correction: neither is ever a training target (the
    correction stays stored, and shown to its agent; correcting again asks for a new review)."""
    review_queries.set_review(
        session=session, message_id=message_id, status="rejected", user_id=admin_id
    )


def exclude(*, session: Session, conversation_id: str, excluded: bool = True) -> None:
    """Keep a whole conversation out of every export (or let it back in)."""
    review_queries.set_excluded(session=session, conversation_id=conversation_id, excluded=excluded)


@dataclass
class ExportCounts:
    """What the next export with the same filters would hold (before de-duplication)."""

    conversations: int = 0
    targets: int = 0
    corrected: int = 0
    held_back: int = 0  # answers shown as context only (weight 0): unreviewed, downvoted...
    left_out: Counter[str] = field(default_factory=Counter)  # conversations, by reason


def export_counts(*, session: Session, filters: ExportFilters) -> ExportCounts:
    """Count the conversations and training targets an export with ``filters`` would take."""
    counts = ExportCounts()
    for conversation in iter_training_conversations(session=session, conditions=filters.sql()):
        reason = keep_conversation(conversation, filters)
        if reason is not None:
            counts.left_out[reason] += 1
            continue
        counts.conversations += 1
        for message in conversation.messages:
            if message.role != "assistant":
                continue
            if is_approved(message, filters):
                counts.targets += 1
                counts.corrected += message.correction is not None
            else:
                counts.held_back += 1
    return counts
