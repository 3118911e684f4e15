"""What may be a training target: never Afina's own notices, never an unreviewed generated answer.

The fallback turn is real: a few-shot backend pointed at a closed local port (connection
refused), then the retrieval fallback answers from the small knowledge base.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatbot import reviews
from chatbot.backend_pool import ACTIVE_BACKEND
from chatbot.db import history, store
from chatbot.runtime import Runtime
from chatbot.settings import Settings
from chatbot.training.export import ExportOptions, run_export
from chatbot.training.split import SplitPlan

pytestmark = pytest.mark.integration
INVENTED = "Our shop is open around the clock on Sundays."


@pytest.fixture
def runtime(tmp_path: Path, small_index_dir: Path, closed_port: int) -> Iterator[Runtime]:
    """SQLite; the active backend ``broken`` (few-shot, refused) falls back to ``faq``."""
    rt = Runtime.open(
        Settings(
            home=tmp_path / "var",
            database={"url": f"sqlite:///{tmp_path / 'afina.db'}"},
            llm={"fallback_backend": "faq"},
        )
    )
    config = {"base_url": f"http://127.0.0.1:{closed_port}/v1", "max_retries": 0}
    with rt.sessions.begin() as session:
        faq = {"index_dir": str(small_index_dir)}
        store.put_backend(session=session, name="faq", kind="retrieval", config=faq)
        store.put_backend(session=session, name="broken", kind="fewshot", config=config)
        store.put_backend(session=session, name="tuned", kind="finetuned", config=config)
        store.set_setting(session=session, key=ACTIVE_BACKEND, value="broken")
    yield rt
    rt.engine.dispose()


def targets(rt: Runtime, out: Path) -> list[str]:
    """The assistant contents an export trains on (weight 1 or no weight)."""
    plan = SplitPlan(validation=0.0, test=0.0, seed=0)
    options = ExportOptions.from_settings(rt.settings.training, near_duplicates=False, plan=plan)
    run_export(sessions=rt.sessions, out=out, options=options, created_by="test")
    found = []
    for line in (out / "train.jsonl").read_text(encoding="utf-8").splitlines():
        for message in json.loads(line)["messages"]:
            if message["role"] == "assistant" and message.get("weight", 1) == 1:
                found.append(message["content"])
    return found


async def test_the_fallback_notice_is_shown_but_never_stored_nor_trained_on(
    runtime: Runtime, tmp_path: Path
):
    with runtime.sessions.begin() as session:
        user = store.ensure_user(session=session, username="agent1")
    conversation = await runtime.service.start_conversation(user_id=user.id)
    reply = runtime.service.reply(conversation_id=conversation, text="What does delivery cost?")
    shown = "".join([chunk async for chunk in reply])
    with runtime.sessions() as session:
        _, answer = store.conversation_messages(session=session, conversation_id=conversation)
    notice = answer.details["fallback"]["notice"]
    assert "backup assistant" in notice and shown.startswith(notice)  # the user is told
    assert answer.content.startswith("Shipping is free") and "backup" not in answer.content
    assert answer.fallback_from == "broken"
    trained = targets(runtime, tmp_path / "out")
    assert any(t.startswith("Shipping is free") for t in trained)
    assert not any("backup assistant" in t or "can't be reached" in t for t in trained)


def test_unreviewed_generated_answers_are_never_targets_until_reviewed(
    runtime: Runtime, tmp_path: Path
):
    with runtime.sessions.begin() as session:
        user = store.ensure_user(session=session, username="agent1")
        ids = {}
        for backend in ("broken", "tuned"):
            chat = store.add_conversation(session=session, user_id=user.id, locale="en")
            store.add_message(
                session=session, conversation_id=chat.id, role="user", content="Phone number?"
            )
            answer = store.add_message(
                session=session,
                conversation_id=chat.id,
                role="assistant",
                content=f"{INVENTED} ({backend})",
                backend_name=backend,
            )
            ids[backend] = answer.id
    assert not any(INVENTED in t for t in targets(runtime, tmp_path / "before"))
    with runtime.sessions.begin() as session:  # reviewed: upvoted, or corrected
        history.upsert_feedback(
            session=session, message_id=ids["broken"], user_id=user.id, value=1, comment=None
        )
        reviews.correct(
            session=session, message_id=ids["tuned"], user_id=user.id, text="See the help page."
        )
    trained = targets(runtime, tmp_path / "after")
    assert f"{INVENTED} (broken)" in trained and "See the help page." in trained
    assert f"{INVENTED} (tuned)" not in trained
