"""Calibrate each language's hand-over score on labelled questions and store it with its index.

Questions are JSONL rows ``{"text", "locale", "entry_id"}`` (in scope) or without
``entry_id`` (or with ``"in_scope": false``: no entry answers it). Per language index, the
hand-over score is the lowest that hands over the target share of the out-of-scope questions
(``AFINA_RETRIEVAL_HANDOVER_OOS_RECALL``); what it costs is the share of in-scope questions
still answered by the right entry. The calibration is written into the index folder with the
index version it holds for, and the question files it came from, so a rebuild calibrates again.
What is compared with the score is chosen on the same questions (``handover_rule``): the best
entry's score plus a share of its lead over the runner-up, or a small logistic model over a few
signals of the question, whichever answers most in-scope questions right out of fold.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from backends.retrieval import handover
from backends.retrieval.backend import CANDIDATES, RetrievalBackend, choose
from backends.retrieval.handover import Calibration, Point, Rule, Scored
from backends.retrieval.index import KnowledgeIndex
from chatbot.errors import InputError
from chatbot.knowledge.handover_rule import SIGNAL_SETS, Candidate, choose_rule
from chatbot.knowledge.ingest import IngestReport
from chatbot.settings import Settings
from chatbot.training.lineage import sha256_file

CURVE_STEP = 0.02  # spacing of the printed curve's thresholds


@dataclass(frozen=True)
class Question:
    """A labelled question: ``entry_id`` None means out of scope."""

    text: str
    locale: str
    entry_id: str | None


@dataclass
class GroupReport:
    """One language index's calibration and its figures."""

    group: str
    threshold: float
    configured: float  # the configured hand-over score, for comparison
    dev: Point
    dev_configured: Point
    dev_counts: tuple[int, int]  # (in scope, out of scope)
    test: Point | None = None
    test_configured: Point | None = None
    test_counts: tuple[int, int] = (0, 0)
    curve: list[tuple[Point, Point | None]] = field(default_factory=list)  # (dev, test)
    rule: Rule = field(default_factory=Rule)
    # every candidate rule with its cross-validated in-scope answered right at the target
    candidates: list[tuple[Candidate, float]] = field(default_factory=list)
    test_at_target: Point | None = None  # the test split's own score for the target (the curve)

    @property
    def margin_weight(self) -> float:
        """The lead weight of a lead rule (0 for a logistic one)."""
        return self.rule.margin_weight


def load_questions(paths: Iterable[Path]) -> list[Question]:
    """Questions from JSONL files; a clear error naming the file and line when one is wrong."""
    out = []
    for path in paths:
        with Path(path).open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    raw = json.loads(line)
                    text, locale = str(raw["text"]), str(raw["locale"])
                except (ValueError, KeyError, TypeError) as exc:
                    raise InputError(
                        f"{path}:{number}: expected a JSON object with 'text' and 'locale' "
                        f"(and 'entry_id' for an in-scope question): {exc}"
                    ) from None
                entry = raw.get("entry_id") if raw.get("in_scope", True) else None
                out.append(Question(text, locale, str(entry) if entry else None))
    return out


def split(
    questions: Sequence[Question], test_fraction: float, seed: int
) -> tuple[list[Question], list[Question]]:
    """(dev, test) by a fixed seed, the same share of each language's in- and out-of-scope."""
    rng = random.Random(seed)
    dev: list[Question] = []
    test: list[Question] = []
    strata: dict[tuple[str, bool], list[Question]] = {}
    for q in questions:
        strata.setdefault((q.locale, q.entry_id is None), []).append(q)
    for _, items in sorted(strata.items()):
        items = list(items)
        rng.shuffle(items)
        cut = round(len(items) * test_fraction)
        test += items[:cut]
        dev += items[cut:]
    return dev, test


def score(backend: RetrievalBackend, questions: Sequence[Question]) -> dict[str, list[Scored]]:
    """Each question scored in its language's index, by index (language group)."""
    out: dict[str, list[Scored]] = {}
    depth = max(backend.top_k, CANDIDATES)
    for q in questions:
        group, _, hits = backend.search(q.text, q.locale, top_k=depth)
        best = choose(hits, -1.0)  # the entry that answers when the score clears the bar
        right = (
            q.entry_id is not None
            and best is not None
            and best.entry.id == q.entry_id
            and best.entry.locale in (None, q.locale)
        )
        top = hits[0].score if hits else -1.0
        second = hits[1].score if len(hits) > 1 else top
        signals = backend.signals(group, hits, q.text) if hits else {}
        out.setdefault(group, []).append(
            Scored(top, right, q.entry_id is not None, second, signals)
        )
    return out


def calibrate(
    backend: RetrievalBackend,
    dev: Sequence[Question],
    test: Sequence[Question],
    target: float,
    signal_sets: Sequence[tuple[str, ...]] = SIGNAL_SETS,
) -> list[GroupReport]:
    """Choose each index's confidence rule and hand-over score on ``dev`` (``signal_sets``: the
    logistic candidates); figures on ``dev`` and ``test``."""
    on_dev, on_test = score(backend, dev), score(backend, test)
    return calibrate_scored(on_dev, on_test, target, backend.threshold, signal_sets)


