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
