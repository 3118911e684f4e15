"""``afina finetune``: start a job from an export, list jobs, show one, its events, cancel it."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from chatbot.cli.common import CtrlC, console, err, open_runtime
from chatbot.db import finetune_store as jobs
from chatbot.db.training_queries import export_splits
from chatbot.errors import InputError
from chatbot.runtime import Runtime
from chatbot.training.finetune import local, platforms, runner
from chatbot.training.finetune.remote import run_remote_job

app = typer.Typer(help="Fine-tuning jobs: train on an export, register the result.")
Opt = typer.Option
PROVIDERS = ("local", "openai")


@app.callback()
def main() -> None:
    """Fine-tune a model on an export; the result is registered as a backend."""


def _local_config(runtime: Runtime, **given: Any) -> local.LocalConfig:
    """The job's hyperparameters: options given, else ``AFINA_FINETUNE_*``."""
    f = runtime.settings.finetune
    method = given["method"] or f.method
    local.check_method(method)
    rate = f.lora_learning_rate if method == "lora" else f.full_learning_rate
    return local.LocalConfig(
        method=method,
        epochs=given["epochs"] or f.epochs,
        max_steps=given["max_steps"],
        learning_rate=given["lr"] or rate,
        lora_rank=given["lora_rank"] or f.lora_rank,
        lora_alpha=float(given["lora_alpha"] or f.lora_alpha),
        batch_size=given["batch_size"] or f.batch_size,
        max_seq_tokens=given["max_seq_tokens"] or f.max_seq_tokens,
        max_minutes=given["max_minutes"] or f.max_minutes,
    )


@app.command()
def start(
    export: Annotated[int, Opt("--export", help="export id (printed by `afina export`)")],
    provider: Annotated[str, Opt(help="local (CPU, bundled SmolLM2) or openai")] = "local",
    method: Annotated[
        str | None, Opt(help="local: lora or full (AFINA_FINETUNE_METHOD); openai: supervised, dpo")
    ] = None,
    base_model: Annotated[str | None, Opt(help="base model; local: smollm2")] = None,
    epochs: Annotated[int | None, Opt(min=1, help="passes over the training file")] = None,
    max_steps: Annotated[int | None, Opt(min=1, help="stop after this many steps")] = None,
    max_minutes: Annotated[float | None, Opt(min=0.01, help="time budget of the job")] = None,
    lr: Annotated[float | None, Opt(help="learning rate (openai: its multiplier)")] = None,
    lora_rank: Annotated[int | None, Opt(min=1, help="LoRA rank")] = None,
    lora_alpha: Annotated[float | None, Opt(help="LoRA alpha")] = None,
    batch_size: Annotated[int | None, Opt(min=1, help="examples per step")] = None,
    max_seq_tokens: Annotated[int | None, Opt(min=16, help="tokens kept per example")] = None,
    name: Annotated[str | None, Opt(help="backend name; default ft-local-YYYYMMDD-N")] = None,
    folder: Annotated[
        Path | None, Opt("--dir", help="where the export's files are, if they moved")
    ] = None,
    suffix: Annotated[str | None, Opt(help="openai: suffix of the model id")] = None,
    base_url: Annotated[str | None, Opt(help="openai: the jobs API's base URL")] = None,
    api_key_env: Annotated[str | None, Opt(help="openai: NAME of the key's variable")] = None,
    created_by: Annotated[str | None, Opt("--by", help="user recorded as starting it")] = None,
) -> None:
    """Start a fine-tuning job on an export and wait for it; register the result as a backend."""
    if provider not in PROVIDERS:
        raise InputError(f"unknown provider {provider!r}; use --provider local or openai")
    runtime = open_runtime()
    try:
        if provider == "openai":
            hyper = {"n_epochs": epochs, "batch_size": batch_size, "learning_rate_multiplier": lr}
            _start_remote(runtime, export, folder, created_by, base_model, method or "supervised",
                          {k: v for k, v in hyper.items() if v}, max_minutes,
                          suffix=suffix, base_url=base_url, api_key_env=api_key_env)  # fmt: skip
            return
        config = _local_config(
            runtime, method=method, epochs=epochs, max_steps=max_steps, lr=lr,
            lora_rank=lora_rank, lora_alpha=lora_alpha, batch_size=batch_size,
            max_seq_tokens=max_seq_tokens, max_minutes=max_minutes,
        )  # fmt: skip
        _start_local(runtime, export, folder, created_by, base_model or "smollm2", config, name)
    finally:
        runtime.engine.dispose()


