"""`afina kb ingest --calibrate` and `afina kb calibrate` through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.e2e.test_cli import afina

pytestmark = pytest.mark.e2e
# English only (MiniLM) keeps it fast; kb_tune has English entries only
KB = {
    "AFINA_RETRIEVAL_KB_PATH": str(ROOT / "tests" / "data" / "kb_tune"),
    "AFINA_RETRIEVAL_LANGUAGE_MODELS": "{}",
}


def test_ingest_calibrates_and_says_what_it_costs(tmp_path: Path):
    questions = tmp_path / "questions.jsonl"
    rows = [
        {"text": "where did my parcel go", "locale": "en", "entry_id": "track-order"},
        {"text": "I lost my password", "locale": "en", "entry_id": "reset-password"},
        {"text": "will it snow in Oslo on Friday?", "locale": "en"},
        {"text": "tell me a joke about penguins", "locale": "en"},
    ]
    questions.write_text("".join(json.dumps(r) + "\n" for r in rows))
    home = tmp_path / "var"
    done = afina("kb", "ingest", "--calibrate", str(questions), home=home, env=KB)
    assert done.returncode == 0, done.stderr
    assert "en: hand-over score" in done.stdout and "out-of-scope handed over 100.0%" in done.stdout
    assert (home / "index" / "en" / "handover.json").exists()

    # tuning rebuilds the index with other scores: calibrated again on the same questions
    done = afina("kb", "tune", "--max-steps", "1", "--batch-size", "4", home=home, env=KB)
    assert done.returncode == 0, done.stderr
    assert "hand-over score calibrated again" in done.stdout
    assert "not calibrated" not in done.stderr

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"locale": "en"}\n')
    done = afina("kb", "calibrate", str(bad), home=home, env=KB)
    assert done.returncode == 1 and "bad.jsonl:1" in done.stderr and "'text'" in done.stderr
