"""Export at scale: worker processes write the very files one process writes, batch after batch.

Big exports stage conversations in worker processes (``AFINA_TRAINING_EXPORT_WORKERS``,
automatic from 20,000 conversations); the files, their sha256, the report and which chat went
to which split must not depend on that. Small batches here stand in for many conversations.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from chatbot.db import training_queries as q
from chatbot.db.models import Export
from chatbot.db.session import make_engine, make_sessionmaker
from chatbot.settings import TrainingSettings
from chatbot.training import export as export_module
from chatbot.training.export import ExportOptions, ExportResult, run_export
from chatbot.training.split import SplitPlan
from tests.bench.export import seed

pytestmark = pytest.mark.integration
MESSAGES = 2_400  # 300 conversations with feedback, corrections and personal data


@pytest.fixture(params=["sqlite", "postgresql"])
def sessions(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    """A database seeded like the export benchmark (SQLite file, PostgreSQL)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'afina.db'}"
        seed(url, MESSAGES)
        engine = make_engine(url)
        yield make_sessionmaker(engine)
        engine.dispose()
    else:
        server = request.getfixturevalue("postgres_url")
        seed(server, MESSAGES)
        engine = make_engine(server)
        yield make_sessionmaker(engine)
        engine.dispose()


def export(sessions: sessionmaker[Session], out: Path, workers: int) -> ExportResult:
    options = ExportOptions.from_settings(
        TrainingSettings(),
        near_duplicates=False,
        plan=SplitPlan(validation=0.1, test=0.05, seed=3),
        workers=workers,
        preview=20,
    )
    return run_export(sessions=sessions, out=out, options=options)


def test_worker_processes_write_the_same_export_as_one_process(
    sessions: sessionmaker[Session], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(export_module, "BATCH", 64)  # several batches in flight
    alone = export(sessions, tmp_path / "one", workers=1)
    pooled = export(sessions, tmp_path / "two", workers=2)
    for split, path in alone.files.items():
        assert path.read_bytes() == pooled.files[split].read_bytes(), split
    assert set(alone.files) == {"train", "validation", "test"}

    def report(result: ExportResult) -> dict:
        data = json.loads(json.dumps(result.report))
        for file in data["files"]:
            file["path"] = Path(file["path"]).name
        return data

    assert report(alone) == report(pooled) and alone.ok
    assert alone.report["counts"]["conversations_read"] == MESSAGES // 8
    assert alone.report["redaction"]["counts"]["EMAIL"] > 0
    assert alone.preview == pooled.preview and len(alone.preview) == 20
    with sessions() as session:
        first = session.get(Export, alone.export_id)
        second = session.get(Export, pooled.export_id)
        assert first is not None and second is not None and first.files == second.files
        splits = q.export_splits(session=session, export_id=alone.export_id)
        assert splits == q.export_splits(session=session, export_id=pooled.export_id)
    assert len(splits) == MESSAGES // 8


def test_conversations_stream_in_creation_order_across_batches(
    sessions: sessionmaker[Session],
):
    with sessions() as session:
        conditions = q.conversation_filter()
        read = list(q.iter_training_conversations(session=session, conditions=conditions, batch=7))
        keys = [k for batch in q.iter_conversation_keys(
            session=session, conditions=conditions, batch=50
        ) for k in batch]  # fmt: skip
    assert [c.id for c in read] == [k[0] for k in keys]
    assert len(read) == MESSAGES // 8 == len({c.id for c in read})
    starts = [c.created_at for c in read]
    assert starts == sorted(starts)
    assert all(len(c.messages) == 8 for c in read)
