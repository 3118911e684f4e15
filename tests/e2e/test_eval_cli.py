"""The real ``afina eval`` command: run, list, show, report, bad input, and Ctrl+C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, StalledUrl
from tests.e2e.test_cli import afina

pytestmark = pytest.mark.e2e
QUESTIONS = str(ROOT / "tests" / "data" / "eval_small_questions.jsonl")


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An Afina home with the small knowledge base indexed."""
    home = tmp_path_factory.mktemp("evalcli") / "var"
    done = afina("kb", "ingest", home=home)
    assert done.returncode == 0, done.stderr
    return home


def test_run_list_show_and_report(home: Path, tmp_path: Path):
    done = afina("eval", "run", "--backends", "faq", "--questions", QUESTIONS, home=home)
    assert done.returncode == 0, done.stderr
    assert "evaluation run 1: 6 items x 1 backends" in done.stderr
    assert "faq" in done.stdout and "100%" in done.stdout
    written = home / "reports" / "eval-1.html"
    assert written.exists() and written.with_suffix(".md").exists()
    listed = afina("eval", "list", home=home)
    assert "succeeded" in listed.stdout and "6/6" in listed.stdout
    shown = afina("eval", "show", "1", home=home)
    assert shown.returncode == 0 and "evaluation 1 (succeeded)" in shown.stdout
    out = tmp_path / "mine.html"
    plots = tmp_path / "plots"
    report = afina("eval", "report", "1", "--out", str(out), "--plots", str(plots), home=home)
    assert report.returncode == 0, report.stderr
    assert {p.name for p in plots.glob("*.svg")} == {
        "scatter.svg", "handovers.svg", "latency.svg", "tokens.svg"
    }  # fmt: skip
    data = json.loads(out.with_suffix(".json").read_text())
    assert data["summary"]["faq"]["metrics"]["right_entry"]["value"] == 1.0


def said(done: subprocess.CompletedProcess) -> str:
    """stderr with rich's line wrapping undone."""
    return " ".join(done.stderr.split())


def test_bad_input_gets_one_clear_line(home: Path, tmp_path: Path):
    unknown = afina("eval", "run", "--backends", "faq,nope", home=home)
    assert unknown.returncode == 1
    assert "no backend named 'nope'; registered:" in said(unknown)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    done = afina("eval", "run", "--backends", "faq", "--questions", str(empty), home=home)
    assert done.returncode == 1 and "no questions; write one per line" in said(done)
    # the bundled held-out questions are labelled for data/kb, not the small test KB
    labels = afina("eval", "run", "--backends", "faq", home=home)
    assert labels.returncode == 1 and "name no entry of the knowledge base" in said(labels)
    assert "Traceback" not in unknown.stderr + done.stderr + labels.stderr
    missing = afina("eval", "show", "999", home=home)
    assert missing.returncode == 1 and "afina eval list" in said(missing)


@pytest.mark.parametrize(("stop", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_or_sigterm_leaves_the_run_cancelled(
    home: Path, stalled_url: StalledUrl, stop: signal.Signals, code: int
):
    config = json.dumps({"base_url": stalled_url, "timeout_s": 120, "max_retries": 0})
    added = afina("backends", "add", "stuck", "--kind", "fewshot", "--config", config, home=home)
    assert added.returncode == 0, added.stderr
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AFINA_")}
    environ.update(AFINA_HOME=str(home), AFINA_RETRIEVAL_KB_PATH=str(ROOT / "tests/data/kb_small"))
    process = subprocess.Popen(
        [sys.executable, "-m", "chatbot.cli.main", "eval", "run", "--backends", "stuck",
         "--questions", QUESTIONS],
        env=environ, cwd=home.parent, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stderr is not None
    line = process.stderr.readline()
    while "evaluation run" not in line:
        assert line, "the run did not start"
        line = process.stderr.readline()
    deadline = time.monotonic() + 60  # until the first (hanging) answer is asked for
    while not stalled_url.held and time.monotonic() < deadline:
        time.sleep(0.1)
    assert stalled_url.held, "the run never asked the backend"
    process.send_signal(stop)
    assert process.wait(timeout=60) == code
    assert "cancelled; partial results" in process.stderr.read()
    listed = afina("eval", "list", home=home)
    run_line = next(line for line in listed.stdout.splitlines() if "stuck" in line)
    assert "cancelled" in run_line  # the newest run first
