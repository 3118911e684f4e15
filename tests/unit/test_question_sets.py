"""The question sets in tests/data that stand in for agents' approved chats train the embedder
in the tune benchmark, so none of their questions may repeat a question of a set the benchmarks
measure on (that would be training on the test), and each must name an entry that exists."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from backends.retrieval.spelling import fold
from chatbot.settings import BUNDLED_KB

DATA = Path(__file__).resolve().parents[1] / "data"
TRAINING = ["regional_es_chats/questions.jsonl", "casual_en_chats/questions.jsonl"]
MEASURED = [
    "bilingual_questions.jsonl",
    "heldout_questions.jsonl",
    "short_questions.jsonl",
    "out_of_scope_questions.jsonl",
    "out_of_scope_more.jsonl",
    "regional_es/questions.jsonl",
    "regional_es/out_of_scope.jsonl",
    "regional_es_dev/questions.jsonl",
]


def rows(name: str) -> list[dict]:
    with (DATA / name).open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def key(text: str) -> str:
    """A question as compared: lower case, no accents, letters, digits and single spaces."""
    return " ".join(re.sub(r"[^\w\s]", " ", fold(text)).split())


@pytest.mark.parametrize("name", TRAINING)
def test_a_training_set_repeats_no_measured_question(name):
    measured = {key(q["text"]) for m in MEASURED for q in rows(m)}
    repeated = [q["text"] for q in rows(name) if key(q["text"]) in measured]
    assert repeated == []


@pytest.mark.parametrize("name", TRAINING)
def test_a_training_set_names_entries_of_its_language(name):
    questions = rows(name)
    locale = questions[0]["locale"]
    with (BUNDLED_KB / f"faq_{locale}.jsonl").open(encoding="utf-8") as f:
        ids = {json.loads(line)["id"] for line in f if line.strip()}
    assert {q["locale"] for q in questions} == {locale}
    assert {q["entry_id"] for q in questions} == ids  # every entry, and only real ones
