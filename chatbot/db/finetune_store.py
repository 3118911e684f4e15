"""Queries of ``finetune_jobs``: create a job, record progress, finish it, list it.

Shared by every fine-tuning provider (local CPU training, remote OpenAI-compatible jobs API), so a
job row looks the same whoever ran it. Each function takes the session keyword-only; the caller
owns the transaction (short ones: a training loop commits each update so other processes — the
CLI's ``show``/``cancel``, the web page — see it at once).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from chatbot.db.models import FINETUNE_STATUSES, FinetuneJob, utcnow
from chatbot.errors import InputError, NotFoundError

FINISHED = ("succeeded", "failed", "cancelled")


def add_job(
    *,
    session: Session,
    provider: str,
    base_model: str,
    export_id: int | None,
    export_files: dict[str, str],
    created_by: int | None = None,
    method: str = "lora",
    hyperparameters: dict[str, Any] | None = None,
    base_url: str | None = None,
    api_key_env: str | None = None,
    suffix: str | None = None,
) -> FinetuneJob:
    """A new ``queued`` job."""
    job = FinetuneJob(
        provider=provider,
        base_model=base_model,
        export_id=export_id,
        export_files=dict(export_files),
        created_by=created_by,
        method=method,
        hyperparameters=dict(hyperparameters or {}),
        base_url=base_url,
        api_key_env=api_key_env,
        suffix=suffix,
        status="queued",
        metrics=[],
        events=[],
    )
    session.add(job)
    session.flush()
    return job


def get_job(*, session: Session, job_id: int) -> FinetuneJob:
    """The job, or ``NotFoundError`` naming the command that lists them."""
    job = session.get(FinetuneJob, job_id)
    if job is None:
        raise NotFoundError(f"no fine-tuning job {job_id}; see 'afina finetune list'")
    return job


def list_jobs(*, session: Session, limit: int = 100) -> list[FinetuneJob]:
    """The newest jobs first."""
    query = select(FinetuneJob).order_by(FinetuneJob.id.desc()).limit(limit)
    return list(session.scalars(query))


def job_for_backend(*, session: Session, backend_name: str) -> FinetuneJob | None:
    """The job that registered ``backend_name`` (lineage of a fine-tuned backend's answers)."""
    query = (
        select(FinetuneJob)
        .where(FinetuneJob.backend_name == backend_name)
        .order_by(FinetuneJob.id.desc())
        .limit(1)
    )
    return session.scalar(query)


def set_status(
    *, session: Session, job: FinetuneJob, status: str, error: str | None = None
) -> None:
    """Move the job to ``status``, stamping start and finish times; ``error`` for failures."""
    if status not in FINETUNE_STATUSES:
        raise InputError(
            f"unknown job status {status!r}; use one of {', '.join(FINETUNE_STATUSES)}"
        )
    now = utcnow()
    job.status, job.updated_at = status, now
    if status == "running" and job.started_at is None:
        job.started_at = now
    if status in FINISHED:
        job.finished_at = now
    if error is not None:
        job.error = error
    session.flush()


def add_metric(*, session: Session, job: FinetuneJob, **values: Any) -> None:
    """Append one metrics point (step, epoch, train_loss, val_loss...)."""
    job.metrics = [*job.metrics, {**values, "at": utcnow().isoformat()}]
    job.updated_at = utcnow()
    session.flush()


def add_event(*, session: Session, job: FinetuneJob, message: str, level: str = "info") -> None:
    """Append one event line (the provider's, or Afina's own)."""
    job.events = [*job.events, {"at": utcnow().isoformat(), "level": level, "message": message}]
    job.updated_at = utcnow()
    session.flush()


def request_cancel(*, session: Session, job_id: int) -> FinetuneJob:
    """Ask a running or queued job to stop; a finished job is an ``InputError``."""
    job = get_job(session=session, job_id=job_id)
    if job.status in FINISHED:
        raise InputError(f"job {job_id} already {job.status}; nothing to cancel")
    job.cancel_requested, job.updated_at = True, utcnow()
    session.flush()
    return job
