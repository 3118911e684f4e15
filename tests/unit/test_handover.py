"""Hand-over calibration arithmetic: the chosen score hands over the target share of
out-of-scope questions, and a point says what a score does to in-scope ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from backends.retrieval import handover
from backends.retrieval.handover import Calibration, Scored


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
    lead = handover.point(0.75, scored, weight=1.0)
    assert lead.oos_recall == 1.0 and lead.answered_right == 1 / 3


def test_calibration_round_trips_and_holds_only_for_its_index(tmp_path: Path):
    cal = Calibration(0.61, 0.95, "abc123", "model-x", {"in_scope": 3}, margin_weight=0.5)
    handover.write(tmp_path, cal)
    assert handover.read(tmp_path) == cal
    assert cal.holds_for("abc123", "model-x")
    assert not cal.holds_for("def456", "model-x") and not cal.holds_for("abc123", "model-y")
    (tmp_path / handover.FILE).write_text("{not json")
    assert handover.read(tmp_path) is None  # a damaged file: the configured score is used
