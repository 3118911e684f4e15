"""Queries for personal-data spans kept with messages and corrections, and the stored-row hook.

Rows are checked by detector version: ``pii_version`` None (never checked) or older than the
current one needs detection. Spans an admin marked (``source: "admin"``) survive re-detection.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import event, func, inspect, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from chatbot.db.models import Conversation, Correction, Message
from chatbot.errors import NotFoundError

Table = Literal["messages", "corrections"]
TABLES: tuple[Table, ...] = ("messages", "corrections")
_MODELS: dict[str, Any] = {"messages": Message, "corrections": Correction}


@dataclass(frozen=True)
class PiiRow:
    """A text to check: its row id, content and the conversation's language."""

    id: str | int
    content: str
    locale: str


def _select(table: Table) -> Any:
    """id, content, locale of a table's rows (corrections take their message's conversation)."""
    model = _MODELS[table]
    query = select(model.id, model.content, Conversation.locale)
    if table == "corrections":
        query = query.join(Message, Message.id == Correction.message_id)
        return query.join(Conversation, Conversation.id == Message.conversation_id)
    return query.join(Conversation, Conversation.id == Message.conversation_id)


def _stale(table: Table, version: int) -> Any:
    model = _MODELS[table]
    return or_(model.pii_version.is_(None), model.pii_version < version)


def count_unchecked(*, session: Session, table: Table, version: int) -> int:
    """How many rows of ``table`` still need detection at ``version``."""
    model = _MODELS[table]
    return int(session.scalar(select(func.count(model.id)).where(_stale(table, version))) or 0)


def unchecked(
    *, session: Session, table: Table, version: int, after: str | int | None, limit: int
) -> list[PiiRow]:
    """The next ``limit`` rows needing detection, by id after ``after`` (resumable)."""
    model = _MODELS[table]
    query = _select(table).where(_stale(table, version))
    if after is not None:
        query = query.where(model.id > after)
    rows = session.execute(query.order_by(model.id).limit(limit)).all()
    return [PiiRow(r[0], r[1], r[2]) for r in rows]


def rows_by_id(*, session: Session, table: Table, ids: list[Any], version: int) -> list[PiiRow]:
    """Rows ``ids`` of ``table`` that still need detection."""
    if not ids:
        return []
    model = _MODELS[table]
    query = _select(table).where(model.id.in_(ids), _stale(table, version))
    return [PiiRow(r[0], r[1], r[2]) for r in session.execute(query)]


def save_spans(
    *, session: Session, table: Table, found: dict[Any, list[dict[str, Any]]], version: int
) -> None:
    """Store detected spans (keeping spans an admin marked) and the detector version."""
    if not found:
        return
    model = _MODELS[table]
    old = session.execute(select(model.id, model.pii_spans).where(model.id.in_(list(found)))).all()
    admin = {i: [s for s in (spans or []) if s.get("source") == "admin"] for i, spans in old}
    rows = [
        {"id": i, "pii_spans": admin.get(i, []) + spans, "pii_version": version}
        for i, spans in found.items()
    ]
    session.execute(update(model), rows)


def message_text(*, session: Session, message_id: str) -> tuple[str, list[dict[str, Any]]]:
    """A message's content and stored spans; ``NotFoundError`` naming the fix."""
    row = session.execute(
        select(Message.content, Message.pii_spans).where(Message.id == message_id)
    ).first()
    if row is None:
        raise NotFoundError(f"no message {message_id!r}: copy the id from `afina export --preview`")
    return row[0], list(row[1] or [])


def add_admin_spans(*, session: Session, message_id: str, spans: list[dict[str, Any]]) -> None:
    """Add hand-marked spans to a message (kept by later detections)."""
    _, stored = message_text(session=session, message_id=message_id)
    session.execute(
        update(Message).where(Message.id == message_id).values(pii_spans=stored + spans)
    )


PENDING = "pii_new"  # session.info key: (table, id) of rows to check once committed


def note_new_text(session: Session, table: str, row_id: str | int) -> None:
    """Have ``watch_stored``'s callback check this row after the session's commit: for text
    written by Core statements, which its ORM hooks do not see."""
    session.info.setdefault(PENDING, []).append((table, row_id))


def watch_stored(
    sessions: sessionmaker[Session], callback: Callable[[Table, list[Any]], None]
) -> Callable[[], None]:
    """Call ``callback(table, ids)`` after each commit of a session from ``sessions`` that
    stored new messages or corrections, or changed a message's text (an answer stored while
    it streamed, then finished).

    Returns the function that stops watching. Core statements are seen only when their
    writer calls ``note_new_text`` (a chat turn's messages do); the backfill covers the rest.
    """

    def collect(session: Session, _context: Any) -> None:
        for obj in session.new:
            if isinstance(obj, Message | Correction):
                table = "messages" if isinstance(obj, Message) else "corrections"
                note_new_text(session, table, obj.id)
        for obj in session.dirty:
            if isinstance(obj, Message) and inspect(obj).attrs.content.history.has_changes():
                note_new_text(session, "messages", obj.id)

    def committed(session: Session) -> None:
        new = session.info.pop(PENDING, None)
        for table in TABLES:
            ids = [i for t, i in new or () if t == table]
            if ids:
                callback(table, ids)

    def rolled_back(session: Session) -> None:
        session.info.pop(PENDING, None)

    hooks = (("after_flush", collect), ("after_commit", committed), ("after_rollback", rolled_back))
    for name, fn in hooks:
        event.listen(sessions, name, fn)

    def stop() -> None:
        for name, fn in hooks:
            if event.contains(sessions, name, fn):
                event.remove(sessions, name, fn)

    return stop
