"""Output files with their sha256, and the export's lineage rows (which chat went where)."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from chatbot.db import training_queries as q

if TYPE_CHECKING:  # typing only: SQLAlchemy stays inside chatbot/db at run time
    from sqlalchemy.orm import Session


def sha256_file(path: Path) -> str:
    """The hex sha256 of a file's bytes (read in blocks by hashlib)."""
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


class HashedFile:
    """A JSONL file written to ``<name>.part`` and renamed on ``commit``; hashes what it writes."""

    def __init__(self, path: Path):
        self.path = path
        self.part = path.with_name(path.name + ".part")
        self.sha256 = hashlib.sha256()
        self.lines = 0
        self._out: BinaryIO = self.part.open("wb")

    def write(self, example: dict[str, Any]) -> None:
        """Append one example as a JSON line."""
        self.write_line(json.dumps(example, ensure_ascii=False))

    def write_line(self, line: str) -> None:
        """Append one example already serialized (``json.dumps(example, ensure_ascii=False)``)."""
        data = (line + "\n").encode("utf-8")
        self._out.write(data)
        self.sha256.update(data)
        self.lines += 1

    def close(self) -> None:
        """Flush the part file."""
        if not self._out.closed:
            self._out.close()

    def commit(self) -> str:
        """Move the finished file into place; its sha256."""
        self.close()
        self.part.replace(self.path)
        return self.sha256.hexdigest()

    def discard(self) -> None:
        """Remove the part file (a failed export leaves no half file)."""
        self.close()
        self.part.unlink(missing_ok=True)


class Lineage:
    """Records one export: its row, then (conversation, split) items in batches, then totals."""

    def __init__(self, session: Session, export_id: int, *, pin_test: bool, batch: int = 1000):
        self.session = session
        self.export_id = export_id
        self.pin_test = pin_test
        self.batch = batch
        self.pending: list[tuple[str, str]] = []
        self.conversations: Counter[str] = Counter()

    @classmethod
    def start(
        cls,
        session: Session,
        *,
        created_by: int | None,
        format: str,
        filters: dict[str, Any],
        seed: int,
        redacted: bool,
        pin_test: bool,
    ) -> Lineage:
        """Add the export row and return a recorder for it."""
        export_id = q.add_export(
            session=session,
            created_by=created_by,
            format=format,
            filters=filters,
            seed=seed,
            redacted=redacted,
        )
        return cls(session, export_id, pin_test=pin_test)

    def add(self, conversation_id: str, split: str) -> None:
        """Record that a conversation went to ``split``."""
        self.pending.append((conversation_id, split))
        self.conversations[split] += 1
        if len(self.pending) >= self.batch:
            self.flush()

    def flush(self) -> None:
        """Write the pending items (and pin test conversations when asked)."""
        q.add_export_items(session=self.session, export_id=self.export_id, items=self.pending)
        if self.pin_test:
            tests = [c for c, s in self.pending if s == "test"]
            q.pin_conversations(session=self.session, ids=tests, split="test")
        self.pending = []

    def finish(self, *, counts: dict, files: dict, report: dict) -> None:
        """Store totals, file hashes and the report."""
        self.flush()
        q.finish_export(
            session=self.session,
            export_id=self.export_id,
            counts=counts,
            files=files,
            report=report,
        )
