"""Fine-tuning jobs end to end: check the export, record the job, train, register the backend.

Every progress update is committed in its own short transaction, so ``afina finetune show`` and
``cancel`` from another process see the job as it runs.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatbot.db import finetune_store as jobs
from chatbot.db import store
from chatbot.db.training_queries import get_export
from chatbot.errors import AfinaError, InputError, NotFoundError
from chatbot.settings import Settings
from chatbot.training.finetune import local
from chatbot.training.finetune.data import system_prompt_of
from chatbot.training.lineage import sha256_file
from chatbot.training.validate import Validator

if TYPE_CHECKING:  # typing only: SQLAlchemy stays inside chatbot/db at run time
    from sqlalchemy.orm import Session, sessionmaker

SPLITS = ("train", "validation")  # the test split is never read by a fine-tune
LOCAL_MODELS = {local.BASE_MODEL.lower(), "smollm2"}
LOCAL_MODEL_ID = "smollm2"


@dataclass(frozen=True)
class ExportFiles:
    """An export's training files, checked: path and sha256 by split."""

    export_id: int
    paths: dict[str, Path]
    hashes: dict[str, str]


def _recorded_paths(export: Any, folder: Path | None) -> dict[str, Path]:
    """Where the export wrote each split (from its report), or the same names in ``folder``."""
    found = {}
    for summary in (export.report or {}).get("files", []):
        path = Path(summary["path"])
        found[summary["split"]] = folder / path.name if folder else path
    return found


def check_export(
    *,
    session: Session,
    export_id: int,
    folder: Path | None,
    max_tokens: int,
    export_format: str = "chat",
) -> ExportFiles:
    """The export's train/validation files, present, unchanged and valid, or an ``InputError``."""
    export = get_export(session=session, export_id=export_id)
    if export is None:
        raise NotFoundError(
            f"no export {export_id}; `afina export --out FOLDER` prints the id of a new one"
        )
    if export.format != export_format:
        raise InputError(
            f"export {export_id} is {export.format!r} data; this job needs a {export_format!r} "
            f"export (afina export --format {export_format})"
        )
    paths = {s: p for s, p in _recorded_paths(export, folder).items() if s in SPLITS}
    if "train" not in paths:
        raise InputError(f"export {export_id} has no training file; export again with --out")
    hashes = {}
    for split, path in paths.items():
        if not path.is_file():
            raise InputError(
                f"export {export_id}'s {split} file {path} is missing; pass --dir FOLDER where "
                "the export's files are now, or export again"
            )
        digest = sha256_file(path)
        if export.files.get(path.name) != digest:
            raise InputError(
                f"export {export_id}'s file {path} changed since it was exported (sha256 "
                "differs); export again with `afina export` instead of editing the files"
            )
        hashes[path.name] = digest
    _validate(export_id, paths, max_tokens)
    return ExportFiles(export_id=export_id, paths=paths, hashes=hashes)


def _validate(export_id: int, paths: dict[str, Path], max_tokens: int) -> None:
    """Run the export validator; errors refuse the job, naming the rules and the fix."""
    validator = Validator(max_tokens)
    for split, path in paths.items():
        result = validator.validate(path, split)
        if result.errors:
            rules = ", ".join(sorted(result.counts))
            raise InputError(
                f"export {export_id}'s {split} file fails validation ({rules}); "
                f"see `afina export validate {path.parent}`, fix the chats and export again"
            )


def check_local_model(base_model: str) -> str:
    """The local base model's canonical name, or an ``InputError`` naming the one available."""
    if base_model.lower() not in LOCAL_MODELS:
        raise InputError(
            f"unknown base model {base_model!r} for the local provider; it trains the bundled "
            f"{local.BASE_MODEL} (--base-model smollm2), or use --provider openai"
        )
    return local.BASE_MODEL


