"""``afina export pii-backfill`` and ``afina export mark-pii``: personal data kept with messages."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from chatbot.cli.common import console, err, open_runtime, progress_bar
from chatbot.db import pii_store
from chatbot.errors import InputError
from chatbot.settings import get_settings
from chatbot.training.pii.backfill import backfill, pending
from chatbot.training.pii.spans import find_text

Opt = typer.Option


def backfill_command(
    minutes: Annotated[
        float | None, Opt(help="stop after this many minutes (run again to go on)")
    ] = None,
) -> None:
    """Detect personal data once in messages stored before detection-on-store (resumable)."""
    settings = get_settings()
    runtime = open_runtime()
    try:
        total = pending(runtime.sessions)
        if not total:
            console.print("Every stored message is already checked.")
            return
        with progress_bar("Detecting personal data") as (start, advance):
            start(total)
            result = backfill(
                runtime.sessions,
                settings.pii,
                progress=advance,
                budget_s=None if minutes is None else minutes * 60,
            )
    finally:
        runtime.engine.dispose()
    done = ", ".join(f"{n:,} {table}" for table, n in result.detected.items())
    console.print(f"Checked {done} in {result.seconds:.0f} s.")
    if result.left:
        err.print(f"{result.left:,} left: run `afina export pii-backfill` again to go on.")


def mark_command(
    message_id: Annotated[str, typer.Argument(help="the message's id (see `--preview`)")],
    text: Annotated[str, typer.Argument(help="the personal data the export missed, as written")],
    kind: Annotated[str, Opt("--type", help="placeholder type, e.g. PERSON, ADDRESS")] = "PII",
) -> None:
    """Mark text in a message as personal data: every later export redacts it."""
    kind = kind.strip().upper()
    if not kind.replace("_", "").isalnum():
        raise InputError(f"--type {kind!r} must be letters, digits and _ (e.g. PERSON)")
    runtime = open_runtime()
    try:
        with runtime.sessions.begin() as session:
            content, _ = pii_store.message_text(session=session, message_id=message_id)
            spans = [
                s.__class__(s.start, s.end, kind, 1.0, s.source) for s in find_text(content, text)
            ]
            if not spans:
                raise InputError(
                    f"{text!r} is not in message {message_id}: copy it as the message has it"
                )
            pii_store.add_admin_spans(
                session=session, message_id=message_id, spans=[s.to_json() for s in spans]
            )
    finally:
        runtime.engine.dispose()
    console.print(
        f"Marked {len(spans)} occurrence(s) as {escape(kind)}; the next export redacts them."
    )
