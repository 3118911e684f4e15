"""``afina demo chats``: log realistic, agent-rated chats on the knowledge base (offline)."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from chatbot.cli.common import console, err, progress_bar
from chatbot.cli.kb import build_index
from chatbot.errors import InputError
from chatbot.knowledge.loaders import load_path
from chatbot.runtime import Runtime, index_exists
from chatbot.settings import get_settings
from chatbot.training import demo

app = typer.Typer(help="Demo data to try Afina's learning loop offline.", no_args_is_help=True)
LOCALES = {"en": ("en",), "es": ("es",), "both": ("en", "es")}


@app.command("chats")
def chats(
    count: Annotated[int, typer.Option(min=1, help="How many conversations to log")] = 200,
    seed: Annotated[
        int | None, typer.Option(help="Fixes the questions; default: continue after earlier runs")
    ] = None,
    locale: Annotated[str, typer.Option(help="en, es or both")] = "both",
    replace: Annotated[bool, typer.Option(help="Delete earlier demo chats first")] = False,
) -> None:
    """Ask knowledge-base questions as a customer would; the demo agent rates the answers."""
    if locale not in LOCALES:
        raise InputError(f"unknown --locale {locale!r}; use one of: {', '.join(LOCALES)}")
    settings = get_settings()
    entries = load_path(settings.kb_path)
    runtime = Runtime.open(settings)
    if not index_exists(settings.index_dir):
        err.print("No knowledge-base index yet: building it from", settings.kb_path)
        build_index(settings)
    try:
        if replace:
            console.print(f"Deleted {demo.delete_demo_chats(runtime)} earlier demo chats.")
        earlier = demo.existing_demo_chats(runtime)
        script = demo.demo_script(
            entries, count=count, seed=earlier if seed is None else seed, locales=LOCALES[locale]
        )
        if not script:
            raise InputError(
                f"{settings.kb_path} has no FAQ entries in {locale}: ingest a knowledge base "
                "with question phrasings (see data/kb/README.md)"
            )
        with progress_bar("Demo chats") as (start, advance):
            start(len(script))
            report = asyncio.run(_log(runtime, script, advance))
    finally:
        runtime.engine.dispose()
    console.print(
        f"Logged {report.conversations} demo chats ({report.turns} turns) as user "
        f"{demo.DEMO_USER!r}: {report.approved} answers approved, {report.rejected} marked "
        f"wrong, {report.handovers} handed over, {report.errors} failed."
    )
    console.print("Next: afina export --out exports/demo --rating positive")


async def _log(runtime, script, advance) -> demo.DemoReport:
    """Log the chats, then close the backends on the same event loop."""
    try:
        return await demo.log_demo_chats(runtime, script, progress=advance)
    finally:
        await runtime.aclose()
