"""`afina kb tune | models | use-model` through the real CLI on a tiny knowledge base."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.e2e.test_cli import afina

pytestmark = pytest.mark.e2e
KB = {"AFINA_RETRIEVAL_KB_PATH": str(ROOT / "tests" / "data" / "kb_tune")}


def test_tune_lists_switches_and_refuses_a_damaged_model(tmp_path: Path):
    home = tmp_path / "var"
    assert afina("kb", "ingest", home=home, env=KB).returncode == 0

    done = afina("kb", "tune", "--language", "es", home=home, env=KB)
    assert done.returncode == 1 and "no FAQ entries with locale 'es'" in done.stderr

    done = afina("kb", "tune", "--max-steps", "2", "--batch-size", "4", home=home, env=KB)
    assert done.returncode == 0, done.stderr
    assert "en-1: 2/2 steps" in done.stdout and "validation top-1" in done.stdout
    assert "afina kb use-model en default" in done.stdout
    # the index was never calibrated: the admin is told the tuned model's scores need it
    assert "not calibrated for this model" in done.stderr
    assert "afina kb calibrate" in done.stderr

    done = afina("kb", "models", home=home, env=KB)
    assert done.returncode == 0 and "en-1" in done.stdout

    (home / "embedders" / "en-1" / "tokenizer.json").unlink()
    done = afina("kb", "search", "where is my parcel", home=home, env=KB)
    assert done.returncode == 1
    assert "damaged" in done.stderr and "afina kb use-model en default" in done.stderr

    done = afina("kb", "use-model", "en", "default", home=home, env=KB)
    assert done.returncode == 0, done.stderr
    assert "not calibrated" not in done.stderr  # the configured scores fit the default
    done = afina("kb", "search", "where is my parcel", home=home, env=KB)
    assert done.returncode == 0 and "track-order" in done.stdout


def test_ctrl_c_while_training_saves_nothing_and_changes_nothing(tmp_path: Path):
    home = tmp_path / "var"
    assert afina("kb", "ingest", home=home, env=KB).returncode == 0
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AFINA_")}
    environ.update(AFINA_HOME=str(home), **KB)
    tuning = subprocess.Popen(
        [sys.executable, "-m", "chatbot.cli.main", "kb", "tune", "--epochs", "1000",
         "--batch-size", "4"],
        env=environ, cwd=home.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert tuning.stderr is not None
        for line in tuning.stderr:  # the last line printed before the first step
            if "validation top-1 before" in line:
                break
        tuning.send_signal(signal.SIGINT)
        _, errors = tuning.communicate(timeout=120)
    finally:
        if tuning.poll() is None:
            tuning.kill()
    assert tuning.returncode == 130, errors
    assert "stopping at the next step" in errors and "no model was saved" in errors
    assert "Traceback" not in errors
    assert not list((home / "embedders").glob("en-*"))
    done = afina("kb", "search", "where is my parcel", home=home, env=KB)
    assert done.returncode == 0 and "track-order" in done.stdout
