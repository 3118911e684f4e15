"""The real ``afina export`` and ``afina export validate`` commands on a seeded database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from chatbot.runtime import Runtime
from chatbot.settings import Settings
from tests.data.golden_export import chats

pytestmark = pytest.mark.integration


def afina(*args: str, home: Path) -> subprocess.CompletedProcess:
    """Run ``afina`` against the home folder's SQLite database."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AFINA_")}
    environ["AFINA_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "chatbot.cli.main", *args],
        capture_output=True,
        text=True,
        env=environ,
        cwd=home.parent,
        timeout=300,
    )


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A home folder whose database holds the fixed chats."""
    home = tmp_path / "var"
    rt = Runtime.open(Settings(home=home))
    with rt.sessions.begin() as session:
        chats.seed(session)
    rt.engine.dispose()
    return home


def test_export_writes_splits_and_a_report_then_validate_accepts_them(home: Path, tmp_path: Path):
    out = tmp_path / "export"
    done = afina(
        "export", "--out", str(out), "--validation", "0.2", "--no-near-duplicates", "--by", "root",
        home=home,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "will be accepted" in done.stdout and "Redaction: CARD 1" in done.stdout
    assert {p.name for p in out.iterdir()} == {
        "train.jsonl", "validation.jsonl", "test.jsonl", "report.json", "report.txt",
    }  # fmt: skip
    checked = afina("export", "validate", str(out), "--json", home=home)
    assert checked.returncode == 0, checked.stderr
    report = json.loads(checked.stdout)
    assert report["ok"] and report["training"]["examples"] == 12


def test_validate_exits_non_zero_and_names_the_rule(home: Path, tmp_path: Path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "hi"}]}\nnot json\n')
    done = afina("export", "validate", str(bad), home=home)
    assert done.returncode == 1
    for rule in ("no_trained_assistant", "invalid_json", "too_few_examples"):
        assert rule in done.stdout
    assert "Validation failed" in done.stderr and "Traceback" not in done.stderr


def test_bad_options_are_one_clear_line(home: Path, tmp_path: Path):
    done = afina("export", "--out", str(tmp_path / "x"), "--rating", "great", home=home)
    assert done.returncode == 1 and "--rating" in done.stderr and "Traceback" not in done.stderr
    done = afina("export", home=home)
    assert done.returncode == 1 and "--out" in done.stderr
