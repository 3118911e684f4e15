"""messages.review_status/reviewed_by/reviewed_at; fallback notices moved out of answer text

Answers stored before the fallback notice moved to ``details`` start with it: "<the failure's
chat message>\\n<note>\\n\\n<the fallback's answer>", where the note is one of
``chatbot.service.FALLBACK_NOTE`` (English or Spanish). The upgrade keeps the answer alone in
``content`` and puts the notice in ``details.fallback.notice`` (shifting the message's stored
personal-data spans with the text), marking the row ``details.fallback.notice_moved``; the
downgrade puts the notice back in front of the answers so marked (and only those).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 11:00:00.000000
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# copied from chatbot/service.py as they were when the notice was stored in the text
# (a migration never imports the application: the constants may change later)
NOTES = (
    "Here is an answer from the backup assistant instead:",
    "Esta es la respuesta del asistente de respaldo:",
)
MOVED = "notice_moved"
MAX_LEAD = 500  # characters before the note at most: the failure's chat message

messages = sa.table(
    "messages",
    sa.column("id", sa.String),
    sa.column("role", sa.String),
    sa.column("content", sa.Text),
    sa.column("details", sa.JSON),
    sa.column("pii_spans", sa.JSON),
)


def upgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("review_status", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("reviewed_by", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "reviewed_at",
                sa.DateTime(timezone=True)
                .with_variant(mysql.DATETIME(fsp=6), "mariadb")
                .with_variant(mysql.DATETIME(fsp=6), "mysql"),
                nullable=True,
            )
        )
        batch_op.create_foreign_key(
            op.f("fk_messages_reviewed_by_users"),
            "users",
            ["reviewed_by"],
            ["id"],
            ondelete="SET NULL",
        )
    move_notices_out()


def downgrade() -> None:
    move_notices_back()
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("fk_messages_reviewed_by_users"), type_="foreignkey")
        batch_op.drop_column("reviewed_at")
        batch_op.drop_column("reviewed_by")
        batch_op.drop_column("review_status")


def split_notice(content: str) -> tuple[str, str] | None:
    """(notice, answer) of a text that starts with a fallback notice; None for any other."""
    for note in NOTES:
        at = content.find(note)
        end = at + len(note)
        if (
            not 0 <= at <= MAX_LEAD  # after the failure's one-line chat message, if at all
            or (at > 0 and content[at - 1] != "\n")
            or content[end : end + 1] not in ("\n", "")
        ):
            continue
        return content[:end].strip(), content[end:].lstrip("\n")
    return None


def shifted(spans: Any, by: int) -> Any:
    """Personal-data spans moved by ``by`` characters (those before the cut are dropped)."""
    if not isinstance(spans, list):
        return spans
    kept = []
    for span in spans:
        start, end = span.get("start", 0), span.get("end", 0)
        if start + by < 0:
            continue
        kept.append({**span, "start": start + by, "end": end + by})
    return kept


def _with_notes():
    bind = op.get_bind()
    found = sa.or_(*(messages.c.content.like(f"%{note}%") for note in NOTES))
    query = sa.select(
        messages.c.id, messages.c.content, messages.c.details, messages.c.pii_spans
    ).where(messages.c.role == "assistant", found)
    return bind, bind.execute(query).all()


def move_notices_out() -> None:
    """Answers that start with a fallback notice keep the answer alone (see the docstring)."""
    bind, rows = _with_notes()
    for row in rows:
        parts = split_notice(row.content)
        if parts is None:
            continue
        notice, answer = parts
        details = dict(row.details or {})
        fallback = dict(details.get("fallback") or {})
        fallback.update(notice=notice, **{MOVED: True})
        details["fallback"] = fallback
        cut = len(row.content) - len(answer)
        bind.execute(
            messages.update()
            .where(messages.c.id == row.id)
            .values(content=answer, details=details, pii_spans=shifted(row.pii_spans, -cut))
        )


def move_notices_back() -> None:
    """The downgrade: notices moved by the upgrade go back in front of their answers."""
    bind = op.get_bind()
    query = sa.select(
        messages.c.id, messages.c.content, messages.c.details, messages.c.pii_spans
    ).where(
        messages.c.role == "assistant",
        sa.cast(messages.c.details, sa.Text).like(f"%{MOVED}%"),
    )
    for row in bind.execute(query).all():
        details = dict(row.details or {})
        fallback = dict(details.get("fallback") or {})
        if not fallback.pop(MOVED, False):
            continue
        prefix = f"{fallback.pop('notice', '')}\n\n"
        details["fallback"] = fallback
        bind.execute(
            messages.update()
            .where(messages.c.id == row.id)
            .values(
                content=prefix + row.content,
                details=details,
                pii_spans=shifted(row.pii_spans, len(prefix)),
            )
        )
