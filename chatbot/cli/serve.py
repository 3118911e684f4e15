"""``afina serve``: the browser UI (migrates, builds a missing index, creates the first admin)."""

from __future__ import annotations

from typing import Annotated

import typer

from chatbot.cli.common import console, err
from chatbot.cli.kb import build_index
from chatbot.errors import AfinaError
from chatbot.runtime import Runtime, index_exists
from chatbot.settings import Settings, get_settings


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
        int | None,
        typer.Option(
            min=0, max=65535, help="Port to listen on (AFINA_WEB_PORT); the first of N workers"
        ),
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=64,
            help="Server processes on consecutive ports, for a proxy with sticky sessions "
            "in front (deploy/nginx.conf); use PostgreSQL (SQLite serialises writes)",
        ),
    ] = 1,
    interrupted_after: Annotated[
        float,
        typer.Option(
            min=0, help="With --workers: seconds after a worker died to mark its cut questions"
        ),
    ] = 120.0,
    worker: Annotated[
        bool, typer.Option("--worker", hidden=True, help="One of N: skip the start-up work")
    ] = False,
) -> None:
    """Serve the chat in the browser for agents and admins."""
    from chatbot.ui.serving import run
    from chatbot.web import create_app

    settings = get_settings()
    host = host or settings.web.host
    port = settings.web.port if port is None else port
    if not worker:
        runtime = Runtime.open(settings)  # migrate first: a bad database URL fails here, clearly
        runtime.engine.dispose()
        if not index_exists(settings.index_dir):
            err.print("No knowledge-base index yet: building it from", settings.kb_path)
            build_index(settings)
    if workers > 1:
        raise typer.Exit(_serve_workers(settings, host, port, workers, interrupted_after))
    app = create_app(settings, on_password=_announce_password, once=not worker)
    if not worker:
        console.print(f"Afina is starting on [bold]http://{host}:{port}/chat[/] (Ctrl-C stops it)")
    run(app, host, port)  # uvicorn, closing browser sockets first at Ctrl-C


def _serve_workers(settings: Settings, host: str, port: int, count: int, grace_s: float) -> int:
    """Do the start-up work once, then run ``count`` workers until stopped; the exit code."""
    from chatbot.ui.auth import auth_secret
    from chatbot.web import prepare
    from chatbot.workers import Supervisor

    if port == 0:
        raise AfinaError("--workers needs a fixed first port (--port or AFINA_WEB_PORT), not 0")
    if settings.database_url.startswith("sqlite"):
        err.print(
            "[yellow]Several workers on SQLite take turns writing; use PostgreSQL "
            "(AFINA_DATABASE_URL) for a team.[/]"
        )
    auth_secret(settings)  # made once here: workers would race to create the file
    runtime = prepare(settings, _announce_password)
    if runtime.pii_worker is not None:
        runtime.pii_worker.stop()
    ports = list(range(port, port + count))
    console.print(
        f"Afina is starting {count} workers on http://{host}:{ports[0]}-{ports[-1]}/chat; "
        "put them behind a proxy with sticky sessions (deploy/nginx.conf). Ctrl-C stops them.",
        highlight=False,
    )
    try:
        return Supervisor(runtime.sessions, host, ports, grace_s=grace_s).run()
    finally:
        runtime.engine.dispose()


if __name__ == "__main__":
    typer.run(serve)
