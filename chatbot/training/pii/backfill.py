"""Detect personal data once in rows stored before detection-on-store (resumable, batched).

Each batch (spaCy ``nlp.pipe``) is committed on its own, so a stopped run loses at most one
batch and the next run goes on from the rows still unchecked.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from chatbot.db import pii_store
from chatbot.db.pii_store import TABLES
from chatbot.settings import PiiSettings
from chatbot.training.pii.detect import detect_and_store, detector_for
from chatbot.training.pii.spans import VERSION

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker


@dataclass
class BackfillResult:
    """What a backfill run did."""

    detected: dict[str, int] = field(default_factory=dict)
    left: int = 0  # rows still unchecked (time budget reached)
    seconds: float = 0.0


def pending(sessions: sessionmaker[Session]) -> int:
    """Rows (messages and corrections) not yet checked by the current detector."""
    with sessions() as session:
        return sum(
            pii_store.count_unchecked(session=session, table=t, version=VERSION) for t in TABLES
        )


def backfill(
    sessions: sessionmaker[Session],
    settings: PiiSettings,
    *,
    progress: Callable[[int], None] = lambda n: None,
    budget_s: float | None = None,
) -> BackfillResult:
    """Detect every unchecked row, a batch at a time, until done or ``budget_s`` runs out."""
    start = time.perf_counter()
    result = BackfillResult()
    detector = None
    finished = 0
    for table in TABLES:
        after = None
        result.detected[table] = 0
        while budget_s is None or time.perf_counter() - start < budget_s:
            with sessions() as session:
                rows = pii_store.unchecked(
                    session=session, table=table, version=VERSION, after=after,
                    limit=settings.batch_size,
                )  # fmt: skip
            if not rows:
                finished += after is None  # none unchecked at all
                break
            detector = detector or detector_for(settings)
            result.detected[table] += detect_and_store(sessions, detector, table, rows)
            after = rows[-1].id
            progress(len(rows))
    # nothing was unchecked: no second scan of a big table to count what is left
    result.left = 0 if finished == len(TABLES) else pending(sessions)
    result.seconds = time.perf_counter() - start
    return result
