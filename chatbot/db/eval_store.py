"""Queries of ``eval_runs`` and ``eval_results``, and the conversations evaluation turns live in.

Each function takes the session keyword-only; the caller owns the transaction. The runner commits
each result as it goes, so another process (the CLI's ``show``, the web page) sees the progress.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from chatbot.db import store, training_queries
from chatbot.db.models import Conversation, EvalResult, EvalRun, Message, utcnow
from chatbot.errors import InputError, NotFoundError

EVAL_ORIGIN = "eval"
RUN_STATUSES = ("running", "succeeded", "failed", "cancelled")


def eval_user_id(*, session: Session, username: str) -> int:
    """The id of the system user owning evaluation conversations (created when missing)."""
    return store.ensure_user(session=session, username=username, role="agent").id


def add_eval_conversation(*, session: Session, user_id: int, locale: str) -> str:
    """A new conversation tagged ``origin="eval"``, never exported nor shown in a history."""
    conversation = Conversation(
        user_id=user_id, locale=locale, origin=EVAL_ORIGIN, exclude_from_training=True
    )
    session.add(conversation)
    session.flush()
    return conversation.id


def add_run(
    *,
    session: Session,
    source: dict[str, Any],
    backends: list[str],
    params: dict[str, Any],
    created_by: int | None = None,
) -> EvalRun:
    """A new ``running`` evaluation."""
    run = EvalRun(
        source=dict(source),
        backends=list(backends),
        params=dict(params),
        created_by=created_by,
        status="running",
    )
    session.add(run)
    session.flush()
    return run


def get_run(*, session: Session, run_id: int) -> EvalRun:
    """The run, or ``NotFoundError`` naming the command that lists them."""
    run = session.get(EvalRun, run_id)
    if run is None:
        raise NotFoundError(f"no evaluation run {run_id}; see 'afina eval list'")
    return run


def list_runs(*, session: Session, limit: int = 100) -> list[EvalRun]:
    """The newest runs first."""
    return list(session.scalars(select(EvalRun).order_by(EvalRun.id.desc()).limit(limit)))


def finish_run(
    *,
    session: Session,
    run_id: int,
    status: str,
    summary: dict[str, Any] | None = None,
    error: str | None = None,
) -> EvalRun:
    """Close the run with ``status`` (and its summary or error)."""
    if status not in RUN_STATUSES:
        raise InputError(f"unknown run status {status!r}; use one of {', '.join(RUN_STATUSES)}")
    run = get_run(session=session, run_id=run_id)
    run.status, run.finished_at = status, utcnow()
    if summary is not None:
        run.summary = summary
    if error is not None:
        run.error = error
    session.flush()
    return run


def add_result(*, session: Session, run_id: int, **fields: Any) -> EvalResult:
    """Store one backend's scored answer to one item."""
    result = EvalResult(run_id=run_id, **fields)
    session.add(result)
    session.flush()
    return result


def run_results(*, session: Session, run_id: int) -> list[EvalResult]:
    """Every result of the run, in the order they were stored."""
    query = select(EvalResult).where(EvalResult.run_id == run_id).order_by(EvalResult.id)
    return list(session.scalars(query))


def count_results(*, session: Session, run_id: int) -> int:
    """How many answers the run has stored so far (its progress)."""
    query = select(func.count()).select_from(EvalResult).where(EvalResult.run_id == run_id)
    return int(session.scalar(query) or 0)


def answer_message(*, session: Session, message_id: str) -> Message | None:
    """The stored assistant message of an evaluation answer (its full provenance)."""
    return session.get(Message, message_id)


def result_dicts(*, session: Session, run_id: int) -> list[dict[str, Any]]:
    """Every result of the run as a plain dict of its columns (for metrics and reports)."""
    columns = [c.key for c in EvalResult.__table__.columns]
    return [
        {k: getattr(r, k) for k in columns} for r in run_results(session=session, run_id=run_id)
    ]


def export_chats(
    *, session: Session, export_id: int, split: str
) -> list[training_queries.StoredConversation] | None:
    """The conversations an export put in ``split``, with their messages, ratings and
    corrections; None when there is no such export."""
    if training_queries.get_export(session=session, export_id=export_id) is None:
        return None
    splits = training_queries.export_splits(session=session, export_id=export_id)
    ids = [c for c, s in splits.items() if s == split]
    if not ids:
        return []
    conditions = [Conversation.id.in_(ids)]
    return list(
        training_queries.iter_training_conversations(session=session, conditions=conditions)
    )
