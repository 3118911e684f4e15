"""Remote fine-tuning jobs through the openai SDK, against a local stand-in of OpenAI's jobs API.

The OpenAI cloud cannot be reached here: ``openai_jobs_standin`` serves the documented files and
fine-tuning endpoints over real HTTP on 127.0.0.1 (say so: it is a stand-in, not the provider).
Everything on Afina's side is real: the SDK, the SQLite database with its migrations, the job row.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from chatbot.db import finetune_store, store, training_queries
from chatbot.errors import AfinaError, ConfigError
from chatbot.runtime import Runtime
from chatbot.settings import Settings
from chatbot.training.finetune.remote import run_remote_job
from tests.integration.openai_jobs_standin import FINE_TUNED, TRAINED_TOKENS, StandIn, serve

pytestmark = pytest.mark.integration
KEY_VAR = "AFINA_TEST_STANDIN_KEY"
KEY = "-".join(("standin", "not", "a", "real", "key"))  # built: no key-shaped literal
EXAMPLE = {
    "messages": [
        {"role": "system", "content": "You are Afina."},
        {"role": "user", "content": "How much is shipping?"},
        {"role": "assistant", "content": "Shipping is free over 50 EUR."},
    ]
}


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    """A migrated SQLite database; the SDK retries once, quickly."""
    rt = Runtime.open(Settings(home=tmp_path / "var", llm={"max_retries": 1, "timeout_s": 10}))
    yield rt
    rt.engine.dispose()


@pytest.fixture
def export_dir(tmp_path: Path) -> Path:
    """A tiny export folder: train.jsonl and validation.jsonl in OpenAI's chat format."""
    folder = tmp_path / "exports" / "nov"
    folder.mkdir(parents=True)
    for name, count in (("train.jsonl", 3), ("validation.jsonl", 1)):
        lines = "".join(json.dumps(EXAMPLE) + "\n" for _ in range(count))
        (folder / name).write_text(lines, encoding="utf-8")
    return folder


@pytest.fixture
def start_job(
    runtime: Runtime, export_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., int]:
    """Create a queued remote job row (as the runner does) pointing at ``base_url``."""
    monkeypatch.setenv(KEY_VAR, KEY)

    def start(base_url: str, *, by_path: bool = False, **fields) -> int:
        paths = sorted(export_dir.glob("*.jsonl"))
        hashes = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}
        report = {"files": [{"path": str(p), "split": p.stem} for p in paths]}
        with runtime.sessions.begin() as session:
            export_id = training_queries.add_export(
                session=session, created_by=None, format="chat", filters={}, seed=0, redacted=True
            )
            training_queries.finish_export(
                session=session, export_id=export_id, counts={}, files=hashes, report=report
            )
            # as the runner records them: file name -> sha256 (or paths, also accepted)
            files = {str(p): hashes[p.name] for p in paths} if by_path else hashes
            job = finetune_store.add_job(
                session=session,
                provider="openai",
                base_model="gpt-4o-mini-2024-07-18",
                export_id=export_id,
                export_files=files,
                method="supervised",
                hyperparameters={"n_epochs": 2},
                base_url=base_url,
                api_key_env=KEY_VAR,
                suffix="shop",
                **fields,
            )
            return job.id

    return start


def job_row(runtime: Runtime, job_id: int):
    with runtime.sessions() as session:
        job = finetune_store.get_job(session=session, job_id=job_id)
        session.expunge(job)
        return job


def run(runtime: Runtime, job_id: int, **options) -> None:
    run_remote_job(runtime.sessions, job_id, runtime.settings, poll_s=0.01, **options)


