"""Export on real databases (SQLite, PostgreSQL, MariaDB): golden files, filters, lineage, pins.

Feedback and corrections are written directly through the models (tests/data/golden_export/
chats.py) because the browser UI that records them is built separately.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from chatbot.db import training_queries as q
from chatbot.db.models import Conversation, Export, User
from chatbot.runtime import Runtime
from chatbot.settings import Settings
from chatbot.training.examples import ExampleOptions
from chatbot.training.export import ExportOptions, ExportResult, run_export
from chatbot.training.filters import ExportFilters
from chatbot.training.split import SplitPlan
from tests.data.golden_export import chats

pytestmark = pytest.mark.integration
GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden_export"
UPDATE = os.environ.get("AFINA_TEST_UPDATE_GOLDEN") == "1"


@pytest.fixture
def runtime(database_url: str, tmp_path: Path) -> Iterator[Runtime]:
    """A migrated database holding the fixed chats."""
    rt = Runtime.open(Settings(home=tmp_path / "var", database={"url": database_url}))
    with rt.sessions.begin() as session:
        chats.seed(session)
    yield rt
    rt.engine.dispose()


def export(rt: Runtime, out: Path, **overrides) -> ExportResult:
    """An export with the golden defaults (exact duplicate matching: no model needed)."""
    base = {"near_duplicates": False, "plan": SplitPlan(validation=0.2, test=0.0, seed=0)}
    options = ExportOptions.from_settings(rt.settings.training, **{**base, **overrides})
    return run_export(sessions=rt.sessions, out=out, options=options, created_by="root")


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def contents(result: ExportResult) -> list[str]:
    return [
        m["content"]
        for path in result.files.values()
        for ex in lines(path)
        for m in ex.get("messages", ex.get("input", {}).get("messages", []))
    ]


def test_export_matches_the_golden_files(runtime: Runtime, tmp_path: Path):
    result = export(runtime, tmp_path / "out")
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    for file in report["files"]:
        file["path"] = Path(file["path"]).name
    produced = {name: (tmp_path / "out" / name).read_text() for name in GOLDEN_FILES}
    produced["report.json"] = json.dumps(report, indent=2, sort_keys=True) + "\n"
    if UPDATE:
        for name, text in produced.items():
            (GOLDEN / name).write_text(text, encoding="utf-8")
    for name, text in produced.items():
        assert text == (GOLDEN / name).read_text(encoding="utf-8"), name
    assert result.ok and set(result.files) == {"train", "validation", "test"}


GOLDEN_FILES = ("train.jsonl", "validation.jsonl", "test.jsonl")


def test_export_is_recorded_with_who_what_and_where(runtime: Runtime, tmp_path: Path):
    result = export(runtime, tmp_path / "out")
    with runtime.sessions() as session:
        row = session.get(Export, result.export_id)
        splits = q.export_splits(session=session, export_id=result.export_id)
        root = session.scalar(select(User).where(User.username == "root"))
    assert row is not None and root is not None and row.created_by == root.id
    assert row.redacted is True and row.seed == 0 and row.format == "chat"
    assert row.filters["rating"] == "not-negative" and row.filters["validation_fraction"] == 0.2
    for path in result.files.values():
        assert row.files[path.name] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert splits["pinned"] == "test" and "excluded" not in splits and "downvoted" not in splits
    assert row.counts["skipped"] == {"downvoted": 1}
    assert sum(row.counts["examples"].values()) == sum(len(lines(p)) for p in result.files.values())
    assert row.report is not None and row.report["redaction"]["counts"]["EMAIL"] == 2


def test_redaction_is_on_by_default_and_off_only_when_asked(runtime: Runtime, tmp_path: Path):
    redacted = "\n".join(contents(export(runtime, tmp_path / "a")))
    assert "jane.doe@example.com" not in redacted and "4111" not in redacted
    assert "<EMAIL_1>" in redacted and "<CARD_1>" in redacted and "<SECRET_1>" in redacted
    plain = export(runtime, tmp_path / "b", redact=False)
    assert "jane.doe@example.com" in "\n".join(contents(plain))
    with runtime.sessions() as session:
        row = session.get(Export, plain.export_id)
    assert row is not None and row.redacted is False and row.filters["redact"] is False
    assert "Redaction: OFF" in plain.text


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"locale": "es"}, {"spanish"}),
        ({"user": "root"}, {"pinned"}),
        ({"backend": "fewshot"}, {"multi"}),
        ({"corrected_only": True}, {"corrected"}),
        ({"min_turns": 2}, {"multi", "failed"}),
        ({"rating": "positive"}, {"faq-00", "faq-03", "faq-06", "faq-09", "multi", "corrected"}),
    ],
)
def test_filters_select_conversations(runtime: Runtime, tmp_path: Path, filters, expected):
    result = export(runtime, tmp_path / "out", filters=ExportFilters(**filters))
    with runtime.sessions() as session:
        splits = q.export_splits(session=session, export_id=result.export_id)
    assert set(splits) == expected


def test_since_until_select_by_start_time(runtime: Runtime, tmp_path: Path):
    since = chats.START.replace(hour=10)  # faq-01 onwards
    until = chats.START.replace(hour=12)  # before faq-03
    result = export(runtime, tmp_path / "o", filters=ExportFilters(since=since, until=until))
    with runtime.sessions() as session:
        assert set(q.export_splits(session=session, export_id=result.export_id)) == {
            "faq-01",
            "faq-02",
        }


def test_pinned_test_split_survives_later_exports(runtime: Runtime, tmp_path: Path):
    first = export(runtime, tmp_path / "a", plan=SplitPlan(0.1, 0.3, seed=1), pin_test=True)
    with runtime.sessions() as session:
        held = {
            c
            for c, s in q.export_splits(session=session, export_id=first.export_id).items()
            if s == "test"
        }
        pinned = set(
            session.scalars(select(Conversation.id).where(Conversation.pinned_split == "test"))
        )
    assert held == pinned and len(held) > 1
    later = export(runtime, tmp_path / "b", plan=SplitPlan(0.1, 0.0, seed=99))
    with runtime.sessions() as session:
        splits = q.export_splits(session=session, export_id=later.export_id)
    assert {c for c in held if c in splits} == {c for c, s in splits.items() if s == "test"}
    one_file = export(runtime, tmp_path / "all.jsonl", single_file=True)
    assert set(one_file.files) == {"train"}
    assert not held & {ex["messages"][1]["content"] for ex in lines(one_file.files["train"])}


def test_preference_export_pairs_corrections_with_originals(runtime: Runtime, tmp_path: Path):
    result = export(
        runtime, tmp_path / "dpo", examples=ExampleOptions(format="dpo"), plan=SplitPlan(0, 0, 0)
    )
    [pair] = lines(result.files["train"])
    assert pair["preferred_output"][0]["content"].startswith("No, but we refund")
    assert pair["non_preferred_output"][0]["content"] == "Always!"
    assert result.report["files"][0]["rules"]["too_few_examples"]["count"] == 1
    assert not result.ok


def test_pages_of_conversations_with_equal_start_times_are_all_read(runtime: Runtime):
    with runtime.sessions.begin() as session:
        session.execute(Conversation.__table__.update().values(created_at=chats.START))
    with runtime.sessions() as session:
        conditions = ExportFilters().sql()
        ids = [
            c.id
            for c in q.iter_training_conversations(session=session, conditions=conditions, batch=2)
        ]
    assert len(ids) == len(set(ids)) == len(chats.FAQ) + 7  # every chat but the excluded one


def test_near_duplicates_found_by_the_embedder_stay_held_out(tmp_path: Path, embedder):
    """A paraphrase of the pinned test chat's question follows it into the test split."""
    rt = Runtime.open(Settings(home=tmp_path / "var"))
    with rt.sessions.begin() as session:
        chats.seed(session)
        paraphrase = Conversation(id="paraphrase", user_id=1, created_at=chats.START)
        session.add(paraphrase)
        session.flush()
        chats._turns(
            session,
            paraphrase,
            [("user", "What's the cost of shipping?", {}), ("assistant", "Free over 50.", {})],
        )
    options = ExportOptions.from_settings(
        rt.settings.training, threshold=0.8, plan=SplitPlan(0.0, 0.0, 0)
    )
    result = run_export(
        sessions=rt.sessions,
        out=tmp_path / "out",
        options=options,
        encode_factory=lambda: embedder.encode,
    )
    with rt.sessions() as session:
        splits = q.export_splits(session=session, export_id=result.export_id)
    rt.engine.dispose()
    assert splits["paraphrase"] == splits["faq-00"] == splits["pinned"] == "test"
    assert splits["faq-01"] == "train"
    assert result.report["splits"]["duplicate_detection"] == "embedder"


def test_web_download_is_a_zip_of_the_export(tmp_path: Path):
    """What the admin download route serves: files + report in one zip, lineage recorded."""
    import zipfile

    from chatbot.training.download import export_zip

    rt = Runtime.open(Settings(home=tmp_path / "var"))
    with rt.sessions.begin() as session:
        chats.seed(session)
    archive, result = export_zip(
        sessions=rt.sessions,
        training=rt.settings.training,
        created_by="root",
        near_duplicates=False,
    )
    rt.engine.dispose()
    names = set(zipfile.ZipFile(archive).namelist())
    shutil.rmtree(archive.parent)
    assert names == {"train.jsonl", "validation.jsonl", "test.jsonl", "report.json", "report.txt"}
    assert archive.name == f"afina-export-{result.export_id}.zip"