def _start_local(
    runtime: Runtime,
    export: int,
    folder: Path | None,
    created_by: str | None,
    base_model: str,
    config: local.LocalConfig,
    name: str | None,
) -> None:
    """Create and run a local job with a progress bar showing the loss."""
    base = runner.check_local_model(base_model)
    if name:
        runner.check_backend_name(runtime.sessions, name)
    job_id, files = runner.create_job(
        runtime.sessions, runtime.settings, export_id=export, provider="local", base_model=base,
        method=config.method, hyperparameters=config.as_dict(), folder=folder,
        created_by=created_by,
    )  # fmt: skip
    err.print(f"Job {job_id}: {config.method} fine-tune of {base} on export {export}.")
    ctrl_c = CtrlC("Ctrl+C: stopping before the next step (press it again to stop at once).")
    try:
        with ctrl_c, _LossBar() as bar:
            backend = runner.run_local_job(
                runtime.sessions, runtime.settings, job_id, files, progress=bar.update,
                name=name, stop=lambda: ctrl_c.pressed,
            )  # fmt: skip
    except (KeyboardInterrupt, local.Cancelled) as exc:
        if isinstance(exc, local.Cancelled) and not ctrl_c.pressed:  # `afina finetune cancel`
            raise InputError(f"job {job_id} was cancelled; nothing was written") from None
        err.print(f"Job {job_id} cancelled (Ctrl+C); nothing was written.")
        raise typer.Exit(130) from None
    console.print(
        f"Job {job_id} succeeded: backend {backend!r} registered. Serve it with "
        f"`afina llm serve`, then `afina backends use {backend}`.",
        highlight=False,
    )


def _start_remote(
    runtime: Runtime,
    export: int,
    folder: Path | None,
    created_by: str | None,
    base_model: str | None,
    method: str,
    hyper: dict[str, Any],
    max_minutes: float | None,
    **remote: Any,
) -> None:
    """Create an ``openai`` job row and hand it to the remote provider."""
    if not base_model:
        raise InputError("--provider openai needs --base-model, e.g. gpt-4.1-mini-2025-04-14")
    # announced shutdowns (platforms.py) refuse before anything is created or uploaded
    warning = platforms.check_start("openai", base_model, base_url=remote.get("base_url"))
    if warning:
        err.print(f"[yellow]Warning:[/] {escape(warning)}", highlight=False)
    job_id, _files = runner.create_job(
        runtime.sessions, runtime.settings, export_id=export, provider="openai",
        base_model=base_model, method=method, hyperparameters=hyper, folder=folder,
        created_by=created_by, **remote,
    )  # fmt: skip
    err.print(f"Job {job_id}: OpenAI-compatible fine-tune of {base_model} on export {export}.")
    try:
        with _RemoteStatus() as status:
            run_remote_job(
                runtime.sessions,
                job_id,
                runtime.settings,
                poll_s=runtime.settings.finetune.remote_poll_s,
                max_minutes=max_minutes,
                progress=status.update,
            )
    except KeyboardInterrupt:
        err.print(f"Job {job_id} cancelled (Ctrl+C).")
        raise typer.Exit(130) from None
    with runtime.sessions() as session:
        job = jobs.get_job(session=session, job_id=job_id)
        status_text, backend = job.status, job.backend_name
    if backend:
        console.print(
            f"Job {job_id} {status_text}: backend {backend!r} registered; "
            f"`afina backends use {backend}` switches to it."
        )
    else:
        console.print(f"Job {job_id} {status_text}.")


class _RemoteStatus:
    """A rich progress bar fed by the remote provider's polls: status, steps, losses."""

    def __init__(self) -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.fields[status]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}  val {task.fields[val]}"),
            console=err,
        )
        self.task = self.progress.add_task("remote", total=None, status="queued", loss="-", val="-")

    def __enter__(self) -> _RemoteStatus:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def update(self, poll: dict[str, Any]) -> None:
        """One poll of the remote job: ``status``, ``step``, ``total_steps``, losses."""
        fields: dict[str, Any] = {"status": poll.get("status", "")}
        if poll.get("total_steps"):
            fields["total"] = poll["total_steps"]
        if poll.get("step") is not None:
            fields["completed"] = poll["step"]
        for key, name in (("train_loss", "loss"), ("val_loss", "val")):
            if poll.get(key) is not None:
                fields[name] = f"{poll[key]:.3f}"
        self.progress.update(self.task, **fields)


class _LossBar:
    """A rich progress bar fed by the runner: steps, last loss, last validation loss."""

    def __init__(self) -> None:
        self.progress = Progress(
            TextColumn("[bold]training"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}  val {task.fields[val]}"),
            TimeRemainingColumn(),
            console=err,
        )
        self.task = self.progress.add_task("training", total=None, loss="-", val="-")

    def __enter__(self) -> _LossBar:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def update(self, what: str, **values: Any) -> None:
        """Move the bar: ``start`` (total), ``step`` (step, loss), ``eval`` (val_loss)."""
        if what == "start":
            self.progress.update(self.task, total=values["total"])
        elif what == "step":
            self.progress.update(self.task, completed=values["step"], loss=f"{values['loss']:.3f}")
        elif what == "eval" and values.get("val_loss") is not None:
            self.progress.update(self.task, val=f"{values['val_loss']:.3f}")


