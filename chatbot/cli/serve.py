"""``afina serve``: the browser UI (migrates, builds a missing index, creates the first admin)."""

from __future__ import annotations

from typing import Annotated

import typer

from chatbot.cli.common import console, err
from chatbot.cli.kb import build_index
from chatbot.runtime import Runtime, index_exists
from chatbot.settings import get_settings


def _announce_password(password: str) -> None:
    """Print the first admin's password once (it is not stored in clear anywhere)."""
    err.print(
        "[bold yellow]Created user 'admin' with the one-time password:[/] "
        f"[bold]{password}[/]\nChange it with: afina users passwd admin",
        highlight=False,
    )


def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on (AFINA_WEB_HOST)")] = None,
    port: Annotated[
        int | None, typer.Option(min=0, max=65535, help="Port to listen on (AFINA_WEB_PORT)")
    ] = None,
) -> None:
    """Serve the chat in the browser for agents and admins."""
    import uvicorn

    from chatbot.web import create_app

    settings = get_settings()
    runtime = Runtime.open(settings)  # migrate first: a bad database URL fails here, clearly
    runtime.engine.dispose()
    if not index_exists(settings.index_dir):
        err.print("No knowledge-base index yet: building it from", settings.kb_path)
        build_index(settings)
    host = host or settings.web.host
    port = settings.web.port if port is None else port
    app = create_app(settings, on_password=_announce_password)
    console.print(f"Afina is starting on [bold]http://{host}:{port}/chat[/] (Ctrl-C stops it)")
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=3)


if __name__ == "__main__":
    typer.run(serve)
