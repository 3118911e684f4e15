"""``afina finetune`` with the local provider, for real: a tiny export, a few CPU steps, served.

The export is the fixed chat set of the export tests (12 training chats, 4 validation). Training
is cut to two steps of four short examples at LoRA rank 4, so the model load dominates.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chatbot.db import finetune_store as jobs
from chatbot.runtime import Runtime
from chatbot.settings import Settings
from chatbot.training.finetune.local import ensure_free_space
from chatbot.training.lineage import sha256_file
from tests.conftest import SMALL_KB
from tests.data.golden_export import chats

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
TINY = ("--max-steps", "2", "--batch-size", "4", "--max-seq-tokens", "64", "--lora-rank", "4")


def environ(home: Path) -> dict[str, str]:
    """The environment of an ``afina`` command using ``home``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AFINA_")}
    env.update({"AFINA_HOME": str(home), "AFINA_RETRIEVAL_KB_PATH": str(SMALL_KB)})
    return env


def afina(*args: str, home: Path) -> subprocess.CompletedProcess:
    """Run ``afina`` to completion."""
    return subprocess.run(
        [sys.executable, "-m", "chatbot.cli.main", *args],
        capture_output=True,
        text=True,
        env=environ(home),
        cwd=home.parent,
        timeout=600,
    )


