"""Calibrated hand-over scores: chosen for a target out-of-scope recall, stored with an index.

A calibration is one language index's ``handover.json``: the hand-over score, the target it
was chosen for, what it costs on the questions it was chosen on, and the index version and
embedder it holds for. A rebuilt index (another version) ignores an old calibration.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from backends.retrieval.files import write_file_atomic

FILE = "handover.json"


@dataclass(frozen=True)
class Point:
    """One hand-over score and what it does on a set of questions."""

    threshold: float
    oos_recall: float  # out-of-scope questions handed over
    answered_right: float  # in-scope questions answered (not handed over) by the right entry
    handed_over: float  # in-scope questions handed over


@dataclass(frozen=True)
class Scored:
    """One question under one index: its best score and, per threshold, whether it is right."""

    score: float  # the best entry's score
    right: bool  # in scope and the answering entry is the labelled one
    in_scope: bool
    second: float = 0.0  # the runner-up entry's score

    def confidence(self, weight: float) -> float:
        """The best score plus ``weight`` x its lead over the runner-up (hand-over below it)."""
        return self.score + weight * (self.score - self.second)


@dataclass(frozen=True)
class Calibration:
    """A language index's calibrated hand-over score and where it came from."""

    threshold: float
    target_oos_recall: float
    index_version: str
    model: str
    dev: dict[str, Any]  # counts and figures on the questions it was chosen on
    margin_weight: float = 0.0  # confidence = best + weight x (best - runner-up)
    sources: list[dict[str, str]] = field(default_factory=list)  # question files (path, sha256)
    created_at: str = ""

    def holds_for(self, version: str, model: str) -> bool:
        """Whether this calibration was made for that index version and embedder."""
        return self.index_version == version and self.model == model


def choose_threshold(oos_scores: Sequence[float], target: float) -> float:
    """The lowest score that hands over at least ``target`` of ``oos_scores``.

    A question hands over when its best score is below the threshold, so the threshold sits
    just above the out-of-scope score at rank ceil(target x n).
    """
    if not oos_scores:
        raise ValueError("calibrating a hand-over score needs out-of-scope questions")
    ordered = sorted(oos_scores)
    k = min(len(ordered), max(1, math.ceil(target * len(ordered) - 1e-9)))
    return float(ordered[k - 1]) + 1e-6


def point(threshold: float, scored: Sequence[Scored], weight: float = 0.0) -> Point:
    """What ``threshold`` does on ``scored`` questions (confidence with margin ``weight``)."""
    inside = [s.confidence(weight) >= threshold for s in scored if s.in_scope]
    right = [s.right for s in scored if s.in_scope]
    return Point(
        threshold=threshold,
        oos_recall=_share(s.confidence(weight) < threshold for s in scored if not s.in_scope),
        answered_right=_share(a and r for a, r in zip(inside, right, strict=True)),
        handed_over=_share(not a for a in inside),
    )


def _share(flags: Any) -> float:
    """The share of true values (0.0 for none)."""
    values = list(flags)
    return sum(values) / len(values) if values else 0.0


def read(folder: Path) -> Calibration | None:
    """The calibration stored in an index folder, or None (none, or unreadable)."""
    path = Path(folder) / FILE
    if not path.exists():
        return None
    try:
        return Calibration(**json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, TypeError):
        return None


def write(folder: Path, calibration: Calibration) -> None:
    """Store ``calibration`` in an index folder (atomically)."""
    data = json.dumps(asdict(calibration), indent=2, ensure_ascii=False)
    write_file_atomic(Path(folder) / FILE, data.encode())
