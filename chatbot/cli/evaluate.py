"""``afina eval``: compare backends on held-out questions or chats; list, show and report runs."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from chatbot.cli.common import console, err, open_runtime, progress_bar
from chatbot.db import eval_store
from chatbot.errors import InputError
from chatbot.evaluation import jobs
from chatbot.evaluation.questions import BUNDLED_QUESTIONS
from chatbot.evaluation.report import write_plots, write_report
from chatbot.runtime import Runtime

app = typer.Typer(help="Compare backends: quality, hand-overs, latency, tokens, cost, break-even.")


@app.command("run")
def run(
    backends: Annotated[
        str, typer.Option(help="Comma-separated registered backends, e.g. faq,local-fewshot")
    ],
    questions: Annotated[
        list[Path] | None,
        typer.Option(help="JSONL question file(s); default: the bundled held-out + out-of-scope"),
    ] = None,
    export: Annotated[
        int | None, typer.Option(help="Replay the held-out chats of this export instead")
    ] = None,
    split: Annotated[str, typer.Option(help="The export's split to replay")] = "test",
    limit: Annotated[
        int | None, typer.Option(min=1, help="A seeded subset of this many items")
    ] = None,
    judge: Annotated[
        str | None, typer.Option(help="A registered backend that grades answers 1-5")
    ] = None,
    training_cost: Annotated[
        float | None, typer.Option(min=0, help="USD the fine-tune cost (no finetune_jobs row)")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Report file (.html; .json and .md beside it)")
    ] = None,
) -> None:
    """Answer every question with every backend through the chat service, score, and report."""
    if questions and export is not None:
        raise InputError("pass --questions or --export, not both")
    runtime = open_runtime()
    try:
        the_plan = jobs.plan(
            runtime,
            backends=backends.split(","),
            questions=list(questions or (() if export is not None else BUNDLED_QUESTIONS)),
            export_id=export,
            split=split,
            limit=limit,
            judge=judge,
            training_cost=training_cost,
        )
        run_id = jobs.start(runtime, the_plan)
        err.print(
            f"evaluation run {run_id}: {len(the_plan.items)} items x "
            f"{len(the_plan.backends)} backends"
        )
        status, reason = _execute(runtime, run_id, the_plan)
        jobs.finish(runtime, run_id, status, reason)
        _show(runtime, run_id)
        target = out or runtime.settings.home / "reports" / f"eval-{run_id}.html"
        for path in _write(runtime, run_id, target):
            console.print(f"wrote {path}")
    finally:
        runtime.engine.dispose()


def _execute(runtime: Runtime, run_id: int, the_plan: jobs.Plan) -> tuple[str, str | None]:
    """Run with a progress bar; Ctrl+C (or SIGTERM) leaves the run ``cancelled`` with what it
    answered."""

    async def main() -> jobs.Outcome:
        task = asyncio.current_task()
        if task is not None:  # SIGTERM (a service manager, `kill`) cancels like Ctrl+C
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        try:
            with progress_bar("evaluating") as (start, advance):
                start(len(the_plan.items) * len(the_plan.backends))
                return await jobs.execute(runtime, run_id, the_plan, advance=advance)
        finally:
            await runtime.pool.aclose()

    try:
        outcome = asyncio.run(main())
    except KeyboardInterrupt:
        jobs.finish(runtime, run_id, "cancelled", "interrupted (Ctrl+C)")
        err.print(f"run {run_id} cancelled; partial results: afina eval show {run_id}")
        raise
    except asyncio.CancelledError:
        jobs.finish(runtime, run_id, "cancelled", "stopped (SIGTERM)")
        err.print(f"run {run_id} cancelled; partial results: afina eval show {run_id}")
        raise typer.Exit(143) from None
    except BaseException as exc:
        jobs.finish(runtime, run_id, "failed", f"{type(exc).__name__}: {exc}")
        raise
    return outcome.status, outcome.reason


def _write(runtime: Runtime, run_id: int, out: Path) -> list[Path]:
    with runtime.sessions() as session:
        data, rows = jobs.load_report(session, run_id)
    return write_report(data, rows, out)


@app.command("list")
def list_runs() -> None:
    """Past evaluation runs, newest first."""
    runtime = open_runtime()
    try:
        table = Table("run", "created", "status", "backends", "items", "answers")
        with runtime.sessions() as session:
            for r in eval_store.list_runs(session=session):
                done = eval_store.count_results(session=session, run_id=r.id)
                total = (r.params or {}).get("total", "?")
                table.add_row(
                    str(r.id),
                    r.created_at.strftime("%Y-%m-%d %H:%M"),
                    r.status,
                    ", ".join(r.backends),
                    str((r.source or {}).get("items", "?")),
                    f"{done}/{total}",
                )
        console.print(table)
    finally:
        runtime.engine.dispose()


@app.command("show")
def show(run_id: Annotated[int, typer.Argument(help="The run (see 'afina eval list')")]) -> None:
    """A run's per-backend figures and break-even."""
    runtime = open_runtime()
    try:
        _show(runtime, run_id)
    finally:
        runtime.engine.dispose()