def spawn(*args: str, home: Path) -> subprocess.Popen:
    """Start ``afina`` in the background."""
    return subprocess.Popen(
        [sys.executable, "-m", "chatbot.cli.main", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environ(home),
        cwd=home.parent,
    )


def job_row(home: Path, job_id: int) -> dict:
    """The job as another process sees it."""
    rt = Runtime.open(Settings(home=home))
    try:
        with rt.sessions() as session:
            job = jobs.get_job(session=session, job_id=job_id)
            return {c: getattr(job, c) for c in job.__table__.columns.keys()}
    finally:
        rt.engine.dispose()


def wait_for(predicate, timeout: float = 120.0) -> None:
    """Poll until ``predicate()`` is true."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.5)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home whose database holds the fixed chats, exported once as export 1 (to ``exp``)."""
    home = tmp_path_factory.mktemp("ft") / "var"
    rt = Runtime.open(Settings(home=home))
    with rt.sessions.begin() as session:
        chats.seed(session)
    rt.engine.dispose()
    done = afina(
        "export", "--out", "exp", "--validation", "0.2", "--no-near-duplicates", "--by", "root",
        home=home,
    )  # fmt: skip
    assert done.returncode == 0 and "Export #1" in done.stderr + done.stdout, done.stderr
    return home


def test_finetune_local_trains_registers_and_serves_the_adapter(home: Path):
    done = afina("finetune", "start", "--export", "1", "--provider", "local", *TINY, home=home)
    assert done.returncode == 0, done.stderr
    name = re.search(r"backend '([^']+)' registered", done.stdout).group(1)
    assert re.fullmatch(r"ft-local-\d{8}-1", name)

    job = job_row(home, 1)
    assert job["status"] == "succeeded" and job["finished_at"] and job["backend_name"] == name
    assert any("train_loss" in m for m in job["metrics"])
    assert any(m.get("val_loss") for m in job["metrics"])  # validation loss per epoch
    assert job["trained_tokens"] > 0 and job["train_seconds"] > 0
    assert sha256_file(Path(job["artefact_path"])) == job["artefact_sha256"]
    assert set(job["export_files"]) == {"train.jsonl", "validation.jsonl"}

    shown = afina("finetune", "show", "1", home=home)
    assert "succeeded" in shown.stdout and "12 chats in train" in shown.stdout
    assert job["export_files"]["train.jsonl"] in shown.stdout and "val loss" in shown.stdout
    assert name in afina("backends", "list", home=home).stdout
    assert "training on 12 examples" in afina("finetune", "events", "1", home=home).stdout

    server = spawn("llm", "serve", "--port", "0", "--finetune-port", "0", home=home)
    try:
        assert server.stdout is not None
        lines = [server.stdout.readline(), server.stdout.readline()]
        assert name in lines[1] and "Serving fine-tunes" in lines[1], lines
        assert afina("backends", "use", name, home=home).returncode == 0
        asked = afina("ask", "How much does shipping cost?", "--json", home=home)
        assert asked.returncode == 0, asked.stderr
        turn = json.loads(asked.stdout)
        assert turn["backend"] == name and turn["answer"].strip() and not turn["error"]
    finally:
        server.send_signal(signal.SIGINT)
        server.communicate(timeout=30)

    # a corrupt artefact is not served, and its backend says how to fix it
    with Path(job["artefact_path"]).open("ab") as artefact:
        artefact.write(b"garbage")
    server = spawn("llm", "serve", "--port", "0", "--finetune-port", "0", home=home)
    try:
        assert server.stdout is not None and "Serving" in server.stdout.readline()
        asked = afina("ask", "How much does shipping cost?", "--json", home=home)
        turn = json.loads(asked.stdout)
        assert turn["backend"] != name or turn["error"]  # the fallback answers, or an error
    finally:
        server.send_signal(signal.SIGINT)
        _, errors = server.communicate(timeout=30)
    errors = " ".join(errors.split())  # rich wraps long lines
    assert "does not match the sha256" in errors and "afina finetune start" in errors


def test_finetune_cancel_leaves_a_cancelled_job_and_no_artefact(home: Path):
    before = newest_job(home)
    started = spawn("finetune", "start", "--export", "1", "--epochs", "50", "--batch-size", "2",
                    "--max-seq-tokens", "64", "--lora-rank", "4", home=home)  # fmt: skip
    try:
        job_id = started_job(home, before)
        wait_for(lambda: job_row(home, job_id)["metrics"])  # it is training
        cancelled = afina("finetune", "cancel", str(job_id), home=home)
        assert cancelled.returncode == 0 and "Cancel requested" in cancelled.stdout
        _, errors = started.communicate(timeout=120)
    finally:
        if started.poll() is None:
            started.kill()
    assert started.returncode == 1 and "cancelled" in errors and "Traceback" not in errors
    job = job_row(home, job_id)
    assert job["status"] == "cancelled" and job["finished_at"] and job["artefact_path"] is None
    assert not list((home / "finetune" / str(job_id)).glob("*"))  # nothing half-written
    again = afina("finetune", "cancel", str(job_id), home=home)
    assert again.returncode == 1 and "already cancelled" in again.stderr


def test_finetune_ctrl_c_marks_the_job_cancelled(home: Path):
    """Ctrl+C while the model loads: the job stops before its first step, cleanly.

    (A KeyboardInterrupt raised inside torch's loading once aborted the process: exit -6.)
    """
    before = newest_job(home)
    started = spawn("finetune", "start", "--export", "1", *TINY, home=home)
    job_id = started_job(home, before)
    wait_for(lambda: job_row(home, job_id)["status"] == "running")
    started.send_signal(signal.SIGINT)
    _, errors = started.communicate(timeout=120)
    assert started.returncode == 130, errors
    assert "stopping before the next step" in errors and "Traceback" not in errors
    assert f"Job {job_id} cancelled (Ctrl+C)" in errors
    job = job_row(home, job_id)
    assert job["status"] == "cancelled" and job["finished_at"]


def newest_job(home: Path) -> int:
    """The id of the newest job (0 when there is none)."""
    rt = Runtime.open(Settings(home=home))
    try:
        with rt.sessions() as session:
            return max((j.id for j in jobs.list_jobs(session=session, limit=1)), default=0)
    finally:
        rt.engine.dispose()


def started_job(home: Path, before: int) -> int:
    """Wait until a job newer than ``before`` exists; its id."""
    wait_for(lambda: newest_job(home) > before, 60)
    return newest_job(home)


def test_finetune_bad_input_names_the_fix(home: Path, tmp_path: Path):
    def fails(*args: str) -> str:
        done = afina("finetune", "start", *args, home=home)
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
        return " ".join(done.stderr.split())

    assert "no export 99" in fails("--export", "99") and "afina export" in fails("--export", "99")
    assert "--base-model smollm2" in fails("--export", "1", "--base-model", "llama-70b")
    assert "--method lora" in fails("--export", "1", "--method", "qlora")
    assert "--provider local" in fails("--export", "1", "--provider", "nope")

    exported = home.parent / "exp"
    moved = tmp_path / "moved"
    exported.rename(moved)
    try:
        assert "is missing" in (msg := fails("--export", "1")) and "--dir" in msg
        train = moved / "train.jsonl"
        original = train.read_bytes()
        train.write_bytes(original + b"\n")
        assert "changed since it was exported" in fails("--export", "1", "--dir", str(moved))
        train.write_bytes(original)
    finally:
        moved.rename(exported)

    few = afina("export", "--out", "few", "--locale", "es", "--validation", "0", home=home)
    export_id = re.search(r"Export #(\d+)", few.stderr + few.stdout).group(1)
    msg = fails("--export", export_id)
    assert "fails validation" in msg and "too_few_examples" in msg and "export validate" in msg


def test_free_space_check_names_the_fix(tmp_path: Path):
    from chatbot.errors import InputError

    ensure_free_space(tmp_path, 1 << 20)
    with pytest.raises(InputError, match=r"no space left.*AFINA_HOME"):
        ensure_free_space(tmp_path, 1 << 62)
