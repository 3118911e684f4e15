"""Fine-tuning on an OpenAI-compatible jobs API: upload the export, create the job, follow it.

The job row (``finetune_jobs``, created by the runner) records every step as it happens: the
provider's events and losses, checkpoints, the status, and on success the fine-tuned model id,
billed tokens, cost and the ``finetuned`` backend registered for it. Each update is committed,
so ``afina finetune show``/``cancel`` in another process see it at once. Keys are read by the
NAME of their environment variable and never stored.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import openai

from backends.openai_chat import NO_KEY
from chatbot.db import finetune_store, store
from chatbot.errors import AfinaError, ConfigError, InputError
from chatbot.settings import Settings, TrainingSettings
from chatbot.training.finetune.platforms import OPENAI_BASE_URL, check_start, host_of, shutdown_flag
from chatbot.training.finetune.remote_data import (
    backend_name_for,
    export_files,
    loss_point,
    training_price,
)
from chatbot.training.finetune.remote_errors import RemoteJobError, Where, explain, job_failed

if TYPE_CHECKING:  # typing only: SQLAlchemy stays inside chatbot/db at run time
    from sqlalchemy.orm import Session, sessionmaker

    from chatbot.db.models import FinetuneJob

PROVIDER = "openai"
# Hyperparameters each remote method accepts (anything else on the job is left out, noted).
METHOD_HYPERPARAMETERS = {
    "supervised": ("n_epochs", "batch_size", "learning_rate_multiplier"),
    "dpo": ("n_epochs", "batch_size", "learning_rate_multiplier", "beta"),
}
UPLOAD_TIMEOUT_S = 300.0
Progress = Callable[[dict[str, Any]], None]


@dataclass
class _Spec:
    """What the job row asks for, read once at the start."""

    base_model: str
    base_url: str
    api_key_env: str
    suffix: str | None
    method: str
    hyperparameters: dict[str, Any]
    files: dict[str, Path]
    remote_id: str | None


@dataclass
class _Follow:
    """What has been seen of the remote job so far."""

    events: set[str] = field(default_factory=set)
    checkpoints: set[str] = field(default_factory=set)
    cancel_reason: str | None = None
    last: dict[str, Any] = field(default_factory=dict)


class _Row:
    """Short committed updates of one job row."""

    def __init__(self, sessions: sessionmaker[Session], job_id: int):
        self.sessions, self.job_id = sessions, job_id

    def update(self, change: Callable[[Session, FinetuneJob], Any]) -> Any:
        """Apply ``change`` to the job in its own transaction (committed on return)."""
        with self.sessions.begin() as session:
            return change(session, finetune_store.get_job(session=session, job_id=self.job_id))

    def event(self, message: str, level: str = "info") -> None:
        """Append one event line."""
        self.update(
            lambda s, job: finetune_store.add_event(
                session=s, job=job, message=message, level=level
            )
        )

    def finish(self, status: str, error: str | None = None) -> None:
        """Move the job to a final ``status``."""
        self.update(
            lambda s, job: finetune_store.set_status(session=s, job=job, status=status, error=error)
        )

    def cancel_requested(self) -> bool:
        """Whether someone asked the job to stop (``afina finetune cancel``)."""
        return bool(self.update(lambda s, job: job.cancel_requested))


def run_remote_job(
    sessions: sessionmaker[Session],
    job_id: int,
    settings: Settings,
    *,
    poll_s: float = 10.0,
    max_minutes: float | None = None,
    progress: Progress | None = None,
) -> None:
    """Run job ``job_id`` on its OpenAI-compatible provider until it succeeds, fails or stops.

    Returns when the job succeeded or was cancelled (by ``afina finetune cancel``, the time
    budget ``max_minutes``, or at the provider); raises ``AfinaError`` naming the fix when it
    failed, after storing the same message on the job. Ctrl+C cancels the remote job too.
    """
    row = _Row(sessions, job_id)
    spec = row.update(lambda s, job: _read_spec(s, job))
    where = Where(
        spec.base_url,
        spec.base_model,
        spec.api_key_env,
        settings.llm.timeout_s,
        settings.llm.max_retries,
    )
    follow, stage, client = _Follow(), "start", None
    try:
        spec.files = row.update(lambda s, job: export_files(s, job))
        warning = check_start(PROVIDER, spec.base_model, base_url=spec.base_url)
        if warning:
            row.event(warning, level="warning")
        row.update(lambda s, job: finetune_store.set_status(session=s, job=job, status="running"))
        client = _client(spec, settings)
        if spec.remote_id is None:
            stage = "upload"
            uploaded = _upload(client, spec, row)
            stage = "create"
            spec.remote_id = _create(client, spec, uploaded, row)
        stage = "poll"
        _follow(client, spec, settings.training, row, follow, poll_s, max_minutes, progress)
    except KeyboardInterrupt:
        _interrupted(client, spec, row)
        raise
    except openai.APIError as exc:
        message = explain(exc, stage=stage, where=where, file=getattr(exc, "afina_file", None))
        if stage == "poll":
            message += (
                f" (the provider's job {spec.remote_id} may still be running: follow or cancel "
                "it at the provider)"
            )
        _fail(row, message)
    except AfinaError as exc:
        _fail(row, str(exc), type(exc))


def _fail(row: _Row, message: str, kind: type[AfinaError] = RemoteJobError) -> None:
    """Store ``message`` on the failed job, then raise it for the caller."""
    row.finish("failed", message)
    raise kind(message)


def _read_spec(session: Session, job: FinetuneJob) -> _Spec:
    """The job's request; a finished job or another provider is an ``InputError``."""
    if job.provider != PROVIDER:
        raise InputError(f"job {job.id} is a {job.provider!r} job, not a remote ({PROVIDER}) one")
    if job.status in finetune_store.FINISHED:
        raise InputError(f"job {job.id} already {job.status}; start a new one")
    return _Spec(
        base_model=job.base_model,
        base_url=(job.base_url or OPENAI_BASE_URL).rstrip("/"),
        api_key_env=job.api_key_env or "",
        suffix=job.suffix,
        method=job.method,
        hyperparameters=dict(job.hyperparameters or {}),
        files={},
        remote_id=job.remote_job_id,
    )


