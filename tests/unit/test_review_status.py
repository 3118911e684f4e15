"""An admin's stored review outweighs ratings and backends in what an export trains on."""

from __future__ import annotations

from datetime import UTC, datetime

from chatbot.db.training_queries import StoredConversation, StoredMessage
from chatbot.training.filters import ExportFilters, is_approved, keep_conversation


def answer(**kw) -> StoredMessage:
    fields = {"backend_name": "llm", "error": None, "details": None, "rating": 0}
    return StoredMessage("a", "assistant", "text", **{"correction": None, **fields, **kw})


def chat(*messages: StoredMessage) -> StoredConversation:
    question = StoredMessage("q", "user", "q?", None, None, None, 0, None)
    return StoredConversation(
        "c", datetime(2026, 1, 1, tzinfo=UTC), "en", None, (question, *messages)
    )


def test_review_status_approved_downvoted_generative_answer_is_a_target():
    approved = answer(rating=-1, backend_kind="fewshot", review="approved")
    assert is_approved(approved, ExportFilters())
    assert keep_conversation(chat(approved), ExportFilters()) is None
    assert not is_approved(answer(rating=-1, backend_kind="fewshot"), ExportFilters())


def test_review_status_rejected_answer_is_never_a_target_and_leaves_the_chat_out():
    rejected = answer(rating=1, backend_kind="retrieval", review="rejected")
    for rating in ("positive", "not-negative", "any"):
        assert not is_approved(rejected, ExportFilters(rating=rating))
    assert keep_conversation(chat(rejected), ExportFilters()) == "rejected"
    assert keep_conversation(chat(rejected), ExportFilters(rating="any")) is None


def test_review_status_approved_without_correction_is_not_taken_by_corrected_only():
    approved = answer(review="approved")
    assert not is_approved(approved, ExportFilters(corrected_only=True))
    assert is_approved(
        answer(review="approved", correction="better"), ExportFilters(corrected_only=True)
    )