def test_remote_job_success_registers_a_backend_with_losses_and_cost(runtime, start_job):
    standin = StandIn("success")
    with serve(standin) as url:
        job_id = start_job(url)
        seen: list[dict] = []
        run(runtime, job_id, progress=seen.append)
    job = job_row(runtime, job_id)
    assert job.status == "succeeded" and job.error is None
    assert job.remote_model_id == FINE_TUNED and job.remote_job_id in standin.jobs
    assert job.trained_tokens == TRAINED_TOKENS
    assert job.cost_usd == pytest.approx(TRAINED_TOKENS * 3.0 / 1e6)  # gpt-4o-mini: $3 per 1M
    # the backend a user switches to
    assert job.backend_name == "ft-gpt-4o-mini-2024-07-18-afina-test-shop-AbC123"
    with runtime.sessions() as session:
        backend = store.get_backend(session=session, name=job.backend_name)
        assert backend.kind == "finetuned"
        assert backend.config == {"base_url": url, "model": FINE_TUNED, "api_key_env": KEY_VAR}
    # what the provider received: both files for fine-tuning, the job's options, the key
    assert [u["purpose"] for u in standin.uploads] == ["fine-tune", "fine-tune"]
    assert sorted(u["filename"] for u in standin.uploads) == ["train.jsonl", "validation.jsonl"]
    body = standin.jobs[job.remote_job_id].body
    assert body["model"] == "gpt-4o-mini-2024-07-18" and body["suffix"] == "shop"
    assert body["validation_file"] != body["training_file"]
    assert body["method"] == {
        "type": "supervised",
        "supervised": {"hyperparameters": {"n_epochs": 2}},
    }
    assert set(standin.auth) == {f"Bearer {KEY}"}
    # the loss curve, the provider's log and the checkpoint, in order
    losses = job.metrics
    assert [m["step"] for m in losses] == [1, 2, 3, 4]
    assert losses[0]["train_loss"] > losses[-1]["train_loss"] and "val_loss" in losses[-1]
    messages = [e["message"] for e in job.events]
    assert messages.index("Fine-tuning job started") < messages.index(
        "The job has successfully completed"
    )
    checkpoint = f"checkpoint at step 2: {FINE_TUNED}:ckpt-step-2 (train_loss 1, val_loss 1.1)"
    assert checkpoint in messages
    assert seen[-1]["status"] == "succeeded" and seen[-1]["step"] == 4
    # the key itself is never stored
    assert KEY not in json.dumps([job.events, job.metrics, job.hyperparameters, backend.config])


def test_remote_invalid_file_fails_naming_the_file_and_the_check(runtime, start_job):
    standin = StandIn("invalid_file")
    with serve(standin) as url:
        job_id = start_job(url)
        with pytest.raises(AfinaError, match="afina export validate"):
            run(runtime, job_id)
    job = job_row(runtime, job_id)
    assert job.status == "failed" and job.remote_job_id is None
    assert "rejected train.jsonl" in job.error and "Invalid file format" in job.error
    assert standin.jobs == {}


def test_remote_job_failed_at_the_provider_stores_its_error(runtime, start_job):
    standin = StandIn("job_failed")
    with serve(standin) as url:
        job_id = start_job(url)
        with pytest.raises(AfinaError, match="invalid training file"):
            run(runtime, job_id)
    job = job_row(runtime, job_id)
    assert job.status == "failed" and job.backend_name is None
    assert "invalid_training_file" in job.error and "param training_file" in job.error
    assert "afina export validate" in job.error
    assert job.finished_at is not None


def test_remote_rate_limit_fails_after_the_sdk_retries(runtime, start_job):
    standin = StandIn("rate_limit")
    with serve(standin) as url:
        job_id = start_job(url)
        with pytest.raises(AfinaError, match="429"):
            run(runtime, job_id)
    assert standin.create_attempts == 2  # the first try and AFINA_LLM_MAX_RETRIES=1 retry
    job = job_row(runtime, job_id)
    assert job.status == "failed" and "wait a few minutes" in job.error


def test_remote_wrong_key_names_the_variable(runtime, start_job):
    with serve(StandIn("unauthorized")) as url:
        job_id = start_job(url)
        with pytest.raises(AfinaError, match="401"):
            run(runtime, job_id)
    job = job_row(runtime, job_id)
    assert job.status == "failed" and KEY_VAR in job.error and "--api-key-env" in job.error


