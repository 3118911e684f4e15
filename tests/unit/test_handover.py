"""Hand-over calibration arithmetic: the chosen score hands over the target share of
out-of-scope questions, a point says what a score does to in-scope ones, and a fitted
confidence rule is chosen only when it answers more in-scope questions right."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from backends.retrieval import handover
from backends.retrieval.handover import Calibration, Rule, Scored
from chatbot.knowledge.calibrate import signal_sets
from chatbot.knowledge.handover_rule import candidates, choose_rule
from chatbot.settings import Settings


def test_chosen_score_hands_over_at_least_the_target_share():
    oos = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95]
    for target in (0.5, 0.8, 0.9, 0.95, 1.0):
        t = handover.choose_threshold(oos, target)
        handed = sum(s < t for s in oos) / len(oos)
        assert handed >= target
        # the lowest such score: one step lower hands over less than the target
        assert sum(s < t - 2e-6 for s in oos) / len(oos) < target


def test_no_out_of_scope_questions_is_refused():
    with pytest.raises(ValueError, match="out-of-scope questions"):
        handover.choose_threshold([], 0.95)


def test_point_counts_right_answers_above_the_score_only():
    scored = [
        Scored(0.9, right=True, in_scope=True, second=0.5),
        Scored(0.6, right=False, in_scope=True, second=0.55),  # wrong entry, answered anyway
        Scored(0.4, right=True, in_scope=True, second=0.3),  # right, but handed over
        Scored(0.3, right=False, in_scope=False, second=0.29),
        Scored(0.7, right=False, in_scope=False, second=0.69),
    ]
    p = handover.point(0.5, scored)
    assert (p.oos_recall, p.answered_right, p.handed_over) == (0.5, 1 / 3, 1 / 3)
    # the runner-up's lead: the clear in-scope answer rises, the close out-of-scope one does not
    lead = handover.point(0.75, scored, 1.0)
    assert lead.oos_recall == 1.0 and lead.answered_right == 1 / 3


def test_calibration_round_trips_and_holds_only_for_its_index(tmp_path: Path):
    cal = Calibration(0.61, 0.95, "abc123", "model-x", {"in_scope": 3}, margin_weight=0.5)
    handover.write(tmp_path, cal)
    assert handover.read(tmp_path) == cal
    assert cal.holds_for("abc123", "model-x")
    assert not cal.holds_for("def456", "model-x") and not cal.holds_for("abc123", "model-y")
    (tmp_path / handover.FILE).write_text("{not json")
    assert handover.read(tmp_path) is None  # a damaged file: the configured score is used


def _questions(seed: int, n: int = 60) -> list[Scored]:
    """In-scope questions answered right and out-of-scope ones with the same best scores and
    leads: only whether another index's best entry agrees (and its score) tells them apart."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(2 * n):
        inside = i % 2 == 0
        best = float(rng.uniform(0.5, 0.8))
        other = float(rng.uniform(0.6, 0.8) if inside else rng.uniform(0.3, 0.5))
        extra = {"other_best": other, "other_agrees": float(inside), "gap": 0.1, "words": 2.0}
        out.append(Scored(best, inside, inside, best - float(rng.uniform(0, 0.1)), extra))
    return out


def test_fitted_rule_hands_over_what_the_lead_rule_cannot_tell_apart():
    dev, fresh = _questions(1), _questions(2)
    lead = choose_rule(dev, 0.95, signal_sets=())  # the old rule: best score + w x lead
    fitted = choose_rule(dev, 0.95)
    assert not lead.rule.features and fitted.rule.features
    assert "other_agrees" in fitted.rule.features
    old = handover.point(lead.threshold, fresh, lead.rule)
    new = handover.point(fitted.threshold, fresh, fitted.rule)
    assert old.answered_right < 0.3  # handing over 95% of out-of-scope costs most answers
    assert new.oos_recall >= 0.9 and new.answered_right >= 0.9


def test_lead_rule_is_kept_when_a_fitted_one_is_no_better():
    rng = np.random.default_rng(3)
    dev = [
        Scored(float(rng.uniform(0.6, 0.9)), True, True, 0.5, {"other_best": 0.5})
        for _ in range(40)
    ] + [
        Scored(float(rng.uniform(0.3, 0.5)), False, False, 0.2, {"other_best": 0.5})
        for _ in range(40)
    ]
    choice = choose_rule(dev, 0.95)
    assert choice.rule == Rule(margin_weight=0.0)
    assert handover.point(choice.threshold, dev, choice.rule).answered_right == 1.0


def test_too_few_questions_to_fit_keep_the_lead_rule():
    dev = _questions(4, n=6)
    assert all(not c.features for c in candidates(dev))
    assert not choose_rule(dev, 0.95).rule.features


def test_logistic_rule_round_trips_and_unknown_signals_are_ignored(tmp_path: Path):
    cal = Calibration(
        0.4,
        0.95,
        "abc123",
        "model-x",
        {},
        features=["best", "lead"],
        coefficients=[10.0, 5.0],
        intercept=-6.0,
    )
    handover.write(tmp_path, cal)
    stored = handover.read(tmp_path)
    assert stored == cal and stored.holds_for("abc123", "model-x")
    signals = handover.hit_signals([0.7, 0.5, 0.4], "where is my parcel")
    assert stored.rule.confidence(signals) == pytest.approx(1 / (1 + math.exp(-2.0)))
    # a rule naming a signal this code does not compute (a newer release's): not used
    newer = Calibration(0.4, 0.95, "abc123", "model-x", {}, features=["mystery"], coefficients=[1])
    assert not newer.holds_for("abc123", "model-x")


def test_cross_check_off_leaves_the_other_index_out(tmp_path: Path):
    on = signal_sets(Settings(home=tmp_path))
    off = signal_sets(Settings(home=tmp_path, retrieval={"handover_cross_check": False}))
    assert any("other_agrees" in s for s in on)
    assert off and not any(set(s) & set(handover.SEARCH_SIGNALS) for s in off)
