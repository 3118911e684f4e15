"""Knowledge files: FAQ phrasings merge into entries; bad files fail naming file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from chatbot.errors import InputError
from chatbot.knowledge.loaders import load_file, load_path
from tests.conftest import SMALL_KB


def test_faq_rows_sharing_an_id_are_one_entry_with_all_phrasings():
    entries = load_file(SMALL_KB / "returns.csv")
    assert len(entries) == 1
    assert len(entries[0].texts) == 3
    assert entries[0].answer.startswith("You can return")


def test_same_id_in_two_locales_gives_two_entries():
    entries = load_file(SMALL_KB / "faq.jsonl")
    assert sorted((e.id, e.locale) for e in entries) == [
        ("reset-password", "en"),
        ("reset-password", "es"),
        ("shipping-cost", "en"),
        ("shipping-cost", "es"),
    ]


def test_markdown_article_is_chunked_by_heading():
    entries = load_file(SMALL_KB / "articles" / "en" / "gift-cards.md")
    titles = [e.title for e in entries]
    assert titles == ["Gift cards", "Gift cards › Using a gift card", "Gift cards › Expiry"]
    assert all(e.locale == "en" and e.kind == "passage" for e in entries)
    assert "two years" in entries[2].answer


def test_folder_loads_every_knowledge_file():
    ids = {e.id for e in load_path(SMALL_KB)}
    assert {"reset-password", "shipping-cost", "return-window", "gift-cards#expiry"} <= ids


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        (
            "bad.jsonl",
            '{"id": "a", "questions": ["q"], "answer": "x"}\n{"id": "b", oops}\n',
            r"bad.jsonl:2: invalid JSON",
        ),
        ("bad.jsonl", '{"id": "a", "questions": [], "answer": "x"}\n', r"bad.jsonl:1: 'questions'"),
        (
            "bad.jsonl",
            '{"id": "a", "questions": ["q"], "answer": "x", "locale": "english"}\n',
            r"bad.jsonl:1: 'locale'",
        ),
        ("bad.csv", "id,question\na,q\n", r"bad.csv:1: missing CSV column\(s\): answer"),
        ("bad.csv", "id,question,answer\na,q,x\nb,,y\n", r"bad.csv:3: 'question'"),
        ("bad.csv", "id,question,answer\na,q,x,extra\n", r"bad.csv:2: more fields"),
        ("bad.csv", "id,question,answer\na,q,one\na,q2,two\n", r"bad.csv:3: .*different answer"),
    ],
)
def test_malformed_row_names_file_and_line(tmp_path: Path, name: str, content: str, expected: str):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=expected):
        load_file(path)


def test_non_utf8_file_names_the_line(tmp_path: Path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("id,question,answer\na,q,x\nb,¿envío?,y\n".encode("latin-1"))
    with pytest.raises(InputError, match=r"latin1.csv:3: not UTF-8"):
        load_file(path)


def test_duplicate_id_across_files_is_rejected(tmp_path: Path):
    for name in ("one.jsonl", "two.jsonl"):
        (tmp_path / name).write_text('{"id": "a", "questions": ["q"], "answer": "x"}\n')
    with pytest.raises(InputError, match=r"already defined at one\.jsonl:1"):
        load_path(tmp_path)


def test_empty_folder_is_an_error(tmp_path: Path):
    with pytest.raises(InputError, match=r"no \.csv, \.jsonl"):
        load_path(tmp_path)
