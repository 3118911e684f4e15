"""Examples from stored chats: corrections, weights, system prompts, preference pairs, splits."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from chatbot.db.training_queries import StoredConversation, StoredMessage
from chatbot.errors import InputError
from chatbot.training.examples import ExampleOptions, build_examples
from chatbot.training.filters import ExportFilters, keep_conversation
from chatbot.training.split import ExactDuplicates, NearDuplicates, SplitPlan, assign

SYSTEM = "Fallback system."


def msg(i: int, role: str, content: str, **kw) -> StoredMessage:
    fields = {
        "backend_name": "faq",
        "error": None,
        "details": None,
        "rating": 0,
        "correction": None,
    }
    return StoredMessage(f"m{i}", role, content, **{**fields, **kw})


def chat(*messages: StoredMessage, pinned: str | None = None) -> StoredConversation:
    return StoredConversation("c1", datetime(2026, 1, 1, tzinfo=UTC), "en", pinned, messages)


def build(conversation, filters=None, **options) -> list[dict]:
    opts = ExampleOptions(system_prompt=SYSTEM, **options)
    return build_examples(conversation, filters or ExportFilters(), opts)


TWO_TURNS = chat(
    msg(0, "user", "q1"),
    msg(1, "assistant", "a1", rating=-1),
    msg(2, "user", "q2"),
    msg(3, "assistant", "a2", rating=1, details={"system_prompt": "Backend system."}),
)


def test_downvoted_turn_is_context_with_weight_zero_and_system_comes_from_provenance():
    [example] = build(TWO_TURNS, ExportFilters(rating="any"))
    assert example["messages"] == [
        {"role": "system", "content": "Backend system."},
        {"role": "user", "content": "q1"},
        {"role": "assistant", "content": "a1", "weight": 0},
        {"role": "user", "content": "q2"},
        {"role": "assistant", "content": "a2"},
    ]


def test_unapproved_turns_can_drop_the_example_instead():
    assert build(TWO_TURNS, ExportFilters(rating="any"), drop_unapproved=True) == []


def test_not_negative_rating_leaves_out_chats_with_an_uncorrected_downvote():
    assert keep_conversation(TWO_TURNS, ExportFilters()) == "downvoted"
    assert keep_conversation(TWO_TURNS, ExportFilters(rating="any")) is None
    assert keep_conversation(TWO_TURNS, ExportFilters(rating="any", min_turns=3)) == "fewer_turns"


def test_correction_replaces_the_answer_and_makes_it_a_target():
    conversation = chat(
        msg(0, "user", "q"), msg(1, "assistant", "wrong", rating=-1, correction="right")
    )
    [example] = build(conversation, ExportFilters(rating="positive"))
    assert example["messages"][-1] == {"role": "assistant", "content": "right"}
    assert example["messages"][0] == {"role": "system", "content": SYSTEM}


def test_positive_rating_trains_only_on_upvoted_answers_and_trims_the_tail():
    conversation = chat(
        msg(0, "user", "q1"), msg(1, "assistant", "a1", rating=1), msg(2, "user", "q2"),
        msg(3, "assistant", "a2"),
    )  # fmt: skip
    [example] = build(conversation, ExportFilters(rating="positive"))
    assert [m["content"] for m in example["messages"]] == [SYSTEM, "q1", "a1"]
    assert (
        build(chat(msg(0, "user", "q"), msg(1, "assistant", "a")), ExportFilters(rating="positive"))
        == []
    )


def test_per_turn_examples_train_only_their_last_answer():
    conversation = chat(
        msg(0, "user", "q1"), msg(1, "assistant", "a1"), msg(2, "user", "q2"),
        msg(3, "assistant", "a2"),
    )  # fmt: skip
    first, second = build(conversation, per_turn=True)
    assert first["messages"][-1] == {"role": "assistant", "content": "a1"}
    assert second["messages"][2] == {"role": "assistant", "content": "a1", "weight": 0}
    assert second["messages"][-1] == {"role": "assistant", "content": "a2"}


def test_failed_turn_and_its_question_are_left_out():
    conversation = chat(
        msg(0, "user", "q1"), msg(1, "assistant", "oops", error="503"), msg(2, "user", "q1 again"),
        msg(3, "assistant", "a"),
    )  # fmt: skip
    [example] = build(conversation)
    assert [m["content"] for m in example["messages"]] == [SYSTEM, "q1 again", "a"]


def test_preference_pairs_are_corrected_turns():
    conversation = chat(
        msg(0, "user", "q1"), msg(1, "assistant", "a1"), msg(2, "user", "q2"),
        msg(3, "assistant", "bad", correction="good"),
    )  # fmt: skip
    [pair] = build(conversation, format="dpo")
    assert pair["input"]["messages"][-1] == {"role": "user", "content": "q2"}
    assert pair["preferred_output"] == [{"role": "assistant", "content": "good"}]
    assert pair["non_preferred_output"] == [{"role": "assistant", "content": "bad"}]


def test_bad_filters_name_the_fix():
    with pytest.raises(InputError, match="--rating"):
        ExportFilters(rating="great")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="leave some training data"):
        SplitPlan(validation=0.6, test=0.5)


def test_splits_are_deterministic_per_seed_and_pins_win():
    plan = SplitPlan(validation=0.2, test=0.1, seed=7)
    ids = [f"conv-{i}" for i in range(2000)]
    first = [assign(i, None, plan) for i in ids]
    assert first == [assign(i, None, plan) for i in ids]
    assert first != [assign(i, None, SplitPlan(0.2, 0.1, seed=8)) for i in ids]
    shares = {s: first.count(s) / len(ids) for s in ("train", "validation", "test")}
    assert abs(shares["validation"] - 0.2) < 0.04 and abs(shares["test"] - 0.1) < 0.03
    assert assign("conv-1", "test", SplitPlan(0.0, 0.0)) == "test"


def test_near_duplicates_join_the_held_out_side():
    vectors = {"a": [1.0, 0.0], "a'": [0.99, 0.14], "b": [0.0, 1.0], "c": [0.7, -0.7]}
    dups = NearDuplicates(lambda texts: np.array([vectors[t] for t in texts]), threshold=0.95)
    assert dups.add("test", ["a"]) == [False]
    assert dups.add("validation", ["a'", "b"]) == [True, False]  # a' repeats a test chat
    assert dups.classify(["a'", "b", "c"]) == ["test", "validation", None]
    exact = ExactDuplicates()
    exact.add("validation", ["Where is my order?"])
    assert exact.classify(["where is  my order?", "other"]) == ["validation", None]
