"""Break-even arithmetic with known numbers: training cost, saving per answer, pay-off volume."""

from __future__ import annotations

import math

import pytest

from chatbot.evaluation import breakeven
from chatbot.evaluation.breakeven import TrainingCost

PRICES = {"gpt-4o-mini": (0.15, 0.60), "smollm2": (0.0, 0.0), "ft:gpt-4o-mini": (0.30, 1.20)}


def stat(value: float | None) -> dict:
    return {"value": value, "lo": value, "hi": value, "n": 1}


def tokens(prompt: float | None, completion: float | None) -> dict:
    return {"input_tokens": stat(prompt), "output_tokens": stat(completion)}


def cost(job=None, given=None) -> TrainingCost:
    return breakeven.training_cost(
        job, given_usd=given, price_per_million_tokens=3.0, cpu_hour_usd=0.05
    )


def test_remote_job_costs_its_billed_tokens_at_the_training_price():
    job = {"provider": "openai", "trained_tokens": 2_000_000, "hyperparameters": {"epochs": 3}}
    found = cost(job)
    assert found.usd == pytest.approx(6.0)
    assert "2,000,000 billed training tokens, 3 epoch(s)" in found.basis


def test_remote_job_with_a_billed_cost_uses_it():
    assert cost({"provider": "openai", "cost_usd": 4.2, "trained_tokens": 1}).usd == 4.2


def test_local_job_costs_its_cpu_hours():
    found = cost({"provider": "local", "train_seconds": 1800, "trained_tokens": 9000})
    assert found.usd == pytest.approx(0.025)
    assert "0.50 CPU hours" in found.basis and "AFINA_EVAL_CPU_HOUR_USD" in found.basis


def test_given_cost_wins_and_no_job_says_how_to_give_one():
    assert cost({"provider": "local", "train_seconds": 1}, given=7.5).usd == 7.5
    unknown = cost(None)
    assert unknown.usd is None and "--training-cost" in unknown.basis


def test_break_even_answers_and_monthly_volume_for_a_year():
    # few-shot: 1,200 prompt + 100 completion tokens; fine-tuned: 200 + 100; at gpt-4o-mini
    ft_price, fs_price, basis = breakeven.answer_prices(PRICES, "smollm2", "smollm2", "gpt-4o-mini")
    assert ft_price == fs_price == (0.15, 0.60) and "gpt-4o-mini" in basis
    fs = breakeven.per_answer_usd(tokens(1200, 100), fs_price)
    ft = breakeven.per_answer_usd(tokens(200, 100), ft_price)
    assert fs == pytest.approx(0.00024) and ft == pytest.approx(0.00009)
    result = breakeven.break_even(
        finetuned="ft", fewshot="fs", ft_usd=ft, fs_usd=fs, ft_tokens=200, fs_tokens=1200,
        price_basis=basis, cost=TrainingCost(6.0, "given"),
    )  # fmt: skip
    assert result.prompt_tokens_saved == 1000
    assert result.usd_saved_per_answer == pytest.approx(0.00015)
    assert result.answers_to_break_even == pytest.approx(40_000)
    assert result.monthly_volume_for_a_year == pytest.approx(40_000 / 12)
    assert breakeven.months_to_pay_off(6.0, 0.00015, 10_000) == pytest.approx(4.0)


def test_a_fine_tune_that_saves_nothing_never_pays_off():
    result = breakeven.break_even(
        finetuned="ft", fewshot="fs", ft_usd=0.0003, fs_usd=0.0002, ft_tokens=300, fs_tokens=200,
        price_basis="", cost=TrainingCost(6.0, "given"),
    )  # fmt: skip
    assert result.answers_to_break_even is None
    assert math.isinf(breakeven.months_to_pay_off(6.0, -0.0001, 10_000))


def test_own_prices_are_used_when_both_models_have_one():
    ft, fs, basis = breakeven.answer_prices(PRICES, "ft:gpt-4o-mini:shop::x", "gpt-4o-mini", "")
    assert ft == (0.30, 1.20) and fs == (0.15, 0.60) and "own price" in basis
    none = breakeven.answer_prices(PRICES, "smollm2", "smollm2", "")
    assert none[0] is None and "AFINA_EVAL_PRICE_MODEL" in none[2]


def test_fine_tunes_pair_with_the_few_shot_on_the_same_base():
    kinds = {"faq": "retrieval", "fs-a": "fewshot", "fs-b": "fewshot", "ft": "finetuned"}
    models = {"fs-a": "gpt-4o", "fs-b": "gpt-4o-mini", "ft": "gpt-4o-mini"}
    assert breakeven.pairs(kinds, models) == [("ft", "fs-b")]
    assert breakeven.pairs({"faq": "retrieval", "ft": "finetuned"}, {}) == []