def _client(spec: _Spec, settings: Settings) -> openai.OpenAI:
    """The SDK client; the key comes from the variable the job names (never stored)."""
    key = settings.llm.api_key(spec.api_key_env) if spec.api_key_env else None
    if spec.api_key_env and not key:
        raise ConfigError(
            f"no API key: the environment variable {spec.api_key_env} is not set; set it, or "
            "name another variable with --api-key-env"
        )
    if not key and host_of(spec.base_url) == host_of(OPENAI_BASE_URL):
        raise ConfigError(
            "no API key for OpenAI: put it in an environment variable and name that variable "
            "with --api-key-env OPENAI_API_KEY"
        )
    return openai.OpenAI(
        base_url=spec.base_url,
        api_key=key or NO_KEY,
        timeout=settings.llm.timeout_s,
        max_retries=settings.llm.max_retries,
    )


def _upload(client: openai.OpenAI, spec: _Spec, row: _Row) -> dict[str, str]:
    """Upload the train (and validation) file with purpose ``fine-tune``; split -> file id."""
    ids = {}
    for split, path in spec.files.items():
        try:
            with path.open("rb") as data:
                uploaded = client.files.create(
                    file=(path.name, data), purpose="fine-tune", timeout=UPLOAD_TIMEOUT_S
                )
        except openai.APIError as exc:
            exc.afina_file = path.name  # type: ignore[attr-defined]  # named in the message
            raise
        ids[split] = uploaded.id
        row.event(f"uploaded {path.name} ({uploaded.bytes} bytes) as {uploaded.id}")
    return ids


def _create(client: openai.OpenAI, spec: _Spec, files: dict[str, str], row: _Row) -> str:
    """Create the remote job; store and return its id."""
    method = spec.method if spec.method in METHOD_HYPERPARAMETERS else "supervised"
    allowed = METHOD_HYPERPARAMETERS[method]
    chosen = {k: v for k, v in spec.hyperparameters.items() if k in allowed}
    ignored = sorted(set(spec.hyperparameters) - set(chosen) - {"seed"})
    body: dict[str, Any] = {"type": method}
    if chosen:
        body[method] = {"hyperparameters": chosen}
    extra: dict[str, Any] = {}
    if "validation" in files:
        extra["validation_file"] = files["validation"]
    if spec.suffix:
        extra["suffix"] = spec.suffix
    if spec.hyperparameters.get("seed") is not None:
        extra["seed"] = int(spec.hyperparameters["seed"])
    created = client.fine_tuning.jobs.create(
        model=spec.base_model,
        training_file=files["train"],
        method=body,  # type: ignore[arg-type]  # a plain dict of the documented shape
        **extra,
    )

    def record(session: Session, job: FinetuneJob) -> None:
        job.remote_job_id = created.id
        note = f"created remote job {created.id} ({method}, {spec.base_model}"
        note += f", {chosen})" if chosen else ")"
        finetune_store.add_event(session=session, job=job, message=note)
        if ignored:
            finetune_store.add_event(
                session=session,
                job=job,
                level="warning",
                message=f"not sent to the provider (no such {method} option): {', '.join(ignored)}",
            )

    row.update(record)
    return created.id


