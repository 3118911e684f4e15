"""Evaluation scoring and inputs: key facts (en + es), right entry, bootstrap CIs, question sets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chatbot.errors import InputError
from chatbot.evaluation import metrics
from chatbot.evaluation.judge import parse_grade
from chatbot.evaluation.questions import answers_by_entry, digest, load_questions, sample
from chatbot.evaluation.scoring import fact_share, key_facts, right_entry
from chatbot.knowledge.loaders import load_path
from tests.conftest import SMALL_KB

SHIPPING_EN = "Shipping is free on orders over 50 EUR; otherwise it costs 4.95 EUR."
SHIPPING_ES = "El envío es gratis a partir de 50 EUR; si no, cuesta 4,95 EUR."


def test_key_facts_are_prices_days_names_and_addresses():
    facts = key_facts(
        "Write to help@nubo.example or call us Monday to Friday; refunds take 5 days via PayPal."
    )
    assert {"s:help@nubo.example", "w:monday", "w:friday", "n:5", "w:paypal"} <= facts


def test_an_answer_with_the_price_in_either_decimal_style_carries_the_facts():
    assert fact_share(SHIPPING_EN, "Orders over 50 EUR ship free, else 4,95 EUR.") == 1.0
    assert fact_share(SHIPPING_ES, "Cuesta 4.95 EUR (gratis desde 50 EUR)") == 1.0
    assert fact_share(SHIPPING_EN, "Shipping costs 5.95 EUR.") == 0.0
    assert fact_share(SHIPPING_EN, "It costs 4.95 EUR.") == 0.5
    assert fact_share("Thanks for asking!", "anything") is None


def test_weekdays_match_in_spanish_without_accents():
    assert fact_share("Abrimos el sábado.", "abrimos el sabado por la mañana") == 1.0


def test_right_entry_needs_the_first_source_and_no_hand_over():
    sources = [{"id": "shipping-cost"}, {"id": "reset-password"}]
    assert right_entry("shipping-cost", sources, handoff=False) is True
    assert right_entry("reset-password", sources, handoff=False) is False
    assert right_entry("shipping-cost", sources, handoff=True) is False
    assert right_entry("shipping-cost", [], handoff=False) is None  # a plain LLM cites nothing
    assert right_entry(None, sources, handoff=False) is None


def test_bootstrap_is_seeded_and_brackets_the_mean():
    values = [1, 0, 1, 1, 0, 1, 1, 1, 0, 1]
    first = metrics.bootstrap(values, resamples=500, seed=3)
    assert first == metrics.bootstrap(values, resamples=500, seed=3)
    assert first["lo"] <= first["value"] == 0.7 <= first["hi"] and first["n"] == 10
    assert metrics.bootstrap([1, 1, 1], resamples=200)["lo"] == 1.0
    assert metrics.bootstrap([], resamples=200)["value"] is None


def test_percentiles_of_latency():
    stats = metrics.backend_metrics(
        [{"in_scope": True, "latency_ms": float(v), "ttft_ms": 1.0} for v in range(1, 101)],
        resamples=200,
        seed=0,
    )
    assert stats["latency_p50"]["value"] == pytest.approx(50.5)
    assert stats["latency_p95"]["value"] == pytest.approx(95.05)


def test_judge_grade_is_the_first_digit_from_one_to_five():
    assert parse_grade("4") == 0.75 and parse_grade("Grade: 1/5") == 0.0
    assert parse_grade("no idea") is None


def write(tmp_path: Path, rows: list[dict], name: str = "q.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def small_answers() -> dict:
    return answers_by_entry(load_path(SMALL_KB))


def test_questions_get_the_entry_answer_in_their_language(tmp_path: Path):
    path = write(tmp_path, [
        {"text": "cuanto cuesta el envio", "locale": "es", "entry_id": "shipping-cost"},
        {"text": "tell me a joke", "locale": "en"},
    ])  # fmt: skip
    spanish, joke = load_questions([path], small_answers(), "kb_small")
    assert spanish.turns[0].reference == SHIPPING_ES and spanish.in_scope
    assert not joke.in_scope and joke.turns[0].reference is None and joke.key == "q:2"


def test_labels_naming_no_entry_are_refused_with_the_fix(tmp_path: Path):
    path = write(tmp_path, [{"text": "hi", "locale": "en", "entry_id": "no-such-entry"}])
    with pytest.raises(InputError, match=r"no-such-entry.*AFINA_RETRIEVAL_KB_PATH"):
        load_questions([path], small_answers(), "kb_small")


def test_empty_or_malformed_question_files_are_refused(tmp_path: Path):
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(InputError, match="no questions"):
        load_questions([tmp_path / "empty.jsonl"], {}, "kb")
    (tmp_path / "bad.jsonl").write_text('{"locale": "en"}\n')
    with pytest.raises(InputError, match=r"bad\.jsonl:1"):
        load_questions([tmp_path / "bad.jsonl"], {}, "kb")
    with pytest.raises(InputError, match="no such question file"):
        load_questions([tmp_path / "missing.jsonl"], {}, "kb")


def test_seeded_subset_keeps_in_and_out_of_scope_shares(tmp_path: Path):
    rows = [{"text": f"q{i}", "entry_id": "shipping-cost"} for i in range(30)]
    rows += [{"text": f"off{i}"} for i in range(10)]
    items = load_questions([write(tmp_path, rows)], small_answers(), "kb_small")
    subset = sample(items, 8, seed=1)
    assert len(subset) == 8 and sum(not i.in_scope for i in subset) == 2
    assert digest(subset) == digest(sample(items, 8, seed=1)) != digest(sample(items, 8, seed=2))
