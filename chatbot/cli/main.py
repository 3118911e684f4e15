"""The ``afina`` entry point: sub-apps, and errors printed as one clear line (no traceback)."""

from __future__ import annotations

import logging
import sys

import typer

from backends.threads import limit_thread_env
from chatbot.cli import backends, chat, db, demo, evaluate, export, finetune, kb, llm, serve, users
from chatbot.errors import AfinaError

app = typer.Typer(
    help="Afina: a support chatbot that learns from its own conversations.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command()(chat.chat)
app.command()(chat.ask)
app.command()(serve.serve)
app.add_typer(db.app, name="db")
app.add_typer(users.app, name="users")
app.add_typer(kb.app, name="kb")
app.add_typer(backends.app, name="backends")
app.add_typer(llm.app, name="llm")
app.add_typer(export.app, name="export")
app.add_typer(finetune.app, name="finetune")
app.add_typer(demo.app, name="demo")
app.add_typer(evaluate.app, name="eval")


def run() -> None:
    """Run the CLI; user-fixable errors print one line and exit 1."""
    limit_thread_env()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        app()
    except AfinaError as exc:
        from rich.markup import escape

        from chatbot.cli.common import err

        err.print(f"[red]Error:[/] {escape(str(exc))}", highlight=False)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    run()