def create_job(
    sessions: sessionmaker[Session],
    settings: Settings,
    *,
    export_id: int,
    provider: str,
    base_model: str,
    method: str,
    hyperparameters: dict[str, Any],
    folder: Path | None = None,
    created_by: str | None = None,
    **remote: Any,
) -> tuple[int, ExportFiles]:
    """Check the export and record a ``queued`` job; its id and the checked files."""
    with sessions.begin() as session:
        files = check_export(
            session=session,
            export_id=export_id,
            folder=folder,
            max_tokens=settings.training.max_example_tokens,
            export_format="dpo" if method == "dpo" else "chat",
        )
        user = store.ensure_user(session=session, username=created_by) if created_by else None
        job = jobs.add_job(
            session=session,
            provider=provider,
            base_model=base_model,
            export_id=export_id,
            export_files=files.hashes,
            created_by=user.id if user else None,
            method=method,
            hyperparameters=hyperparameters,
            **remote,
        )
        jobs.add_event(session=session, job=job, message=f"created from export {export_id}")
        return job.id, files


class JobHooks:
    """The trainer's hooks: each update is one short committed transaction (+ a progress bar)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        job_id: int,
        progress: Callable[..., None] | None,
        stop: Callable[[], bool] | None = None,
    ):
        self.sessions, self.job_id, self.progress, self.stop = sessions, job_id, progress, stop
        self.every = 1

    def _update(self, change: Callable[[Session, Any], None]) -> None:
        with self.sessions.begin() as session:
            change(session, jobs.get_job(session=session, job_id=self.job_id))

    def started(self, total_steps: int, examples: int) -> None:
        """Record the plan; log about 50 loss points whatever the length."""
        self.every = max(1, total_steps // 50)
        message = f"training on {examples} examples, {total_steps} steps"
        self._update(lambda s, job: jobs.add_event(session=s, job=job, message=message))
        if self.progress:
            self.progress("start", total=total_steps)

    def step(self, step: int, epoch: int, loss: float) -> None:
        """Record the step's loss (every few steps) and move the bar."""
        if step % self.every == 0:
            self._update(
                lambda s, job: jobs.add_metric(
                    session=s, job=job, step=step, epoch=epoch, train_loss=round(loss, 4)
                )
            )
        if self.progress:
            self.progress("step", step=step, loss=loss)

    def evaluated(self, step: int, epoch: int, train_loss: float, val_loss: float | None) -> None:
        """Record an epoch's mean train loss and its validation loss."""
        values: dict[str, Any] = {"step": step, "epoch": epoch, "train_loss": round(train_loss, 4)}
        values["val_loss"] = round(val_loss, 4) if val_loss is not None else None
        self._update(lambda s, job: jobs.add_metric(session=s, job=job, **values))
        if self.progress:
            self.progress("eval", val_loss=val_loss)

    def event(self, message: str) -> None:
        """One line in the job's events."""
        self._update(lambda s, job: jobs.add_event(session=s, job=job, message=message))

    def cancelled(self) -> bool:
        """Whether ``stop()`` (Ctrl+C) or `afina finetune cancel` asked this job to stop."""
        if self.stop and self.stop():
            return True
        with self.sessions() as session:
            return bool(jobs.get_job(session=session, job_id=self.job_id).cancel_requested)


def _finish(
    sessions: sessionmaker[Session], job_id: int, status: str, error: str | None = None
) -> None:
    """Mark the job finished (failed or cancelled) with one event."""
    with sessions.begin() as session:
        job = jobs.get_job(session=session, job_id=job_id)
        jobs.set_status(session=session, job=job, status=status, error=error)
        jobs.add_event(
            session=session,
            job=job,
            message=error or status,
            level="error" if status == "failed" else "info",
        )


def _remove_partial(folder: Path) -> None:
    """Delete half-written files (an interrupted write leaves only ``*.partial``)."""
    for path in folder.glob("*.partial"):
        path.unlink(missing_ok=True)


