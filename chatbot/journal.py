"""Turns the database refused even after a retry, kept as JSON lines until it is back."""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
FILE_NAME = "unsaved-turns.jsonl"


class Journal:
    """An append-only file of records that could not be written to the database.

    ``add`` appends one JSON line (flushed and synced: it must survive the crash that may
    follow); ``replay`` hands each record to a writer and keeps only the ones that failed.
    Both hold a file lock too: the workers of ``afina serve --workers`` share the file."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()

    def add(self, record: dict[str, Any]) -> None:
        """Keep ``record`` for later (blocking)."""
        line = json.dumps(record, ensure_ascii=False, default=str)
        with self._locked():
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(line + "\n")
                handle.flush()
                os.fsync(handle.fileno())
        log.warning("database unavailable: %s record kept in %s", record.get("kind"), self.path)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """This process's threads, then other processes, one at a time (blocking)."""
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.with_suffix(".lock").open("a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(lock, fcntl.LOCK_UN)

    def pending(self) -> list[dict[str, Any]]:
        """The records not yet written to the database."""
        if not self.path.exists():
            return []
        records = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut by a crash: nothing to recover from it
                log.warning("skipped a cut line in %s", self.path)
        return records

    def replay(self, write: Callable[[dict[str, Any]], None]) -> int:
        """Write each pending record with ``write``; those that fail stay. Returns how many
        were written (blocking)."""
        with self._locked():
            records = self.pending()
            if not records:
                return 0
            left = []
            for record in records:
                try:
                    write(record)
                except Exception as exc:
                    log.warning("kept an unsaved %s: %s", record.get("kind"), exc)
                    left.append(record)
            temporary = self.path.with_suffix(".tmp")
            temporary.write_text(
                "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in left), encoding="utf-8"
            )
            os.replace(temporary, self.path)
            if not left:
                self.path.unlink(missing_ok=True)
        written = len(records) - len(left)
        if written:
            log.warning("%d unsaved record(s) written to the database", written)
        return written


def describe(exc: BaseException) -> str:
    """The error of a kept record: its type and first line."""
    first = (str(exc).splitlines() or [""])[0][:300]
    return f"{type(exc).__name__}: {first}"
