"""Detect stored rows in batches and keep the spans with them (worker, backfill, export)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from chatbot.db import pii_store
from chatbot.db.pii_store import PiiRow, Table
from chatbot.settings import PiiSettings
from chatbot.training.pii.spans import VERSION

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from chatbot.training.pii.engine import Detector


def detector_for(settings: PiiSettings) -> Detector:
    """The process's detector for these settings (models load on first call)."""
    from chatbot.training.pii.engine import get_detector  # spaCy/Presidio import: ~2 s

    return get_detector(settings.english_model, settings.spanish_model, settings.threshold)


def detect_rows(
    detector: Detector, rows: Sequence[PiiRow], batch: int = 64
) -> dict[Any, list[dict[str, Any]]]:
    """Spans (JSON form) of each row, detected in the language of its conversation."""
    by_locale: dict[str, list[PiiRow]] = defaultdict(list)
    for row in rows:
        by_locale[row.locale or "en"].append(row)
    found: dict[Any, list[dict[str, Any]]] = {}
    for locale, group in by_locale.items():
        spans = detector.detect([r.content for r in group], locale, batch=batch)
        for row, row_spans in zip(group, spans, strict=True):
            found[row.id] = [s.to_json() for s in row_spans]
    return found


def detect_and_store(
    sessions: sessionmaker[Session], detector: Detector, table: Table, rows: Sequence[PiiRow]
) -> int:
    """Detect ``rows`` and store their spans in one transaction; returns how many."""
    found = detect_rows(detector, rows)
    with sessions.begin() as session:
        pii_store.save_spans(session=session, table=table, found=found, version=VERSION)
    return len(found)
