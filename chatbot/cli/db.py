"""``afina db``: migrate and check the database schema."""

from __future__ import annotations

import typer

from chatbot.cli.common import console
from chatbot.db import migrate
from chatbot.db.session import check_connection, make_engine
from chatbot.errors import ConfigError
from chatbot.settings import get_settings

app = typer.Typer(help="Database schema.", no_args_is_help=True)


def _engine():
    settings = get_settings()
    engine = make_engine(settings.database_url)
    check_connection(engine)
    return engine


@app.command()
def upgrade() -> None:
    """Migrate the database to the newest schema."""
    engine = _engine()
    migrate.upgrade(engine)
    console.print(f"Database at revision {migrate.current_revision(engine)}.")


@app.command()
def check() -> None:
    """Exit non-zero unless the database is at the newest revision and matches the models."""
    engine = _engine()
    current, head = migrate.current_revision(engine), migrate.head_revision()
    if current != head:
        raise ConfigError(
            f"database is at revision {current}, newest is {head}: run 'afina db upgrade'"
        )
    migrate.check(engine)
    console.print(f"Database schema is up to date (revision {current}).")