def _show(runtime: Runtime, run_id: int) -> None:
    with runtime.sessions() as session:
        data, _rows = jobs.load_report(session, run_id)
    table = Table(title=f"evaluation {run_id} ({data['run']['status']})")
    for column in ("backend", "quality", "key facts", "hand-over in/out", "p50/p95 ms",
                   "tokens in/out", "USD/1k", "errors/fallbacks"):  # fmt: skip
        table.add_column(column)
    for name in data["backends"]:
        entry = data["summary"].get(name)
        if entry is None:
            continue
        m = entry["metrics"]
        table.add_row(
            name,
            _stat(m["similarity"]),
            _stat(m["key_facts"], 100, "%"),
            f"{_stat(m['handoff_in_scope'], 100, '%')} / "
            f"{_stat(m['handoff_out_of_scope'], 100, '%')}",
            f"{_stat(m['latency_p50'], digits=0)} / {_stat(m['latency_p95'], digits=0)}",
            f"{_stat(m['input_tokens'], digits=0)} / {_stat(m['output_tokens'], digits=0)}",
            _stat(m["cost_per_1000"], digits=4),
            f"{m['errors']} / {m['fallbacks']}",
        )
    console.print(table)
    for pair in data["breakeven"]:
        n = pair["answers_to_break_even"]
        console.print(
            f"break-even {pair['finetuned']} vs {pair['fewshot']}: training "
            + (f"${pair['training_usd']:.4g}" if pair["training_usd"] is not None else "unknown")
            + f" ({pair['training_basis']}); saves {pair['prompt_tokens_saved'] or 0:.0f} prompt "
            f"tokens per answer; " + (f"pays off after {n:,.0f} answers" if n else "no break-even")
        )
    if data["run"].get("error"):
        err.print(f"[yellow]{data['run']['error']}[/]")


def _stat(stat: dict[str, Any], scale: float = 1.0, unit: str = "", digits: int = 2) -> str:
    if stat.get("value") is None:
        return "-"
    if digits == 2 and unit:
        digits = 0
    return f"{stat['value'] * scale:.{digits}f}{unit}"


@app.command("report")
def report(
    run_id: Annotated[int, typer.Argument(help="The run (see 'afina eval list')")],
    out: Annotated[Path, typer.Option(help="The HTML file; .json and .md are written beside it")],
    plots: Annotated[
        Path | None, typer.Option(help="Also write each plot as an SVG file into this folder")
    ] = None,
) -> None:
    """Write a run's report: one self-contained HTML page, plus JSON and a Markdown summary."""
    runtime = open_runtime()
    try:
        paths = _write(runtime, run_id, out)
        if plots is not None:
            with runtime.sessions() as session:
                data, rows = jobs.load_report(session, run_id)
            paths += write_plots(data, rows, plots)
        for path in paths:
            console.print(f"wrote {path}")
    finally:
        runtime.engine.dispose()
