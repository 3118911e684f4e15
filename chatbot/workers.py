"""``afina serve --workers N``: N server processes on consecutive ports, kept running.

The parent does the start-up work that must happen once (migrations, the index, the first
admin, the cookie secret, replaying the journal, marking questions a crash left unanswered),
then starts each worker with ``afina serve --worker`` and restarts one that dies. The
questions a dead worker was answering are marked "interrupted", and the answers it was
streaming kept as shown, after ``grace_s`` (a turn still running in another worker by then is
rare; its answer is stored anyway)."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import FrameType

from sqlalchemy.orm import Session, sessionmaker

from chatbot.db.recovery import mark_cut_answers, mark_unanswered

log = logging.getLogger(__name__)
QUICK_DEATH_S = 10.0  # a worker that dies this soon after starting counts as a failed start
MAX_QUICK_DEATHS = 5


@dataclass
class Worker:
    """One server process and when it started."""

    port: int
    process: subprocess.Popen | None = None
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    started_s: float = 0.0
    quick_deaths: int = 0


def worker_command(host: str, port: int) -> list[str]:
    """The command line of one worker."""
    module = [sys.executable, "-m", "chatbot.cli.main"]
    return [*module, "serve", "--host", host, "--port", str(port), "--worker"]


class Supervisor:
    """Starts the workers, restarts a dead one, marks its cut questions, stops them all."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        host: str,
        ports: list[int],
        *,
        grace_s: float = 120.0,
        command: Callable[[str, int], list[str]] = worker_command,
    ):
        self._sessions, self._host, self._command = sessions, host, command
        self.workers = [Worker(port) for port in ports]
        self.grace_s = grace_s
        self._pending: list[tuple[float, datetime, datetime]] = []  # (due, since, until)
        self._stopping = False

    def run(self) -> int:
        """Serve until SIGTERM/SIGINT (exit 0) or a worker fails to start repeatedly (1)."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._stop)
        for worker in self.workers:
            self._start(worker)
        try:
            while not self._stopping:
                if not self._watch():
                    return 1
                self._mark_due()
                time.sleep(0.5)
        finally:
            self._terminate()
        return 0

    def _start(self, worker: Worker) -> None:
        worker.process = subprocess.Popen(self._command(self._host, worker.port))
        worker.started, worker.started_s = datetime.now(UTC), time.monotonic()

    def _watch(self) -> bool:
        """Restart dead workers; False when one keeps dying right after its start."""
        for worker in self.workers:
            process = worker.process
            if process is None or process.poll() is None or self._stopping:
                continue
            died, lived = datetime.now(UTC), time.monotonic() - worker.started_s
            log.warning(
                "worker on port %d exited with %s after %.0f s: restarting it",
                worker.port,
                process.returncode,
                lived,
            )
            worker.quick_deaths = worker.quick_deaths + 1 if lived < QUICK_DEATH_S else 0
            if worker.quick_deaths >= MAX_QUICK_DEATHS:
                log.error("worker on port %d keeps failing at start: stopping", worker.port)
                return False
            self._pending.append((time.monotonic() + self.grace_s, worker.started, died))
            self._start(worker)
        return True

    def _mark_due(self) -> None:
        now = time.monotonic()
        due = [p for p in self._pending if p[0] <= now]
        self._pending = [p for p in self._pending if p[0] > now]
        for _, since, until in due:
            try:
                self._mark(since, until)
            except Exception:
                log.exception("could not mark the turns of a dead worker")

    def _mark(self, since: datetime, until: datetime) -> None:
        """A dead worker's turns: unanswered questions "interrupted", answers it was
        streaming kept as shown ("partial")."""
        with self._sessions.begin() as session:
            questions = mark_unanswered(session=session, since=since, until=until)
            answers = mark_cut_answers(session=session)
        if questions or answers:
            log.warning(
                "a dead worker's turns: %d question(s) marked interrupted, %d answer(s) cut",
                questions,
                answers,
            )

    def _stop(self, _signum: int, _frame: FrameType | None) -> None:
        self._stopping = True

    def _terminate(self) -> None:
        """SIGTERM every worker (they finish or store their turns), SIGKILL after 15 s."""
        alive = [w.process for w in self.workers if w.process and w.process.poll() is None]
        for process in alive:
            process.terminate()
        deadline = time.monotonic() + 15
        for process in alive:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for _, since, until in self._pending:  # nobody serves any more: mark now
            self._mark(since, until)
