"""Choose the confidence rule a hand-over score is compared with, on development questions only.

Candidates: the best score plus 0, 0.5 or 1 x its lead over the runner-up (the old rule, nothing
fitted), and logistic models of "the answer is right" (in-scope questions the right entry
answers, against out-of-scope ones) over a few signal sets, each with two L2 strengths. Each is
scored by repeated stratified k-fold cross-validation on the development questions: in-scope
questions answered right when the out-of-scope questions' out-of-fold confidences set the
hand-over score for the target (averaged over the target and two points either side: at 95% of
150 out-of-scope questions the bar rests on the 8th highest alone). The simplest candidate
within ``SIMPLER_WITHIN`` of the best wins; a fitted one's hand-over score is then chosen on its
out-of-fold confidences (the questions it was fitted on sit too far from the bar).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from backends.retrieval import handover
from backends.retrieval.handover import Rule, Scored

LEAD_WEIGHTS = (0.0, 0.5, 1.0)
# Signal sets of the logistic candidates (``handover.SIGNALS``); sets naming a signal the
# questions lack (another language's index: none with one index) are skipped.
# Cheapest first: sets asking another index cost a query encode with its embedder.
SIGNAL_SETS: tuple[tuple[str, ...], ...] = (
    ("best", "lead"),
    ("best", "lead", "gap"),
    ("best", "lead", "gap", "words"),
    ("best", "lead", "overlap"),
    ("best", "lead", "gap", "words", "overlap"),
    ("best", "lead", "other_best", "other_agrees"),
    ("best", "lead", "overlap", "other_best", "other_agrees"),
    ("best", "lead", "gap", "words", "overlap", "other_best", "other_agrees"),
)
L2 = (10.0, 1.0)  # penalty on standardized coefficients, strongest (simplest) first
FOLDS, REPEATS, SEED = 5, 4, 12
MIN_EACH = 10  # fewer right answers or out-of-scope questions: the lead rule only
SIMPLER_WITHIN = 0.005  # a simpler rule wins unless beaten by more than half a point
BAND = (-0.02, 0.0, 0.02)  # recall targets around the target a candidate is scored at


@dataclass(frozen=True)
class Candidate:
    """A confidence rule to try: a lead weight, or a logistic model over ``features``."""

    margin_weight: float = 0.0
    features: tuple[str, ...] = ()
    l2: float = 0.0

    def label(self) -> str:
        """The candidate in a few words."""
        if not self.features:
            return f"best + {self.margin_weight:g} x lead"
        return f"logistic({', '.join(self.features)}; L2 {self.l2:g})"


@dataclass(frozen=True)
class Choice:
    """The chosen rule, its hand-over score, and every candidate's cross-validated figure."""

    rule: Rule
    threshold: float
    candidate: Candidate
    table: list[tuple[Candidate, float]]  # (candidate, mean out-of-fold answered right)


def candidates(
    scored: Sequence[Scored], signal_sets: Sequence[tuple[str, ...]] = SIGNAL_SETS
) -> list[Candidate]:
    """The candidates, simplest first; fitted ones only when there is enough to fit on."""
    out = [Candidate(margin_weight=w) for w in LEAD_WEIGHTS]
    right = sum(s.right for s in scored)
    outside = sum(not s.in_scope for s in scored)
    if min(right, outside) < MIN_EACH:
        return out
    names = set.intersection(*(set(s.signals) for s in scored))
    for features in signal_sets:
        if set(features) <= names:
            out += [Candidate(features=features, l2=l2) for l2 in L2]
    return out


