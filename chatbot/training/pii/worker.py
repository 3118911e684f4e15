"""Background detection of personal data in newly stored messages, off the chat's path.

A daemon thread waits on a queue fed by a commit hook (``pii_store.watch_stored``), gathers
ids for a moment, detects them as a batch and stores the spans. The models load on the first
message. Anything it misses (a crash, a stop) is found by the backfill or the export.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import TYPE_CHECKING, Any

from chatbot.db import pii_store
from chatbot.db.pii_store import Table
from chatbot.settings import PiiSettings
from chatbot.training.pii.detect import detect_and_store, detector_for
from chatbot.training.pii.spans import VERSION

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)
_STOP: tuple[str, list[Any]] = ("stop", [])
GATHER_S = 0.2  # wait this long for more ids before detecting a batch


class PiiWorker:
    """Detects personal data in messages shortly after they are committed."""

    def __init__(self, sessions: sessionmaker[Session], settings: PiiSettings):
        self._sessions = sessions
        self._settings = settings
        self._queue: queue.Queue[tuple[str, list[Any]]] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="afina-pii", daemon=True)
        self._unwatch = lambda: None
        self.done = 0  # rows detected so far

    def start(self) -> PiiWorker:
        """Watch commits and start the thread."""
        self._unwatch = pii_store.watch_stored(self._sessions, self.notify)
        self._thread.start()
        return self

    def notify(self, table: Table, ids: list[Any]) -> None:
        """Queue new rows for detection (called after their commit)."""
        self._queue.put((table, list(ids)))

    def stop(self, timeout: float = 10.0) -> None:
        """Stop watching, finish what is queued, end the thread."""
        self._unwatch()
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout)

    def drain(self, timeout: float = 60.0) -> None:
        """Wait until everything queued so far is detected (for tests and shutdown)."""
        done = threading.Event()
        self._queue.put(("drain", [done]))
        done.wait(timeout)

    def _run(self) -> None:
        while True:
            batch = self._gather()
            stop = False
            pending: dict[str, list[Any]] = {"messages": [], "corrections": []}
            for table, ids in batch:
                if table == "stop":
                    stop = True
                elif table == "drain":
                    continue
                else:
                    pending[table].extend(ids)
            try:
                for table, ids in pending.items():
                    if ids:
                        self._detect(table, ids)  # type: ignore[arg-type]
            except Exception:  # never take the server down; the backfill finds these later
                log.exception("personal-data detection failed for %d row(s)", len(batch))
            for table, items in batch:
                if table == "drain":
                    items[0].set()
            if stop:
                return

    def _gather(self) -> list[tuple[str, list[Any]]]:
        """The first queued item, then whatever arrives within ``GATHER_S`` (up to a batch)."""
        items = [self._queue.get()]
        size = len(items[0][1])
        while size < self._settings.batch_size:
            try:
                item = self._queue.get(timeout=GATHER_S)
            except queue.Empty:
                break
            items.append(item)
            size += len(item[1])
        return items

    def _detect(self, table: Table, ids: list[Any]) -> None:
        detector = detector_for(self._settings)
        for start in range(0, len(ids), self._settings.batch_size):
            chunk = ids[start : start + self._settings.batch_size]
            with self._sessions() as session:
                rows = pii_store.rows_by_id(
                    session=session, table=table, ids=chunk, version=VERSION
                )
            self.done += detect_and_store(self._sessions, detector, table, rows)
