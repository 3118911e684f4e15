"""`afina demo chats` through the real CLI, then `afina export`: demo chats are training data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chatbot.db import demo_store, store
from chatbot.db.training_queries import iter_training_conversations
from chatbot.runtime import Runtime
from chatbot.settings import Settings
from tests.conftest import SMALL_KB
from tests.e2e.test_cli import afina

pytestmark = pytest.mark.e2e


def stored(home: Path):
    """(demo conversation count, conversations, questions) in ``home``'s database."""
    rt = Runtime.open(Settings(home=home))
    try:
        with rt.sessions() as session:
            count = demo_store.count_demo_conversations(session=session)
            chats = list(iter_training_conversations(session=session, conditions=[]))
            demo_user = store.get_user(session=session, username="demo")
            assert demo_user is not None and demo_user.role == "agent"
    finally:
        rt.engine.dispose()
    questions = [m.content for c in chats for m in c.messages if m.role == "user"]
    return count, chats, questions


def test_demo_chats_log_rated_chats_that_export_as_valid_training_data(tmp_path: Path):
    home = tmp_path / "var"
    done = afina("demo", "chats", "--count", "6", "--seed", "1", home=home)
    assert done.returncode == 0, done.stderr
    assert "Logged 6 demo chats" in done.stdout
    count, chats, first = stored(home)
    assert count == 6 and {c.locale for c in chats} == {"en", "es"}
    assert all(1 <= sum(m.role == "user" for m in c.messages) <= 2 for c in chats)
    # answers come from the retrieval backend, rated by the demo agent; questions are varied
    answers = [m for c in chats for m in c.messages if m.role == "assistant"]
    assert {m.backend_name for m in answers} == {"faq"} and any(m.rating > 0 for m in answers)
    assert not set(first) <= {q for e in _kb_questions() for q in e}

    done = afina("demo", "chats", "--count", "4", home=home)  # a second run adds more
    assert done.returncode == 0, done.stderr
    count, chats, _ = stored(home)
    assert count == 10

    done = afina("demo", "chats", "--count", "14", "--seed", "3", "--replace", home=home)
    assert done.returncode == 0, done.stderr
    assert "Deleted 10 earlier demo chats" in done.stdout
    count, chats, _ = stored(home)
    assert count == 14

    out = tmp_path / "exports" / "demo"
    done = afina("export", "--out", str(out), "--rating", "positive", home=home)
    assert done.returncode == 0, done.stderr
    approved = [c for c in chats if any(m.rating > 0 for m in c.messages)]
    lines = [
        line
        for name in ("train.jsonl", "validation.jsonl")
        for line in (out / name).read_text(encoding="utf-8").splitlines()
    ]
    assert len(lines) == len(approved) > 0
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["ok"] is True
    assert afina("export", "validate", str(out), home=home).returncode == 0


def test_demo_chats_refuses_an_unknown_locale(tmp_path: Path):
    done = afina("demo", "chats", "--locale", "fr", home=tmp_path / "var")
    assert done.returncode == 1 and "en, es, both" in done.stderr


def _kb_questions() -> list[list[str]]:
    """The small test knowledge base's JSONL phrasings."""
    lines = (SMALL_KB / "faq.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["questions"] for line in lines if line.strip()]
