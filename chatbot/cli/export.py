"""``afina export``: stored conversations as fine-tuning JSONL."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from chatbot.cli.common import console, open_runtime
from chatbot.training.export import export_file

app = typer.Typer(help="Export logged chats as training data.")


@app.callback(invoke_without_command=True)
def export(
    out: Annotated[Path, typer.Option("--out", "-o", help="JSONL file to write")],
) -> None:
    """Write one OpenAI chat fine-tuning example per conversation."""
    runtime = open_runtime()
    with runtime.sessions() as session:
        report = export_file(session=session, path=out)
    console.print(
        f"Wrote {report.examples} examples from {report.conversations} conversations to {out}."
    )
