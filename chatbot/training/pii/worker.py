"""Detection of personal data in newly stored messages, in a child process of the server.

A commit hook (``pii_store.watch_stored``) sends the ids of new rows to one low-priority child
process (spawned; nice ``AFINA_PII_WORKER_NICE``, one math thread), which gathers ids for a
moment, detects them as a batch and stores the spans. The chats neither wait on it nor share
the interpreter lock with it, and the OS gives them the CPU first: detecting took 35-60% of
the server's CPU samples under load when it was a thread of the server. The models load in the
child on the first message. The child ends when the server stops or dies; one that died is
started again on the next stored message (at most every ``RESTART_AFTER_S``). Anything it
misses (a crash, a stop) is found by ``afina export pii-backfill`` or the export.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import queue
import signal
import threading
import time
from multiprocessing.queues import Queue
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import make_url

from chatbot.db import pii_store
from chatbot.db.pii_store import Table
from chatbot.settings import PiiSettings
from chatbot.training.pii.spans import VERSION

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess

    from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)
Item = tuple[str, list[Any]]
_STOP: Item = ("stop", [])
_SPAWN = multiprocessing.get_context("spawn")  # no fork of a server with threads and sockets
GATHER_S = 0.2  # wait this long for more ids before detecting a batch
PARENT_CHECK_S = 1.0  # how often an idle child checks that the server still runs
RESTART_AFTER_S = 30.0  # a child that died is started again at most this often


class PiiWorker:
    """Detects personal data in messages shortly after they are committed (child process)."""

    def __init__(self, sessions: sessionmaker[Session], settings: PiiSettings):
        self._sessions = sessions
        self._settings = settings
        self._url = sessions.kw["bind"].url.render_as_string(hide_password=False)
        self._lock = threading.Lock()  # commit hooks run in many threads
        self._process: BaseProcess | None = None
        self._inbox: Queue[Item] | None = None
        self._outbox: Queue[tuple[int, int]] | None = None
        self._started_s = -math.inf
        self._stopping = False
        self._drains = 0
        self._unwatch = lambda: None
        self.done = 0  # rows detected so far (as of the last ``drain``)

    def start(self) -> PiiWorker:
        """Start the child process and watch commits."""
        url = make_url(self._url)
        if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
            log.warning("in-memory SQLite: personal data is not detected on store")
            return self
        with self._lock:
            self._spawn()
        self._unwatch = pii_store.watch_stored(self._sessions, self.notify)
        return self

    def notify(self, table: Table, ids: list[Any]) -> None:
        """Send new rows to the child (called after their commit; never blocks the chat)."""
        with self._lock:
            if self._stopping or self._process is None or self._inbox is None:
                return
            if not self._process.is_alive() and not self._restart():
                return  # the backfill finds these rows
            self._inbox.put((table, list(ids)))

    def stop(self, timeout: float = 10.0) -> None:
        """Stop watching, let the child finish what is queued (up to ``timeout``), end it."""
        self._unwatch()
        with self._lock:
            self._stopping = True
            process, inbox, outbox = self._process, self._inbox, self._outbox
            if process is None or inbox is None or outbox is None:
                return
            if process.is_alive():
                inbox.put(_STOP)
        process.join(timeout)
        if process.is_alive():
            log.warning("the personal-data detector did not stop in %.0f s: ending it", timeout)
            process.terminate()
            process.join(5)
        inbox.close()
        outbox.close()

    def drain(self, timeout: float = 60.0) -> None:
        """Wait until everything sent so far is detected (for tests and shutdown)."""
        with self._lock:
            if self._process is None or self._inbox is None or self._outbox is None:
                return
            self._drains += 1
            token, process, outbox = self._drains, self._process, self._outbox
            self._inbox.put(("drain", [token]))
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                seen, self.done = outbox.get(timeout=min(left, 1.0))
            except queue.Empty:
                if not process.is_alive():
                    return
                continue
            if seen >= token:
                return

    @property
    def pid(self) -> int | None:
        """The child's process id while it runs."""
        process = self._process
        return process.pid if process is not None and process.is_alive() else None

    def _spawn(self) -> None:
        inbox: Queue[Item] = _SPAWN.Queue()
        inbox.cancel_join_thread()  # a dead child must not hang the server's exit
        outbox: Queue[tuple[int, int]] = _SPAWN.Queue()
        process = _SPAWN.Process(
            target=run_child,
            args=(self._url, self._settings, inbox, outbox),
            name="afina-pii",
            daemon=True,  # ended with the server even if stop() is never called
        )
        process.start()
        self._process, self._inbox, self._outbox = process, inbox, outbox
        self._started_s = time.monotonic()

    def _restart(self) -> bool:
        """Start a new child after a death (not more often than ``RESTART_AFTER_S``)."""
        if time.monotonic() - self._started_s < RESTART_AFTER_S:
            return False
        code = self._process.exitcode if self._process else None
        log.error(
            "the personal-data detector process exited (code %s): starting it again; "
            "`afina export pii-backfill` detects the rows it missed",
            code,
        )
        self._spawn()
        return True


def run_child(
    url: str, settings: PiiSettings, inbox: Queue[Item], outbox: Queue[tuple[int, int]]
) -> None:
    """The child's loop: gather ids, detect a batch, store; until told to stop or orphaned."""
    from backends.threads import limit_thread_env
    from chatbot.db.session import make_engine, make_sessionmaker

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the server, which stops us
    limit_thread_env()
    if settings.worker_nice:
        try:
            os.nice(settings.worker_nice)
        except OSError:  # not allowed here: run at the server's priority
            log.warning("could not lower the personal-data detector's priority")
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    parent = multiprocessing.parent_process()
    done = 0
    try:
        while True:
            batch = _gather(inbox, settings.batch_size, parent)
            pending: dict[str, list[Any]] = {"messages": [], "corrections": []}
            for table, ids in batch:
                if table in pending:
                    pending[table].extend(ids)
            try:
                for table, ids in pending.items():
                    if ids:
                        done += _detect(sessions, settings, table, ids)  # type: ignore[arg-type]
            except Exception:  # keep going; the backfill finds these later
                log.exception("personal-data detection failed for %d row(s)", len(batch))
            for table, items in batch:
                if table == "drain":
                    outbox.put((items[0], done))
            if not batch or any(table == "stop" for table, _ in batch):
                return
    finally:
        engine.dispose()


def _gather(inbox: Queue[Item], size_limit: int, parent: Any) -> list[Item]:
    """The first item, then whatever arrives within ``GATHER_S`` (up to a batch); empty
    when the server is gone."""
    while True:
        try:
            items = [inbox.get(timeout=PARENT_CHECK_S)]
            break
        except queue.Empty:
            if parent is not None and not parent.is_alive():
                return []
    size = len(items[0][1])
    while size < size_limit and items[-1][0] != "stop":
        try:
            item = inbox.get(timeout=GATHER_S)
        except queue.Empty:
            break
        items.append(item)
        size += len(item[1])
    return items


def _detect(
    sessions: sessionmaker[Session], settings: PiiSettings, table: Table, ids: list[Any]
) -> int:
    """Detect the rows ``ids`` still needing it, a batch at a time; how many were stored."""
    from chatbot.training.pii.detect import detect_and_store, detector_for

    detector = detector_for(settings)  # loads the models once per process
    done = 0
    for start in range(0, len(ids), settings.batch_size):
        chunk = ids[start : start + settings.batch_size]
        with sessions() as session:
            rows = pii_store.rows_by_id(session=session, table=table, ids=chunk, version=VERSION)
        done += detect_and_store(sessions, detector, table, rows)
    return done
