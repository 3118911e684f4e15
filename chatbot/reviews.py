"""Ratings, corrections and reviews of answers: their one writer (ownership checked here)."""

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
    _own_answer(session, message_id, user_id)
    correction = history.add_correction(
        session=session, message_id=message_id, user_id=user_id, content=text
    )
    # a new text needs a new review: an earlier approval or rejection was of another text
    review_queries.set_review(session=session, message_id=message_id, status=None, user_id=None)
    return correction


def rate(
    *, session: Session, run_step_id: str, user_id: int | None, value: int, comment: str | None
) -> str:
    """Rate (+1/-1, with a comment) the answer of the browser's run step ``run_step_id`` in one
    of ``user_id``'s conversations; rating again replaces the rating. Returns the answer's id
    (the browser's handle on the rating: unguessable, unlike a row number)."""
    message = history.message_for_run_step(session=session, run_step_id=run_step_id)
    history.upsert_feedback(
        session=session,
        message_id=message.id,
        user_id=_own_answer(session, message.id, user_id),
        value=1 if value == 1 else -1,
        comment=comment or None,
    )
    return message.id


def unrate(*, session: Session, message_id: str, user_id: int | None) -> None:
    """Remove ``user_id``'s rating of an answer in one of their conversations."""
    owner = _own_answer(session, message_id, user_id)
    history.delete_feedback(session=session, message_id=message_id, user_id=owner)


def _own_answer(session: Session, message_id: str, user_id: int | None) -> int:
    """``user_id``, when it owns the conversation of ``message_id``; else ``NotFoundError``:
    someone else's answer looks exactly like a missing one (no probing for ids)."""
    try:
        owner = history.message_owner_id(session=session, message_id=message_id)
    except NotFoundError:
        owner = None
    if user_id is None or owner != user_id:
        raise NotFoundError(f"no answer {message_id!r} of yours: reopen the chat and try again")
    return user_id


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