def test_remote_cancel_from_afina_cancels_the_provider_job(runtime, start_job):
    standin = StandIn("cancel")
    with serve(standin) as url:
        job_id = start_job(url)

        def cancel_once_running(state: dict) -> None:  # another process: `afina finetune cancel`
            if state["status"] == "running":
                with runtime.sessions.begin() as session:
                    finetune_store.request_cancel(session=session, job_id=job_id)

        run(runtime, job_id, progress=cancel_once_running)
    job = job_row(runtime, job_id)
    assert standin.cancels == [job.remote_job_id]
    assert job.status == "cancelled" and "afina finetune cancel" in job.error
    assert job.backend_name is None and job.metrics  # the losses so far are kept


def test_remote_time_budget_cancels_the_provider_job(runtime, start_job):
    standin = StandIn("cancel")
    with serve(standin) as url:
        job_id = start_job(url)
        run(runtime, job_id, max_minutes=0)
    job = job_row(runtime, job_id)
    assert standin.cancels == [job.remote_job_id]
    assert job.status == "cancelled" and "--max-minutes" in job.error


def test_remote_cancelled_at_the_provider_is_reported(runtime, start_job):
    standin = StandIn("cancelled_remotely")
    with serve(standin) as url:
        job_id = start_job(url)
        run(runtime, job_id)
    job = job_row(runtime, job_id)
    assert standin.cancels == []
    assert job.status == "cancelled" and "not from Afina" in job.error


def test_remote_unset_key_variable_fails_before_any_request(runtime, start_job, monkeypatch):
    standin = StandIn("success")
    with serve(standin) as url:
        job_id = start_job(url)
        monkeypatch.delenv(KEY_VAR)
        with pytest.raises(ConfigError, match=KEY_VAR):
            run(runtime, job_id)
    assert standin.auth == [] and job_row(runtime, job_id).status == "failed"


def test_remote_changed_export_file_is_refused(runtime, start_job, export_dir):
    with serve(StandIn("success")) as url:
        job_id = start_job(url, by_path=True)
        (export_dir / "train.jsonl").write_text(json.dumps(EXAMPLE) + "\n", encoding="utf-8")
        with pytest.raises(AfinaError, match="changed since the job was created"):
            run(runtime, job_id)
    assert job_row(runtime, job_id).status == "failed"


def test_cli_start_openai_runs_the_job_and_names_the_backend(tmp_path, monkeypatch):
    """`afina finetune start --provider openai` end to end through the real CLI, against the
    stand-in (on 127.0.0.1, so OpenAI's announced shutdown dates do not apply to it)."""
    import os
    import subprocess
    import sys

    from tests.conftest import SMALL_KB
    from tests.data.golden_export import chats

    home = tmp_path / "var"
    rt = Runtime.open(Settings(home=home))
    with rt.sessions.begin() as session:
        chats.seed(session)
    rt.engine.dispose()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AFINA_")}
    env.update(
        AFINA_HOME=str(home),
        AFINA_RETRIEVAL_KB_PATH=str(SMALL_KB),
        AFINA_FINETUNE_REMOTE_POLL_S="0.01",
        AFINA_LLM_MAX_RETRIES="0",
        **{KEY_VAR: KEY},
    )

    def afina(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "chatbot.cli.main", *args],
            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
        )  # fmt: skip

    exported = afina("export", "--out", "exp", "--validation", "0.2", "--no-near-duplicates")
    assert exported.returncode == 0, exported.stderr
    with serve(StandIn("success")) as url:
        done = afina(
            "finetune", "start", "--export", "1", "--provider", "openai",
            "--base-model", "gpt-4o-mini-2024-07-18", "--suffix", "shop",
            "--base-url", url, "--api-key-env", KEY_VAR,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    said = " ".join(done.stdout.split())  # rich wraps long lines
    assert "succeeded" in said and "afina backends use ft-gpt-4o-mini" in said
    listed = afina("backends", "list")
    assert "ft-gpt-4o-mini" in listed.stdout