def run_local_job(
    sessions: sessionmaker[Session],
    settings: Settings,
    job_id: int,
    files: ExportFiles,
    *,
    progress: Callable[..., None] | None = None,
    name: str | None = None,
    stop: Callable[[], bool] | None = None,
) -> str:
    """Train a queued local job; on success register its backend (``name`` or a dated one).

    ``stop()`` true (Ctrl+C in the CLI) cancels it like `afina finetune cancel`: between steps.
    """
    with sessions.begin() as session:
        job = jobs.get_job(session=session, job_id=job_id)
        config = local.LocalConfig(**job.hyperparameters)
        jobs.set_status(session=session, job=job, status="running")
    out_dir = (settings.home / "finetune" / str(job_id)).resolve()
    hooks = JobHooks(sessions, job_id, progress, stop)
    try:
        from backends.llm_server import bundled_model_path

        result = local.train(
            train_file=files.paths["train"],
            validation_file=files.paths.get("validation"),
            out_dir=out_dir,
            config=config,
            hooks=hooks,
            base_gguf=bundled_model_path(),
        )
    except (local.Cancelled, KeyboardInterrupt):
        _remove_partial(out_dir)
        _finish(sessions, job_id, "cancelled")
        raise
    except AfinaError as exc:
        _remove_partial(out_dir)
        _finish(sessions, job_id, "failed", str(exc))
        raise
    except Exception as exc:
        _remove_partial(out_dir)
        _finish(sessions, job_id, "failed", f"{type(exc).__name__}: {exc}")
        raise
    return _succeed(sessions, settings, job_id, result, files, name)


def check_backend_name(sessions: sessionmaker[Session], name: str) -> None:
    """An ``InputError`` when a backend called ``name`` exists already."""
    with sessions() as session:
        if any(b.name == name for b in store.list_backends(session=session)):
            raise InputError(f"a backend named {name!r} exists; choose another --name")


def backend_name_for(session: Session, day: datetime) -> str:
    """``ft-local-YYYYMMDD-N``, N one more than the highest used that day."""
    prefix = f"ft-local-{day:%Y%m%d}-"
    used = [
        int(m.group(1))
        for b in store.list_backends(session=session)
        if (m := re.fullmatch(re.escape(prefix) + r"(\d+)", b.name))
    ]
    return f"{prefix}{max(used, default=0) + 1}"


def _succeed(
    sessions: sessionmaker[Session],
    settings: Settings,
    job_id: int,
    result: local.TrainResult,
    files: ExportFiles,
    name: str | None,
) -> str:
    """Store the artefact and figures, register the ``finetuned`` backend, mark succeeded."""
    from chatbot.backend_pool import local_base_url

    with sessions.begin() as session:
        job = jobs.get_job(session=session, job_id=job_id)
        name = name or backend_name_for(session, datetime.now(UTC))
        config: dict[str, Any] = {
            "model": f"ft:{LOCAL_MODEL_ID}:afina:job-{job_id}",
            "base_url": local_base_url(settings.llm.finetune_port),
            "system_prompt": system_prompt_of(files.paths["train"]) or "",
        }
        config["adapter" if job.method == "lora" else "model_file"] = str(result.artefact)
        store.put_backend(session=session, name=name, kind="finetuned", config=config)
        job.artefact_path, job.artefact_sha256 = str(result.artefact), result.sha256
        job.trained_tokens, job.train_seconds = result.trained_tokens, result.train_seconds
        job.backend_name, job.cost_usd = name, 0.0
        best = result.best
        jobs.add_event(
            session=session,
            job=job,
            message=f"{result.steps} steps ({result.stopped_by}); kept epoch {best.get('epoch')} "
            f"(val loss {best.get('val_loss')}); {result.size_bytes / 1e6:.1f} MB artefact; "
            f"registered backend {name}",
        )
        jobs.set_status(session=session, job=job, status="succeeded")
    return name