def _follow(
    client: openai.OpenAI,
    spec: _Spec,
    training: TrainingSettings,
    row: _Row,
    follow: _Follow,
    poll_s: float,
    max_minutes: float | None,
    progress: Progress | None,
) -> None:
    """Poll the remote job into the row until it ends; cancel it when asked or out of time."""
    assert spec.remote_id is not None
    deadline = None if max_minutes is None else time.monotonic() + max_minutes * 60
    while True:
        remote = client.fine_tuning.jobs.retrieve(spec.remote_id)
        _record_progress(client, remote, row, follow)
        if progress is not None:
            progress({"status": remote.status, "remote_job_id": remote.id, **follow.last})
        if remote.status == "succeeded":
            _succeeded(remote, spec, training, row)
            return
        if remote.status == "failed":
            raise RemoteJobError(job_failed(remote, _where(spec)))
        if remote.status == "cancelled":
            reason = follow.cancel_reason or (
                f"cancelled at the provider ({spec.base_url}), not from Afina: start a new job "
                "to train again"
            )
            row.finish("cancelled", reason)
            return
        if follow.cancel_reason is None:
            if row.cancel_requested():
                follow.cancel_reason = "cancelled with 'afina finetune cancel'"
            elif deadline is not None and time.monotonic() >= deadline:
                follow.cancel_reason = (
                    f"stopped after the time budget of {max_minutes:g} min: the remote job was "
                    "cancelled (give a larger --max-minutes)"
                )
            if follow.cancel_reason is not None:
                row.event(
                    f"asking {spec.base_url} to cancel {spec.remote_id}: {follow.cancel_reason}"
                )
                try:
                    client.fine_tuning.jobs.cancel(spec.remote_id)
                except (openai.BadRequestError, openai.ConflictError) as exc:  # already ended
                    row.event(f"cancel refused: {exc.message}", level="warning")
                continue
        time.sleep(poll_s)


def _where(spec: _Spec) -> Where:
    """The provider, for messages about a finished job."""
    return Where(spec.base_url, spec.base_model, spec.api_key_env, 0.0, 0)


def _record_progress(client: openai.OpenAI, remote: Any, row: _Row, follow: _Follow) -> None:
    """New provider events (losses as metrics) and checkpoints (as events), in one update."""
    fresh = []
    for event in client.fine_tuning.jobs.list_events(remote.id, limit=100):  # newest first
        if event.id in follow.events:
            break
        fresh.append(event)
    checkpoints = []
    if remote.status not in ("validating_files", "queued"):
        listed = client.fine_tuning.jobs.checkpoints.list(remote.id, limit=100)
        checkpoints = [c for c in listed if c.id not in follow.checkpoints]

    def record(session: Session, job: FinetuneJob) -> None:
        for event in reversed(fresh):
            follow.events.add(event.id)
            level = "warning" if event.level == "warn" else event.level
            finetune_store.add_event(session=session, job=job, message=event.message, level=level)
            point = loss_point(event.data)
            if point:
                follow.last = point
                finetune_store.add_metric(session=session, job=job, **point)
        for checkpoint in sorted(checkpoints, key=lambda c: c.step_number):
            follow.checkpoints.add(checkpoint.id)
            losses = loss_point(checkpoint.metrics.model_dump(exclude_none=True)) or {}
            shown = ", ".join(f"{k} {v:g}" for k, v in losses.items() if k.endswith("loss"))
            message = (
                f"checkpoint at step {checkpoint.step_number}: "
                f"{checkpoint.fine_tuned_model_checkpoint}" + (f" ({shown})" if shown else "")
            )
            finetune_store.add_event(session=session, job=job, message=message)

    row.update(record)


def _succeeded(remote: Any, spec: _Spec, training: TrainingSettings, row: _Row) -> None:
    """Store the model, tokens and cost, and register the ``finetuned`` backend."""
    model = remote.fine_tuned_model
    if not model:
        raise RemoteJobError(
            f"{spec.base_url} reported job {remote.id} succeeded without a model id: "
            "see 'afina finetune events ID' and ask the provider"
        )
    tokens = remote.trained_tokens
    price = training_price(training, spec.base_model)
    name = backend_name_for(model)
    config = {"base_url": spec.base_url, "model": model}
    if spec.api_key_env:
        config["api_key_env"] = spec.api_key_env

    def record(session: Session, job: FinetuneJob) -> None:
        store.put_backend(session=session, name=name, kind="finetuned", config=config)
        job.remote_model_id, job.backend_name = model, name
        job.trained_tokens = tokens
        job.cost_usd = None if tokens is None else round(tokens * price / 1_000_000, 6)
        if remote.finished_at:  # the provider's clock: queueing included
            job.train_seconds = max(0.0, remote.finished_at - remote.created_at)
        finetune_store.add_event(
            session=session, job=job, message=f"registered backend {name!r} for {model}"
        )
        flag = shutdown_flag(model, base_url=spec.base_url)
        if flag:
            finetune_store.add_event(session=session, job=job, message=flag, level="warning")
        finetune_store.set_status(session=session, job=job, status="succeeded")

    row.update(record)


def _interrupted(client: openai.OpenAI | None, spec: _Spec, row: _Row) -> None:
    """Ctrl+C: cancel the remote job (best effort) and leave the row cancelled."""
    note = "stopped with Ctrl+C"
    if client is not None and spec.remote_id is not None:
        try:
            client.fine_tuning.jobs.cancel(spec.remote_id)
            note += f"; the remote job {spec.remote_id} was cancelled"
        except openai.APIError as exc:
            note += f"; cancelling the remote job {spec.remote_id} failed ({exc.message}): "
            note += "cancel it at the provider"
    row.finish("cancelled", note)
