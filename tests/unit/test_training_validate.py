"""The validator: one crafted bad file per rule, valid files always pass, tokens and epochs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatbot.training.report import build_report, default_epochs, percentiles, render_text
from chatbot.training.tokens import count_chat
from chatbot.training.validate import RULES, Validator


def example(i: int, answer: str | None = None) -> dict:
    """A valid chat example."""
    return {
        "messages": [
            {"role": "system", "content": "You are a support bot."},
            {"role": "user", "content": f"question number {i}"},
            {"role": "assistant", "content": answer or f"answer number {i}"},
        ]
    }


def write(path: Path, lines: list) -> Path:
    path.write_text(
        "".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines),
        encoding="utf-8",
    )
    return path


def msgs(*pairs: tuple) -> dict:
    return {"messages": [dict(zip(("role", "content"), p, strict=False)) for p in pairs]}


LONG = "word " * 400
# rule -> the one bad line added to 50 good ones (None: the rule is about the whole file)
BAD_LINES: dict[str, object] = {
    "invalid_json": '{"messages": [',
    "missing_messages": {"messages": []},
    "unknown_key": {
        "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}],
        "extra": 1,
    },
    "unknown_role": msgs(("robot", "hi"), ("user", "hi"), ("assistant", "yo")),
    "empty_content": msgs(("user", "   "), ("assistant", "yo")),
    "no_trained_assistant": {
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "yo", "weight": 0},
        ]
    },
    "bad_weight": {
        "messages": [
            {"role": "user", "content": "hi", "weight": 1},
            {"role": "assistant", "content": "yo", "weight": 2},
        ]
    },
    "bad_preference": {
        "input": {"messages": [{"role": "user", "content": "hi"}]},
        "preferred_output": [{"role": "assistant", "content": "a"}],
        "non_preferred_output": [],
    },
    "too_long": msgs(("system", "s"), ("user", "hi"), ("assistant", LONG)),
    "truncated": msgs(("system", "s"), ("user", "hi"), ("assistant", "yo"), ("user", LONG)),
    "missing_system": msgs(("user", "hi there"), ("assistant", "hello")),
    "missing_user": msgs(("system", "s"), ("assistant", "hello, how can I help?")),
    "duplicate_target": example(3),
}


@pytest.mark.parametrize("rule", sorted(BAD_LINES))
def test_each_rule_has_a_crafted_bad_file_that_trips_it(rule: str, tmp_path: Path):
    lines = [example(i) for i in range(50)] + [BAD_LINES[rule]]
    result = Validator(max_tokens=256).validate(write(tmp_path / f"{rule}.jsonl", lines))
    assert result.counts[rule] >= 1, result.counts
    assert result.lines[rule] == [51]
    severity = RULES[rule][0]
    assert (result.errors > 0) == (severity == "error")


@pytest.mark.parametrize(("count", "rule"), [(5, "too_few_examples"), (20, "few_examples")])
def test_small_training_files_are_flagged(count: int, rule: str, tmp_path: Path):
    result = Validator(256).validate(
        write(tmp_path / "t.jsonl", [example(i) for i in range(count)])
    )
    assert set(result.counts) == {rule}


def test_validation_prompts_seen_in_training_are_overlap_errors(tmp_path: Path):
    validator = Validator(256)
    validator.validate(write(tmp_path / "train.jsonl", [example(i) for i in range(50)]))
    held = validator.validate(
        write(tmp_path / "validation.jsonl", [example(100), example(7, "other")]), "validation"
    )
    assert held.counts == {"split_overlap": 1} and held.lines["split_overlap"] == [2]
    assert "too_few_examples" not in held.counts  # minimums apply to training files only


def test_preference_file_passes(tmp_path: Path):
    line = {
        "input": {
            "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}]
        },
        "preferred_output": [{"role": "assistant", "content": "good"}],
        "non_preferred_output": [{"role": "assistant", "content": "bad"}],
    }
    pairs = [json.loads(json.dumps(line).replace('"q"', f'"q{i}"')) for i in range(50)]
    result = Validator(256).validate(write(tmp_path / "dpo.jsonl", pairs))
    assert result.errors == 0 and result.warnings == 0


TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=40
).filter(str.strip)


@st.composite
def valid_examples(draw) -> dict:
    turns = draw(st.integers(min_value=1, max_value=3))
    messages = [{"role": "system", "content": draw(TEXT)}] if draw(st.booleans()) else []
    for i in range(turns):
        messages.append({"role": "user", "content": draw(TEXT)})
        answer = {"role": "assistant", "content": draw(TEXT)}
        if i < turns - 1 and draw(st.booleans()):
            answer["weight"] = draw(st.sampled_from([0, 1]))
        messages.append(answer)
    return {"messages": messages}


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(valid_examples(), min_size=10, max_size=60))
def test_valid_files_always_pass(tmp_path: Path, examples: list[dict]):
    result = Validator(65_536).validate(write(tmp_path / "valid.jsonl", examples))
    assert result.errors == 0, result.counts
    assert result.examples == len(examples)
    assert set(result.counts) <= {"missing_system", "few_examples", "duplicate_target"}


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(JSON | st.fixed_dictionaries({"messages": JSON}), min_size=1, max_size=5))
def test_any_json_is_reported_never_crashes(tmp_path: Path, lines: list):
    result = Validator(256).validate(write(tmp_path / "junk.jsonl", [json.dumps(x) for x in lines]))
    assert result.errors > 0


def test_tokens_follow_openais_chat_accounting():
    # 3 per message + role + content, plus 3 to prime the reply; "user" and "hello world"
    # are 1 and 2 o200k tokens.
    assert count_chat([{"role": "user", "content": "hello world"}]) == 3 + 3 + 1 + 2


@pytest.mark.parametrize(
    ("examples", "epochs"), [(1, 25), (10, 10), (30, 3), (34, 3), (5000, 3), (9000, 2), (40_000, 1)]
)
def test_default_epochs_follow_openais_rule(examples: int, epochs: int):
    assert default_epochs(examples) == epochs


def test_report_prices_billed_tokens_times_epochs(tmp_path: Path):
    validator = Validator(256)
    result = validator.validate(write(tmp_path / "t.jsonl", [example(i) for i in range(100)]))
    report = build_report([result], model="m", max_tokens=256, price_per_million=2.0)
    training = report["training"]
    assert training["default_epochs"] == 3
    assert training["billed_tokens"] == 3 * sum(result.tokens)
    assert training["estimated_cost_usd"] == round(training["billed_tokens"] * 2 / 1e6, 4)
    assert percentiles([1, 2, 3, 4, 5]) == {"p5": 1, "p50": 3, "p95": 5}
    assert "will be accepted" in render_text(report)