@app.command("list")
def list_command() -> None:
    """The newest jobs first."""
    runtime = open_runtime()
    table = Table(
        "id", "status", "provider", "method", "base model", "export", "backend", "created"
    )
    with runtime.sessions() as session:
        for job in jobs.list_jobs(session=session):
            table.add_row(
                str(job.id), job.status, job.provider, job.method, job.base_model,
                str(job.export_id or ""), job.backend_name or "",
                f"{job.created_at:%Y-%m-%d %H:%M}",
            )  # fmt: skip
    runtime.engine.dispose()
    console.print(table)


def _loss_table(metrics: list[dict[str, Any]], rows: int = 12) -> Table:
    """The loss curve: epoch ends always, other steps thinned to about ``rows``."""
    table = Table("step", "epoch", "train loss", "val loss")
    steps = [m for m in metrics if "val_loss" not in m]
    keep = {id(m) for m in steps[:: max(1, len(steps) // rows)]}
    for m in metrics:
        if "val_loss" in m or id(m) in keep:
            val = m.get("val_loss")
            table.add_row(
                str(m.get("step", "")), str(m.get("epoch", "")), f"{m.get('train_loss', '')}",
                "" if val is None else f"{val}" + ("  (epoch end)" if "val_loss" in m else ""),
            )  # fmt: skip
    return table


def _describe(job: Any, splits: Counter[str]) -> list[str]:
    """The job's facts, one line each (rich markup)."""
    asked = " (cancel requested)" if job.cancel_requested and job.status == "running" else ""
    chats = ", ".join(f"{n} chats in {s}" for s, n in sorted(splits.items()))
    artefact = job.artefact_path or job.remote_model_id or "-"
    digest = f" sha256 {job.artefact_sha256}" if job.artefact_sha256 else ""
    return [
        f"Job {job.id}: [bold]{job.status}[/]{asked}",
        f"provider {job.provider}, base model {job.base_model}, method {job.method}",
        f"hyperparameters {escape(json.dumps(job.hyperparameters))}",
        f"created {job.created_at:%Y-%m-%d %H:%M:%S}, started {job.started_at or '-'}, "
        f"finished {job.finished_at or '-'}",
        f"export {job.export_id}: {chats}",
        *(f"  {name} sha256 {sha}" for name, sha in sorted(job.export_files.items())),
        f"trained tokens {job.trained_tokens or '-'}, seconds {job.train_seconds or '-'}",
        f"artefact {escape(artefact)}{digest}",
        f"backend {job.backend_name or '-'}",
    ]


@app.command()
def show(job_id: Annotated[int, typer.Argument(help="job id")]) -> None:
    """Status, hyperparameters, lineage (export, file hashes, chats) and the loss curve."""
    runtime = open_runtime()
    with runtime.sessions() as session:
        job = jobs.get_job(session=session, job_id=job_id)
        splits = (
            Counter(export_splits(session=session, export_id=job.export_id).values())
            if job.export_id
            else Counter()
        )
        lines = _describe(job, splits)
        if job.error:
            lines.append(f"[red]error: {escape(job.error)}[/]")
        metrics = list(job.metrics)
    runtime.engine.dispose()
    for line in lines:
        console.print(line, highlight=False)
    if metrics:
        console.print(_loss_table(metrics))


@app.command()
def events(job_id: Annotated[int, typer.Argument(help="job id")]) -> None:
    """The job's events, oldest first."""
    runtime = open_runtime()
    with runtime.sessions() as session:
        rows = list(jobs.get_job(session=session, job_id=job_id).events)
    runtime.engine.dispose()
    for event in rows:
        console.print(
            f"{event['at'][:19]}  {event['level']:<5}  {event['message']}",
            highlight=False,
            markup=False,
        )


@app.command()
def cancel(job_id: Annotated[int, typer.Argument(help="job id")]) -> None:
    """Ask a running job to stop after its current step (a queued one stops at once)."""
    runtime = open_runtime()
    with runtime.sessions.begin() as session:
        job = jobs.request_cancel(session=session, job_id=job_id)
        if job.status == "queued":
            jobs.set_status(session=session, job=job, status="cancelled")
            jobs.add_event(session=session, job=job, message="cancelled before it started")
        status = job.status
    runtime.engine.dispose()
    if status == "cancelled":
        console.print(f"Job {job_id} cancelled.")
    else:
        console.print(f"Cancel requested: job {job_id} stops after its current step.")
