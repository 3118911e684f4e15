"""A local HTTP stand-in for OpenAI's files and fine-tuning jobs API: the cloud cannot be reached
here, so this small FastAPI app (served by uvicorn on 127.0.0.1, a free port, in a thread) answers
the documented endpoints with the documented JSON shapes the openai SDK parses:

- ``POST /v1/files`` (multipart ``file`` + ``purpose``) -> a ``file`` object
- ``POST /v1/fine_tuning/jobs`` -> a ``fine_tuning.job``
- ``GET /v1/fine_tuning/jobs/{id}`` -> the job, one state further on each call
- ``GET /v1/fine_tuning/jobs/{id}/events`` -> ``fine_tuning.job.event`` list, newest first
- ``GET /v1/fine_tuning/jobs/{id}/checkpoints`` -> ``fine_tuning.job.checkpoint`` list
- ``POST /v1/fine_tuning/jobs/{id}/cancel`` -> the cancelled job

A scenario picks how things go: ``success``, ``invalid_file`` (upload 400), ``job_failed``,
``rate_limit`` (429 on job creation), ``unauthorized`` (401), ``cancel`` (runs until cancelled),
``cancelled_remotely``. It records what it received so tests can check what Afina sent.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse

FINE_TUNED = "ft:gpt-4o-mini-2024-07-18:afina-test:shop:AbC123"
TRAINED_TOKENS = 12_345
ERRORS = {
    "invalid_file": (
        400,
        "Invalid file format for Fine-Tuning API. Must be .jsonl",
        "invalid_request_error",
        "invalid_file_format",
    ),
    "rate_limit": (
        429,
        "Rate limit reached for requests. Please try again later.",
        "requests",
        "rate_limit_exceeded",
    ),
    "unauthorized": (
        401,
        "Incorrect API key provided: wrong-key. You can find your API key in your account.",
        "invalid_request_error",
        "invalid_api_key",
    ),
}


def error(status: int, message: str, kind: str, code: str) -> JSONResponse:
    """OpenAI's error body; 429s ask the SDK to retry after 1 ms."""
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    headers = {"retry-after-ms": "1"} if status == 429 else {}
    return JSONResponse(body, status_code=status, headers=headers)


@dataclass
class Job:
    """One stand-in fine-tuning job."""

    body: dict[str, Any]
    id: str
    created_at: int
    status: str = "validating_files"
    polls: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)
    checkpoints: list[dict[str, Any]] = field(default_factory=list)
    error: dict[str, Any] | None = None
    fine_tuned_model: str | None = None
    trained_tokens: int | None = None
    finished_at: int | None = None

    def as_json(self) -> dict[str, Any]:
        """The ``fine_tuning.job`` object."""
        method = self.body.get("method") or {"type": "supervised"}
        return {
            "object": "fine_tuning.job",
            "id": self.id,
            "created_at": self.created_at,
            "model": self.body["model"],
            "organization_id": "org-afina-test",
            "status": self.status,
            "training_file": self.body["training_file"],
            "validation_file": self.body.get("validation_file"),
            "hyperparameters": {"n_epochs": 2, "batch_size": 1, "learning_rate_multiplier": 1.8},
            "method": method,
            "result_files": [],
            "seed": 42,
            "error": self.error,
            "fine_tuned_model": self.fine_tuned_model,
            "trained_tokens": self.trained_tokens,
            "finished_at": self.finished_at,
            "estimated_finish": None,
            "integrations": [],
            "metadata": None,
        }