def calibrate_scored(
    on_dev: dict[str, list[Scored]],
    on_test: dict[str, list[Scored]],
    target: float,
    configured_for: Callable[[str], float],
    signal_sets: Sequence[tuple[str, ...]] = SIGNAL_SETS,
) -> list[GroupReport]:
    """``calibrate`` on questions already scored (``signal_sets``: the logistic candidates)."""
    reports = []
    for group, scored in sorted(on_dev.items()):
        if all(s.in_scope for s in scored):
            continue
        choice = choose_rule(scored, target, signal_sets)
        rule, threshold = choice.rule, choice.threshold
        configured = configured_for(group)
        tested = on_test.get(group, [])
        report = GroupReport(
            group=group,
            threshold=threshold,
            configured=configured,
            dev=handover.point(threshold, scored, rule),
            dev_configured=handover.point(configured, scored),
            dev_counts=_counts(scored),
            rule=rule,
            candidates=choice.table,
        )
        if tested:
            report.test = handover.point(threshold, tested, rule)
            report.test_configured = handover.point(configured, tested)
            report.test_counts = _counts(tested)
            outside = [s.confidence(rule) for s in tested if not s.in_scope]
            if outside:
                own = handover.choose_threshold(outside, target)
                report.test_at_target = handover.point(own, tested, rule)
        report.curve = [
            (
                handover.point(t, scored, rule),
                handover.point(t, tested, rule) if tested else None,
            )
            for t in _grid(scored, rule)
        ]
        reports.append(report)
    return reports


def _counts(scored: Sequence[Scored]) -> tuple[int, int]:
    """(in scope, out of scope) question counts."""
    inside = sum(s.in_scope for s in scored)
    return inside, len(scored) - inside


def _grid(scored: Sequence[Scored], rule: Rule) -> list[float]:
    """Thresholds spanning the confidences, every ``CURVE_STEP``."""
    values = [s.confidence(rule) for s in scored]
    low = np.floor(min(values) / CURVE_STEP) * CURVE_STEP
    high = np.ceil(max(values) / CURVE_STEP) * CURVE_STEP
    return [round(float(t), 4) for t in np.arange(low, high + 1e-9, CURVE_STEP)]


def calibrate_configured(
    settings: Settings,
    files: Sequence[Path],
    *,
    target: float | None = None,
    test_fraction: float = 0.0,
    seed: int = 0,
    language_models: dict[str, str] | None = None,
) -> list[GroupReport]:
    """Calibrate the configured indexes on ``files`` and store each index's hand-over score
    (``language_models``: the embedders the indexes were just built with, when not yet active)."""
    from chatbot.backend_pool import kind_defaults

    questions = load_questions(files)
    if not any(q.entry_id is None for q in questions):
        raise InputError(
            "calibrating hand-overs needs out-of-scope questions: rows without 'entry_id' "
            '(or with "in_scope": false) in the question files'
        )
    target = settings.retrieval.handover_oos_recall if target is None else target
    config = {**kind_defaults(settings, "retrieval"), "calibrated_handover": False}
    if language_models is not None:
        config["language_models"] = language_models
    backend = RetrievalBackend.from_config(config)
    dev, test = split(questions, test_fraction, seed)
    reports = calibrate(backend, dev, test, target, signal_sets(settings))
    sources = [{"path": str(Path(f).resolve()), "sha256": sha256_file(Path(f))} for f in files]
    for report in reports:
        index = backend.load().indexes[report.group]
        _store(index, settings.index_dir / report.group, report, target, sources)
    return reports


def signal_sets(settings: Settings) -> tuple[tuple[str, ...], ...]:
    """The logistic candidates' signal sets the settings allow (no other index's opinion
    without ``handover_cross_check``)."""
    if settings.retrieval.handover_cross_check:
        return SIGNAL_SETS
    return tuple(s for s in SIGNAL_SETS if not set(s) & set(handover.SEARCH_SIGNALS))


def _store(
    index: KnowledgeIndex, folder: Path, report: GroupReport, target: float, sources: list
) -> None:
    """Write one index's calibration next to it."""
    inside, outside = report.dev_counts
    calibration = Calibration(
        threshold=report.threshold,
        target_oos_recall=target,
        index_version=index.meta.version,
        model=index.meta.model,
        margin_weight=report.rule.margin_weight,
        features=list(report.rule.features),
        coefficients=list(report.rule.coefficients),
        intercept=report.rule.intercept,
        dev={
            "in_scope": inside,
            "out_of_scope": outside,
            "oos_recall": report.dev.oos_recall,
            "answered_right": report.dev.answered_right,
            "handed_over": report.dev.handed_over,
        },
        sources=sources,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    handover.write(folder, calibration)


def stored_sources(index_dir: Path) -> list[Path]:
    """The question files the current indexes were calibrated on (that still exist)."""
    found: dict[str, None] = {}
    root = Path(index_dir)
    for sub in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        calibration = handover.read(sub)
        for source in calibration.sources if calibration else []:
            if Path(source["path"]).exists():
                found[source["path"]] = None
    return [Path(p) for p in found]


def recalibrate(
    settings: Settings,
    reports: list[IngestReport],
    sources: Sequence[Path],
    language_models: dict[str, str],
) -> list[IngestReport]:
    """After a rebuild, calibrate again on the question files the old indexes were calibrated
    on (none: nothing to do); the reports get each index's new hand-over score."""
    root = Path(settings.index_dir)
    stale = [r for r in reports if not _holds(root / r.group, r.version, r.model)]
    if not sources or not stale:
        return reports
    done = calibrate_configured(settings, sources, language_models=language_models)
    scores = {g.group: g.threshold for g in done}
    return [replace(r, handover=scores.get(r.group)) for r in reports]


def _holds(folder: Path, version: str, model: str) -> bool:
    """Whether the index in ``folder`` has a calibration made for ``version`` and ``model``."""
    calibration = handover.read(folder)
    return calibration is not None and calibration.holds_for(version, model)
