"""Migrations on real SQLite, PostgreSQL and MariaDB: up, no drift, down, up again."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect

from chatbot.db import migrate
from chatbot.db.session import make_engine

pytestmark = pytest.mark.integration
TABLES = {
    "users",
    "conversations",
    "messages",
    "feedback",
    "corrections",
    "backends",
    "app_settings",
    "exports",
    "finetune_jobs",
    "eval_runs",
    "eval_results",
}


def test_migrate_check_downgrade_upgrade(database_url: str):
    engine = make_engine(database_url)
    try:
        migrate.upgrade(engine)
        assert TABLES <= set(inspect(engine).get_table_names())
        migrate.check(engine)  # raises when models and migrations disagree
        assert migrate.current_revision(engine) == migrate.head_revision()
        migrate.downgrade(engine)
        assert not TABLES & set(inspect(engine).get_table_names())
        assert migrate.current_revision(engine) is None
        migrate.upgrade(engine)
        migrate.check(engine)
    finally:
        engine.dispose()


NOTICE = {
    "en": "The answer service can't be reached right now.\n"
    "Here is an answer from the backup assistant instead:",
    "es": "El servicio de respuestas no está disponible ahora mismo.\n"
    "Esta es la respuesta del asistente de respaldo:",
}
ANSWERS = {"en": "Shipping is free from 50 EUR.", "es": "El envío es gratis desde 50 EUR."}


def _old_rows(engine) -> dict[str, str]:
    """Answers as stored before 0005: the fallback notice in front of the answer's text."""
    from datetime import UTC, datetime

    from sqlalchemy import JSON, Boolean, DateTime, Integer, String, Text, column, table

    now = datetime.now(UTC)
    users = table("users", *(column(n) for n in ("id", "username", "role", "disabled")))
    users.append_column(column("created_at", DateTime))
    chats = table(
        "conversations",
        column("id", String),
        column("user_id", Integer),
        column("locale", String),
        column("created_at", DateTime),
        column("updated_at", DateTime),
        column("exclude_from_training", Boolean),
        column("metadata", JSON),
    )
    rows = table(
        "messages",
        column("id", String),
        column("conversation_id", String),
        column("role", String),
        column("content", Text),
        column("created_at", DateTime),
        column("handoff", Boolean),
        column("details", JSON),
        column("pii_spans", JSON),
        column("pii_version", Integer),
        column("fallback_from", String),
    )
    contents = {
        f"{lang}-fallback": f"{NOTICE[lang]}\n\n{ANSWERS[lang]} Call +34 600 000 000."
        for lang in NOTICE
    }
    # a question quoting the note, and an answer mentioning it mid-sentence: left alone
    contents["user-quote"] = NOTICE["en"]
    contents["mid-sentence"] = f"It said '{NOTICE['en']}' and stopped."
    contents["deep-in-answer"] = "An answer. " * 60 + f"\n{NOTICE['en']}\n\nMore."
    with engine.begin() as conn:
        conn.execute(
            users.insert().values(id=1, username="a", role="agent", disabled=False, created_at=now)
        )
        conn.execute(
            chats.insert().values(
                id="c",
                user_id=1,
                locale="en",
                created_at=now,
                updated_at=now,
                exclude_from_training=False,
                metadata={},
            )
        )
        for key, content in contents.items():
            phone = content.find("+34")
            conn.execute(
                rows.insert().values(
                    id=key,
                    conversation_id="c",
                    role="user" if key == "user-quote" else "assistant",
                    content=content,
                    created_at=now,
                    handoff=False,
                    details={"fallback": {"from": "llm", "kind": "fewshot"}},
                    pii_spans=[{"start": phone, "end": phone + 15, "type": "phone"}]
                    if phone >= 0
                    else [],
                    pii_version=1,
                    fallback_from="llm",
                )
            )
    return contents


def _stored(engine) -> dict[str, tuple[str, dict, list]]:
    from sqlalchemy import JSON, String, Text, column, select, table

    rows = table(
        "messages",
        column("id", String),
        column("content", Text),
        column("details", JSON),
        column("pii_spans", JSON),
    )
    with engine.connect() as conn:
        return {r.id: (r.content, r.details, r.pii_spans) for r in conn.execute(select(rows))}


def test_0005_moves_old_fallback_notices_out_of_answers_and_back(database_url: str):
    engine = make_engine(database_url)
    try:
        migrate.upgrade(engine, "0004")
        before = _old_rows(engine)
        migrate.upgrade(engine)
        after = _stored(engine)
        for lang in NOTICE:
            content, details, spans = after[f"{lang}-fallback"]
            assert content == f"{ANSWERS[lang]} Call +34 600 000 000."
            assert details["fallback"]["notice"] == NOTICE[lang]
            assert details["fallback"]["from"] == "llm"  # the rest of details is kept
            assert content[spans[0]["start"] : spans[0]["end"]] == "+34 600 000 000"
        for key in ("user-quote", "mid-sentence", "deep-in-answer"):
            assert after[key][0] == before[key]
            assert "notice" not in after[key][1]["fallback"]
        migrate.downgrade(engine, "0004")  # reversible: the old text comes back exactly
        restored = _stored(engine)
        assert {key: restored[key][0] for key in before} == before
        for lang in NOTICE:
            content, details, spans = restored[f"{lang}-fallback"]
            assert details == {"fallback": {"from": "llm", "kind": "fewshot"}}
            assert content[spans[0]["start"] : spans[0]["end"]] == "+34 600 000 000"
    finally:
        engine.dispose()
