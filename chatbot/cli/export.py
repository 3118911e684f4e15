"""``afina export``: logged chats as validated, redacted fine-tuning files; ``export validate``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from chatbot.cli import export_pii
from chatbot.cli.common import console, err, open_runtime, progress_bar
from chatbot.errors import InputError
from chatbot.settings import get_settings
from chatbot.training.examples import ExampleOptions
from chatbot.training.export import ExportOptions, run_export, validate_paths
from chatbot.training.filters import ExportFilters
from chatbot.training.pii.backfill import pending
from chatbot.training.report import build_report, render_text
from chatbot.training.split import SplitPlan

app = typer.Typer(
    help="Export logged chats as training data (OpenAI chat fine-tuning or preference JSONL)."
)

Opt = typer.Option


def _date(value: str | None, name: str) -> datetime | None:
    """An ISO date or datetime (UTC when no zone is given)."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InputError(f"{name} {value!r} is not a date: use YYYY-MM-DD or an ISO time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@app.callback(invoke_without_command=True)
def export(
    ctx: typer.Context,
    out: Annotated[
        Path | None, Opt("--out", "-o", help="folder for train/validation(/test).jsonl + report")
    ] = None,
    fmt: Annotated[str, Opt("--format", help="chat (SFT) or dpo (preference pairs)")] = "chat",
    since: Annotated[str | None, Opt(help="conversations started on/after (ISO date)")] = None,
    until: Annotated[str | None, Opt(help="conversations started before (ISO date)")] = None,
    backend: Annotated[str | None, Opt(help="only chats answered by this backend")] = None,
    rating: Annotated[str, Opt(help="positive | not-negative | any")] = "not-negative",
    corrected_only: Annotated[bool, Opt(help="train only on corrected answers")] = False,
    min_turns: Annotated[int, Opt(help="at least this many user turns")] = 1,
    user: Annotated[str | None, Opt(help="only chats of this user")] = None,
    locale: Annotated[str | None, Opt(help="only chats in this locale, e.g. es")] = None,
    per_turn: Annotated[bool, Opt(help="one example per approved answer")] = False,
    drop_unapproved: Annotated[
        bool, Opt(help="drop examples with unapproved answers (default: keep as weight 0)")
    ] = False,
    redact: Annotated[bool, Opt(help="replace personal data by placeholders")] = True,
    validation: Annotated[float | None, Opt(help="share of chats for validation")] = None,
    test: Annotated[float | None, Opt(help="share of chats held out for test")] = None,
    seed: Annotated[int | None, Opt(help="split seed")] = None,
    pin_test: Annotated[
        bool, Opt(help="pin this export's test chats so later exports keep them")
    ] = False,
    near_duplicates: Annotated[bool, Opt(help="keep near-duplicates on one side")] = True,
    by: Annotated[str | None, Opt("--by", help="who exports (recorded in lineage)")] = None,
    as_json: Annotated[bool, Opt("--json", help="print the report as JSON")] = False,
    strict: Annotated[bool, Opt(help="exit 1 when the files would be rejected")] = False,
    preview: Annotated[
        int, Opt(help="print the redacted messages of the first N exported conversations")
    ] = 0,
) -> None:
    """Write validated training files; ``--out FILE.jsonl`` writes one file without splits."""
    if ctx.invoked_subcommand is not None:
        return
    if out is None:
        raise InputError("say where to write: afina export --out FOLDER (or --out FILE.jsonl)")
    if fmt not in ("chat", "dpo"):
        raise InputError(f"unknown --format {fmt!r}; use chat or dpo")
    settings = get_settings()
    t = settings.training
    options = ExportOptions.from_settings(
        t,
        filters=ExportFilters(
            since=_date(since, "--since"),
            until=_date(until, "--until"),
            backend=backend,
            rating=rating,  # type: ignore[arg-type]  # checked by ExportFilters
            corrected_only=corrected_only,
            min_turns=min_turns,
            user=user,
            locale=locale,
        ),
        examples=ExampleOptions(fmt, per_turn, drop_unapproved, t.system_prompt),  # type: ignore[arg-type]
        plan=_plan(validation, test, seed, t),
        redact=redact,
        near_duplicates=near_duplicates,
        pin_test=pin_test,
        single_file=out.suffix == ".jsonl",
        preview=preview,
    )
    runtime = open_runtime()
    try:
        with progress_bar("Detecting personal data") as (start, detected):
            start(pending(runtime.sessions) if redact else 0)
            with progress_bar("Reading chats") as (_, advance):
                result = run_export(
                    sessions=runtime.sessions,
                    out=out,
                    options=options,
                    encode_factory=lambda: _encoder(settings),
                    created_by=by or settings.chat.cli_user,
                    progress=advance,
                    pii=settings.pii,
                    pii_progress=detected,
                )
    finally:
        runtime.engine.dispose()
    _print(result.report, result.text, as_json)
    print_preview(result.preview)
    written = ", ".join(str(p) for p in result.files.values())
    (err if as_json else console).print(f"Export #{result.export_id}: {written}")
    if strict and not result.ok:
        raise typer.Exit(1)


def _plan(validation: float | None, test: float | None, seed: int | None, t: Any) -> SplitPlan:
    """The split plan: options over settings, with a clear error for bad fractions."""
    try:
        return SplitPlan(
            t.validation_fraction if validation is None else validation,
            t.test_fraction if test is None else test,
            t.seed if seed is None else seed,
        )
    except ValueError as exc:
        raise InputError(f"{exc}; fix --validation/--test") from None


def _encoder(settings: Any) -> Any:
    """The retrieval embedder's encode function (loads the model once, blocking)."""
    from chatbot.runtime import make_embedder

    embedder = make_embedder(settings)
    return lambda texts: embedder.encode(texts, "query")


def _print(report: dict[str, Any], text: str, as_json: bool) -> None:
    """The report, as JSON or as text."""
    if as_json:
        console.print_json(json.dumps(report))
    else:
        console.print(text, highlight=False, markup=False, soft_wrap=True)


def print_preview(rows: list[tuple[str, str, str]]) -> None:
    """Redacted messages with their ids (mark a missed span: ``afina export mark-pii ID TEXT``)."""
    if not rows:
        return
    err.print("[bold]Preview[/] (redacted; mark what was missed: afina export mark-pii ID TEXT)")
    for message_id, role, text in rows:
        err.print(f"  {message_id} {role:<9} {escape(text[:300])}", highlight=False)


app.command("pii-backfill")(export_pii.backfill_command)
app.command("mark-pii")(export_pii.mark_command)


@app.command("validate")
def validate(
    files: Annotated[
        list[Path],
        typer.Argument(help="training file first, then validation/test files; or an export folder"),
    ],
    as_json: Annotated[bool, Opt("--json", help="print the report as JSON")] = False,
) -> None:
    """Check files against OpenAI's fine-tuning rules; exit 1 when any rule fails."""
    t = get_settings().training
    results = validate_paths(files, t.max_example_tokens)
    report = build_report(
        results,
        model=t.model,
        max_tokens=t.max_example_tokens,
        price_per_million=t.price_per_million_tokens,
    )
    _print(report, render_text(report), as_json)
    if not report["ok"]:
        err.print("[red]Validation failed:[/] fix the errors listed above.")
        raise typer.Exit(1)