def choose_rule(
    scored: Sequence[Scored], target: float, signal_sets: Sequence[tuple[str, ...]] = SIGNAL_SETS
) -> Choice:
    """The rule (and its hand-over score) answering most in-scope questions right out of fold."""
    table = []
    oof_outside: dict[Candidate, np.ndarray] = {}
    for cand in candidates(scored, signal_sets):
        value, outside = _cross_validate(cand, scored, target)
        table.append((cand, value))
        oof_outside[cand] = outside
    best = max(v for _, v in table)
    cand = next(c for c, v in table if v >= best - SIMPLER_WITHIN)
    rule = fit(cand, scored)
    # a fitted rule's bar comes from its out-of-fold confidences; a lead rule's are the same
    threshold = handover.choose_threshold(oof_outside[cand].tolist(), target)
    return Choice(rule, threshold, cand, table)


def fit(cand: Candidate, scored: Sequence[Scored]) -> Rule:
    """The candidate's rule fitted on ``scored`` (a lead rule has nothing to fit)."""
    if not cand.features:
        return Rule(margin_weight=cand.margin_weight)
    used = [s for s in scored if s.right or not s.in_scope]
    x = np.array([[s.signals[f] for f in cand.features] for s in used])
    y = np.array([1.0 if s.right else 0.0 for s in used])
    coef, intercept = logistic(x, y, cand.l2)
    return Rule(features=cand.features, coefficients=tuple(coef), intercept=intercept)


def logistic(x: np.ndarray, y: np.ndarray, l2: float) -> tuple[list[float], float]:
    """L2-penalized logistic regression by Newton's method on standardized columns; the
    coefficients returned apply to the raw columns."""
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-9
    a = np.hstack([np.ones((len(x), 1)), (x - mean) / scale])
    penalty = np.diag([0.0] + [l2] * x.shape[1])
    w = np.zeros(a.shape[1])
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-np.clip(a @ w, -50, 50)))
        grad = a.T @ (p - y) + penalty @ w
        hess = (a.T * (p * (1 - p))) @ a + penalty + 1e-9 * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-10:
            break
    coef = w[1:] / scale
    return [float(c) for c in coef], float(w[0] - coef @ mean)


def _cross_validate(
    cand: Candidate, scored: Sequence[Scored], target: float
) -> tuple[float, np.ndarray]:
    """Mean over repeats of in-scope answered right at the target, out of fold; and every
    out-of-scope question's out-of-fold confidences (all repeats)."""
    inside = np.array([s.in_scope for s in scored])
    right = np.array([s.right for s in scored])
    if not cand.features:
        conf = np.array([s.confidence(cand.margin_weight) for s in scored])
        return _answered_right(conf, inside, right, target), conf[~inside]
    values, outside = [], []
    for repeat in range(REPEATS):
        conf = np.zeros(len(scored))
        folds = _folds(inside, right, SEED + repeat)
        for k in range(FOLDS):
            train = [s for s, f in zip(scored, folds, strict=True) if f != k]
            rule = fit(cand, train)
            for i in np.flatnonzero(folds == k):
                conf[i] = scored[int(i)].confidence(rule)
        values.append(_answered_right(conf, inside, right, target))
        outside.append(conf[~inside])
    return float(np.mean(values)), np.concatenate(outside)


def _answered_right(
    conf: np.ndarray, inside: np.ndarray, right: np.ndarray, target: float
) -> float:
    """In-scope share answered right when the out-of-scope confidences set the bar, averaged
    over the recall targets of ``BAND`` around ``target``."""
    values = []
    for recall in {min(1.0, max(0.01, target + d)) for d in BAND}:
        threshold = handover.choose_threshold(conf[~inside].tolist(), recall)
        values.append(float(np.mean(right[inside] & (conf[inside] >= threshold))))
    return float(np.mean(values))


def _folds(inside: np.ndarray, right: np.ndarray, seed: int) -> np.ndarray:
    """A fold number per question, each stratum (out of scope, right, wrong) spread evenly."""
    rng = np.random.default_rng(seed)
    folds = np.zeros(len(inside), dtype=int)
    for stratum in (~inside, inside & right, inside & ~right):
        idx = rng.permutation(np.flatnonzero(stratum))
        folds[idx] = np.arange(len(idx)) % FOLDS
    return folds