class StandIn:
    """The app and what it received; ``scenario`` decides each job's fate."""

    def __init__(self, scenario: str = "success"):
        self.scenario = scenario
        self.uploads: list[dict[str, Any]] = []
        self.jobs: dict[str, Job] = {}
        self.create_attempts = 0
        self.cancels: list[str] = []
        self.auth: list[str] = []
        self._ids = itertools.count(1)
        self.app = self._build()

    def _event(self, job: Job, message: str, data: dict | None = None, level: str = "info"):
        job.events.append(
            {
                "object": "fine_tuning.job.event",
                "id": f"ftevent-{next(self._ids)}",
                "created_at": int(time.time()),
                "level": level,
                "message": message,
                "data": data or {},
                "type": "metrics" if data else "message",
            }
        )

    def _metrics(self, job: Job, step: int) -> None:
        loss = round(2.0 / step, 4)
        data = {
            "step": step,
            "train_loss": loss,
            "valid_loss": round(loss + 0.1, 4),
            "total_steps": 4,
        }
        self._event(job, f"Step {step}/4: training loss={loss}", data)

    def _advance(self, job: Job) -> None:
        """One poll further: validating -> running (losses, a checkpoint) -> the scenario's end."""
        job.polls += 1
        if job.status in ("succeeded", "failed", "cancelled"):
            return
        if job.polls == 1:
            job.status = "running"
            self._event(job, "Validating training file")
            self._event(job, "Fine-tuning job started")
            self._metrics(job, 1)
            self._metrics(job, 2)
            return
        if self.scenario == "cancel":  # runs until cancelled
            self._metrics(job, min(job.polls + 1, 4))
            return
        if self.scenario == "job_failed":
            job.status, job.finished_at = "failed", int(time.time())
            job.error = {
                "code": "invalid_training_file",
                "message": "The job failed due to an invalid training file: line 2 has no "
                "assistant message.",
                "param": "training_file",
            }
            self._event(job, "The job failed", level="error")
            return
        if self.scenario == "cancelled_remotely":
            job.status, job.finished_at = "cancelled", int(time.time())
            self._event(job, "The job was cancelled")
            return
        self._metrics(job, 3)
        self._metrics(job, 4)
        job.checkpoints.append(
            {
                "object": "fine_tuning.job.checkpoint",
                "id": f"ftckpt-{next(self._ids)}",
                "created_at": int(time.time()),
                "fine_tuned_model_checkpoint": FINE_TUNED + ":ckpt-step-2",
                "fine_tuning_job_id": job.id,
                "metrics": {"step": 2.0, "train_loss": 1.0, "valid_loss": 1.1},
                "step_number": 2,
            }
        )
        job.status, job.finished_at = "succeeded", int(time.time())
        job.fine_tuned_model, job.trained_tokens = FINE_TUNED, TRAINED_TOKENS
        self._event(job, f"New fine-tuned model created: {FINE_TUNED}")
        self._event(job, "The job has successfully completed")

    def _build(self) -> FastAPI:
        app = FastAPI()

        @app.middleware("http")
        async def gate(request: Request, call_next):
            self.auth.append(request.headers.get("authorization", ""))
            if self.scenario == "unauthorized":
                return error(*ERRORS["unauthorized"])
            return await call_next(request)

        @app.post("/v1/files")
        async def upload(file: UploadFile = File(...), purpose: str = Form(...)):  # noqa: B008
            content = await file.read()
            if self.scenario == "invalid_file":
                return error(*ERRORS["invalid_file"])
            file_id = f"file-{next(self._ids)}"
            self.uploads.append(
                {"id": file_id, "filename": file.filename, "purpose": purpose, "content": content}
            )
            return {
                "object": "file",
                "id": file_id,
                "bytes": len(content),
                "created_at": int(time.time()),
                "filename": file.filename,
                "purpose": purpose,
                "status": "processed",
            }

        @app.post("/v1/fine_tuning/jobs")
        async def create(request: Request):
            self.create_attempts += 1
            if self.scenario == "rate_limit":
                return error(*ERRORS["rate_limit"])
            body = await request.json()
            job = Job(body=body, id=f"ftjob-{next(self._ids)}", created_at=int(time.time()))
            self.jobs[job.id] = job
            return job.as_json()

        @app.get("/v1/fine_tuning/jobs/{job_id}")
        async def retrieve(job_id: str):
            job = self.jobs[job_id]
            self._advance(job)
            return job.as_json()

        @app.get("/v1/fine_tuning/jobs/{job_id}/events")
        async def events(job_id: str, after: str | None = None, limit: int = 20):
            newest_first = list(reversed(self.jobs[job_id].events))
            if after is not None:
                ids = [e["id"] for e in newest_first]
                newest_first = newest_first[ids.index(after) + 1 :]
            page = newest_first[:limit]
            return {"object": "list", "data": page, "has_more": len(newest_first) > limit}

        @app.get("/v1/fine_tuning/jobs/{job_id}/checkpoints")
        async def checkpoints(job_id: str, limit: int = 10):
            data = list(reversed(self.jobs[job_id].checkpoints))[:limit]
            return {"object": "list", "data": data, "has_more": False}

        @app.post("/v1/fine_tuning/jobs/{job_id}/cancel")
        async def cancel(job_id: str):
            job = self.jobs[job_id]
            self.cancels.append(job_id)
            job.status, job.finished_at = "cancelled", int(time.time())
            return job.as_json()

        return app


@contextmanager
def serve(standin: StandIn) -> Iterator[str]:
    """Serve ``standin`` on a free local port; yields its base URL (``.../v1``)."""
    config = uvicorn.Config(
        standin.app, host="127.0.0.1", port=0, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the OpenAI stand-in did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
