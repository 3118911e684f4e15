"""The real ``afina`` command in a subprocess: what a user types and sees."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import SMALL_KB

pytestmark = pytest.mark.e2e


def afina(
    *args: str, home: Path, stdin: str = "", env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run ``afina`` with its own home folder and the small test knowledge base."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AFINA_")}
    environ.update(
        {"AFINA_HOME": str(home), "AFINA_RETRIEVAL_KB_PATH": str(SMALL_KB)}, **(env or {})
    )
    return subprocess.run(
        [sys.executable, "-m", "chatbot.cli.main", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=environ,
        cwd=home.parent,
        timeout=300,
    )


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One Afina home shared by this module's commands (the index is built once)."""
    home = tmp_path_factory.mktemp("cli") / "var"
    done = afina("kb", "ingest", home=home)
    assert done.returncode == 0, done.stderr
    assert "embedded" in done.stdout
    return home


def test_ask_answers_from_the_knowledge_base(home: Path):
    done = afina("ask", "how much does delivery cost", "--json", home=home)
    assert done.returncode == 0, done.stderr
    turn = json.loads(done.stdout)
    assert turn["answer"].startswith("Shipping is free")
    assert turn["sources"][0]["id"] == "shipping-cost"
    assert turn["backend"] == "faq" and turn["handoff"] is False


def test_chat_streams_answers_and_rejects_empty_lines(home: Path):
    done = afina("chat", home=home, stdin="I forgot my password\n   \n/quit\n")
    assert done.returncode == 0, done.stderr
    assert "Click 'Forgot password'" in done.stdout
    assert "The message is empty" in done.stderr
    assert "Traceback" not in done.stderr


def test_reingest_reuses_unchanged_rows(home: Path):
    done = afina("kb", "ingest", home=home)
    assert "0 embedded" in done.stdout


def test_kb_search_prints_scores(home: Path):
    done = afina("kb", "search", "lost password", home=home)
    assert done.returncode == 0, done.stderr
    assert "reset-password" in done.stdout and "0." in done.stdout


def test_kb_search_says_how_a_casual_spanish_question_was_spelled(home: Path):
    done = afina("kb", "search", "no me acuerdo la contrasena", "--locale", "es", home=home)
    assert done.returncode == 0, done.stderr
    assert "searched as: no me acuerdo la contraseña" in done.stderr
    assert "reset-password" in done.stdout


def test_users_add_reads_password_from_stdin_and_lists(home: Path):
    done = afina(
        "users",
        "add",
        "maria",
        "--role",
        "admin",
        "--password-stdin",
        home=home,
        stdin="correct horse battery\n",
    )
    assert done.returncode == 0, done.stderr
    listed = afina("users", "list", home=home).stdout
    assert "maria" in listed and "admin" in listed
    again = afina(
        "users", "add", "maria", "--password-stdin", home=home, stdin="another password\n"
    )
    assert again.returncode == 1 and "already exists" in again.stderr


def test_short_password_is_refused(home: Path):
    done = afina("users", "add", "bob", "--password-stdin", home=home, stdin="short\n")
    assert done.returncode == 1 and "at least 8 characters" in done.stderr


def test_export_writes_chat_fine_tuning_jsonl(home: Path, tmp_path: Path):
    afina("ask", "what are the shipping fees", home=home)
    out = tmp_path / "train.jsonl"
    done = afina("export", "--out", str(out), home=home)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines
    for example in lines:
        roles = [m["role"] for m in example["messages"]]
        assert roles[:2] == ["system", "user"] and roles[-1] == "assistant"  # issue 5: system first
    assert any("Shipping is free" in m["content"] for ex in lines for m in ex["messages"])


def test_backends_list_and_use(home: Path):
    assert "faq" in afina("backends", "list", home=home).stdout
    bad = afina("backends", "use", "nope", home=home)
    assert bad.returncode == 1 and "registered: faq" in bad.stderr


def test_unreachable_database_names_the_setting(home: Path):
    done = afina(
        "ask", "hi", home=home, env={"AFINA_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}
    )
    assert done.returncode == 1
    assert "AFINA_DATABASE_URL" in done.stderr and "Traceback" not in done.stderr


def test_malformed_knowledge_file_names_file_and_line(home: Path, tmp_path: Path):
    bad = tmp_path / "faq.jsonl"
    bad.write_text('{"id": "a", "questions": ["q"], "answer": "x"}\n{"id": 5}\n')
    done = afina("kb", "ingest", str(bad), home=home)
    assert done.returncode == 1
    assert "faq.jsonl:2" in done.stderr and "Traceback" not in done.stderr
    assert "0 embedded" in afina("kb", "ingest", home=home).stdout  # old index untouched


def test_db_check_passes_after_upgrade(home: Path):
    assert afina("db", "upgrade", home=home).returncode == 0
    done = afina("db", "check", home=home)
    assert done.returncode == 0 and "up to date" in done.stdout
