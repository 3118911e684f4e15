"""``afina kb``: ingest a knowledge base and search it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from backends.retrieval.index import KnowledgeIndexError
from chatbot.cli import kb_calibrate, kb_tune
from chatbot.cli.common import console, err, progress_bar
from chatbot.errors import ConfigError
from chatbot.knowledge.ingest import IngestReport, ingest_configured
from chatbot.settings import Settings, get_settings

app = typer.Typer(help="Build and query the knowledge-base index.", no_args_is_help=True)
app.command("tune")(kb_tune.tune_command)
app.command("models")(kb_tune.models_command)
app.command("use-model")(kb_tune.use_model_command)
app.command("calibrate")(kb_calibrate.calibrate_command)


def build_index(settings: Settings, path: Path | None = None) -> list[IngestReport]:
    """Ingest ``path`` (default: the configured or bundled knowledge base) with a progress bar."""
    source = path or settings.kb_path
    with progress_bar(f"Embedding {source.name}") as (start, advance):
        return ingest_configured(settings, path, on_start=start, progress=advance)


@app.command("ingest")
def ingest_command(
    path: Annotated[
        Path | None,
        typer.Argument(help="File or folder (.csv, .jsonl, .md, .txt); default: bundled KB"),
    ] = None,
    calibrate: Annotated[
        list[Path] | None,
        typer.Option(
            help="Then calibrate the hand-over scores on these JSONL questions "
            "(as 'afina kb calibrate')",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
) -> None:
    """Ingest FAQ files and articles; unchanged content is not embedded again."""
    for report in build_index(get_settings(), path):
        calibrated = (
            f" Hand-over score {report.handover:.3f} (calibrated again)."
            if report.handover is not None
            else ""
        )
        console.print(
            f"[bold]{report.group}[/]: {report.entries} entries ({report.rows} rows, "
            f"{report.index_type}, {report.model}): {report.embedded} embedded, "
            f"{report.reused} unchanged. Version {report.version}.{calibrated}",
            soft_wrap=True,  # one line per language, whatever the terminal's width
        )
    if calibrate:
        kb_calibrate.run_calibration(calibrate)


@app.command("prepare-models")
def prepare_models_command() -> None:
    """Convert the ONNX Runtime embedders once (offline, from the installed models): the
    configured ones and minilm-onnx, so the first chat or ingest does not wait for it."""
    from backends.retrieval.embedder import load_embedder
    from backends.retrieval.st_onnx import MINILM_ONNX
    from chatbot.knowledge.tuning.registry import active_language_models

    settings = get_settings()
    r = settings.retrieval
    specs = {r.model, *active_language_models(settings).values(), MINILM_ONNX}
    for spec in sorted(specs):
        embedder = load_embedder(spec, allow_download=r.allow_download, model_cache=r.model_cache)
        console.print(f"ready: {embedder.name}", soft_wrap=True)


@app.command("search")
def search_command(
    text: Annotated[str, typer.Argument(help="A question")],
    top: Annotated[int, typer.Option("--top", "-k", min=1, max=50)] = 5,
    locale: Annotated[
        str | None, typer.Option(help="Search this language's entries (default: detected)")
    ] = None,
) -> None:
    """Print the best-matching entries with their scores."""
    from backends.language import detect_or
    from backends.retrieval.backend import RetrievalBackend
    from chatbot.backend_pool import kind_defaults

    settings = get_settings()
    backend = RetrievalBackend.from_config(kind_defaults(settings, "retrieval"))
    locale = locale or detect_or(text, settings.chat.default_locale)
    try:
        group, index, hits = backend.search(text, locale=locale, top_k=top)
    except KnowledgeIndexError as exc:
        raise ConfigError(str(exc)) from None
    if group in backend.spelling_languages and (spelled := index.speller.correct(text)) != text:
        err.print(f"searched as: {spelled}")
    table = Table("score", "id", "locale", "title", title=f"{group} index ({index.meta.model})")
    for hit in hits:
        table.add_row(f"{hit.score:.3f}", hit.entry.id, hit.entry.locale or "", hit.entry.title)
    console.print(table)
    if hits and backend.confidence(group, hits, text) < backend.threshold(group):
        err.print(
            f"best score is below the hand-over score {backend.threshold(group):.3f} "
            "('afina kb calibrate', else AFINA_RETRIEVAL_MIN_SCORE / "
            "AFINA_RETRIEVAL_LANGUAGE_MIN_SCORES): a chat would hand this over to a human"
        )
