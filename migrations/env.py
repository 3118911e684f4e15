"""Alembic environment: migrates the engine Afina hands over, or the one settings name."""

from __future__ import annotations

from alembic import context

from chatbot.db.models import Base

config = context.config
target_metadata = Base.metadata


def _engine():
    """The engine passed by chatbot.db.migrate, else one built from settings (alembic CLI)."""
    engine = config.attributes.get("engine")
    if engine is not None:
        return engine
    from chatbot.db.session import make_engine
    from chatbot.settings import get_settings

    settings = get_settings()
    return make_engine(settings.database_url)


def run_migrations_online() -> None:
    """Run migrations in a transaction on a live connection."""
    engine = _engine()
    with engine.connect() as connection:
        is_sqlite = connection.dialect.name == "sqlite"
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=is_sqlite,  # SQLite alters tables by copying them
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) migrations are not supported; run 'afina db upgrade'")
run_migrations_online()
