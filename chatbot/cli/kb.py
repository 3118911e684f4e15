"""``afina kb``: ingest a knowledge base and search it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from backends.retrieval.index import KnowledgeIndexError
from chatbot.cli.common import console, err, progress_bar
from chatbot.errors import ConfigError
from chatbot.knowledge.ingest import IngestReport, ingest
from chatbot.runtime import make_embedder
from chatbot.settings import Settings, get_settings

app = typer.Typer(help="Build and query the knowledge-base index.", no_args_is_help=True)


def build_index(settings: Settings, path: Path | None = None) -> IngestReport:
    """Ingest ``path`` (default: the configured or bundled knowledge base) with a progress bar."""
    source = path or settings.kb_path
    embedder = make_embedder(settings)
    with progress_bar(f"Embedding {source.name}") as (start, advance):
        return ingest(
            source,
            index_dir=settings.index_dir,
            embedder=embedder,
            hnsw_min_rows=settings.retrieval.hnsw_min_rows,
            on_start=start,
            progress=advance,
        )


@app.command("ingest")
def ingest_command(
    path: Annotated[
        Path | None,
        typer.Argument(help="File or folder (.csv, .jsonl, .md, .txt); default: bundled KB"),
    ] = None,
) -> None:
    """Ingest FAQ files and articles; unchanged content is not embedded again."""
    report = build_index(get_settings(), path)
    console.print(
        f"Indexed {report.entries} entries ({report.rows} rows, {report.index_type}): "
        f"{report.embedded} embedded, {report.reused} unchanged. Version {report.version}."
    )


@app.command("search")
def search_command(
    text: Annotated[str, typer.Argument(help="A question")],
    top: Annotated[int, typer.Option("--top", "-k", min=1, max=50)] = 5,
    locale: Annotated[str | None, typer.Option(help="Prefer entries in this language")] = None,
) -> None:
    """Print the best-matching entries with their scores."""
    from backends.retrieval.backend import RetrievalBackend
    from chatbot.backend_pool import kind_defaults

    settings = get_settings()
    backend = RetrievalBackend.from_config(kind_defaults(settings, "retrieval"))
    try:
        hits = backend.search(text, locale=locale, top_k=top)
    except KnowledgeIndexError as exc:
        raise ConfigError(str(exc)) from None
    table = Table("score", "id", "locale", "title")
    for hit in hits:
        table.add_row(f"{hit.score:.3f}", hit.entry.id, hit.entry.locale or "", hit.entry.title)
    console.print(table)
    if hits and hits[0].score < settings.retrieval.min_score:
        err.print(
            f"best score is below AFINA_RETRIEVAL_MIN_SCORE={settings.retrieval.min_score}: "
            "a chat would hand this over to a human"
        )
