"""Calibrated hand-over scores: chosen for a target out-of-scope recall, stored with an index.

A calibration is one language index's ``handover.json``: the hand-over score, the rule that
turns a question's signals (its best entry's score, that score's lead over the runner-up, ...)
into the confidence compared with it, the target it was chosen for, what it costs on the
questions it was chosen on, and the index version and embedder it holds for. A rebuilt index
(another version), or a rule naming a signal this code does not know, ignores a calibration.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from backends.retrieval.files import write_file_atomic
from backends.retrieval.spelling import fold

FILE = "handover.json"
TAIL = 10  # the ranked entry scores the signals read (the backend ranks this many candidates)
# Signals read off the ranked entry scores, the message and the best entry: cheap at answer time.
HIT_SIGNALS = ("best", "lead", "gap", "words", "overlap")
# Signals that ask the other language indexes too (see the backend).
SEARCH_SIGNALS = ("other_best", "other_agrees")
SIGNALS = HIT_SIGNALS + SEARCH_SIGNALS


def hit_signals(scores: Sequence[float], text: str, best_text: str = "") -> dict[str, float]:
    """The signals of one question from its entries' scores, best first, its text, and the
    best entry's text (title, phrasings, answer): ``best`` score, its ``lead`` over the
    runner-up, its ``gap`` over the mean of the next entries (up to ``TAIL``), the log of the
    message's word count (``words``), and the share of its words the best entry uses too
    (``overlap``: "teacher discount?" is close to the student-discount entry in meaning but
    names a word it never uses)."""
    top = float(scores[0])
    rest = [float(s) for s in scores[1:TAIL]] or [top]
    asked = stems(text)
    return {
        "best": top,
        "lead": top - rest[0],
        "gap": top - sum(rest) / len(rest),
        "words": math.log1p(len(text.split())),
        "overlap": len(asked & stems(best_text)) / len(asked) if asked else 0.0,
    }


def stems(text: str) -> set[str]:
    """The first five letters of each word of four or more letters, lowercased, accents off
    (a crude stem for English and Spanish: "devoluciones" and "devolver" share "devol")."""
    return {w[:5] for w in re.findall(r"[^\W\d_]{4,}", fold(text))}


@dataclass(frozen=True)
class Rule:
    """What is compared with the hand-over score: the best score plus ``margin_weight`` x its
    lead over the runner-up, or, with ``features``, a logistic model's probability that the
    answer is right (``intercept`` + ``coefficients`` . signals, through the logistic)."""

    margin_weight: float = 0.0
    features: tuple[str, ...] = ()
    coefficients: tuple[float, ...] = ()
    intercept: float = 0.0

    def confidence(self, signals: Mapping[str, float]) -> float:
        """The confidence of one question from its signals."""
        if not self.features:
            return signals["best"] + self.margin_weight * signals["lead"]
        z = self.intercept + sum(
            c * signals[f] for f, c in zip(self.features, self.coefficients, strict=True)
        )
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))

    def describe(self) -> str:
        """The rule in words."""
        if not self.features:
            return f"best score + {self.margin_weight:g} x its lead over the runner-up"
        terms = " ".join(
            f"{c:+.2f} {f}" for f, c in zip(self.features, self.coefficients, strict=True)
        )
        return f"logistic({self.intercept:+.2f} {terms})"


@dataclass(frozen=True)
class Point:
    """One hand-over score and what it does on a set of questions."""

    threshold: float
    oos_recall: float  # out-of-scope questions handed over
    answered_right: float  # in-scope questions answered (not handed over) by the right entry
    handed_over: float  # in-scope questions handed over


@dataclass(frozen=True)
class Scored:
    """One question under one index: its best score, its other signals, and whether the entry
    that would answer it is the right one."""

    score: float  # the best entry's score
    right: bool  # in scope and the answering entry is the labelled one
    in_scope: bool
    second: float = 0.0  # the runner-up entry's score
    extra: Mapping[str, float] = field(default_factory=dict)  # signals beyond best and lead

    @property
    def signals(self) -> dict[str, float]:
        """Every signal of the question."""
        return {**self.extra, "best": self.score, "lead": self.score - self.second}

    def confidence(self, rule: Rule | float = 0.0) -> float:
        """The question's confidence under ``rule`` (a number: the old lead weight)."""
        if not isinstance(rule, Rule):
            return self.score + rule * (self.score - self.second)
        return rule.confidence(self.signals)


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
    # With features: a logistic model's probability that the answer is right (Rule).
    features: list[str] = field(default_factory=list)
    coefficients: list[float] = field(default_factory=list)
    intercept: float = 0.0

    @property
    def rule(self) -> Rule:
        """The confidence rule this calibration's score is compared with."""
        return Rule(
            self.margin_weight, tuple(self.features), tuple(self.coefficients), self.intercept
        )

    def holds_for(self, version: str, model: str) -> bool:
        """Whether this calibration was made for that index version and embedder, with a rule
        this code can compute."""
        return (
            self.index_version == version
            and self.model == model
            and set(self.features) <= set(SIGNALS)
            and len(self.features) == len(self.coefficients)
        )


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


def point(threshold: float, scored: Sequence[Scored], rule: Rule | float = 0.0) -> Point:
    """What ``threshold`` does on ``scored`` questions (confidence by ``rule``)."""
    inside = [s.confidence(rule) >= threshold for s in scored if s.in_scope]
    right = [s.right for s in scored if s.in_scope]
    return Point(
        threshold=threshold,
        oos_recall=_share(s.confidence(rule) < threshold for s in scored if not s.in_scope),
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
