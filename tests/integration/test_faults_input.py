"""Hostile text through ``clean_text`` and ChatService (hypothesis): only ``InputError`` may
come out, and every accepted question is stored with an answer."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatbot.backend_pool import ACTIVE_BACKEND
from chatbot.db import store
from chatbot.errors import InputError
from chatbot.runtime import Runtime
from chatbot.service import clean_text
from chatbot.settings import Settings

pytestmark = pytest.mark.integration
ANY_CHARACTER = st.characters(codec=None, exclude_categories=())  # surrogates and controls too
TEXTS = st.text(alphabet=ANY_CHARACTER, max_size=200) | st.text(
    alphabet=st.sampled_from("\x00\x01\x1f\x7f\ud800\udfff \t\r\n\u200b\ufeffa"), max_size=50
)
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
UNSTORABLE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


@settings(max_examples=3000, deadline=None)
@given(text=TEXTS, limit=st.integers(min_value=1, max_value=300))
def test_clean_text_accepts_or_says_why(text: str, limit: int):
    refusal = ""
    try:
        cleaned = clean_text(text, limit)
    except InputError as exc:
        refusal = str(exc)
    left = len(CONTROL.sub("", text).strip())  # lone surrogates stay, as U+FFFD
    if refusal:
        assert refusal.startswith("The message is empty") if left == 0 else "limit is" in refusal
        return
    assert cleaned and cleaned == cleaned.strip() and len(cleaned) == left <= limit
    assert not UNSTORABLE.search(cleaned)
    cleaned.encode("utf-8")  # storable in any database


@pytest.fixture
def runtime(small_index_dir: Path, tmp_path: Path) -> Iterator[Runtime]:
    rt = Runtime.open(Settings(home=tmp_path / "var", chat={"max_message_chars": 150}))
    with rt.sessions.begin() as session:
        config = {"index_dir": str(small_index_dir)}
        store.put_backend(session=session, name="faq", kind="retrieval", config=config)
        store.set_setting(session=session, key=ACTIVE_BACKEND, value="faq")
        store.ensure_user(session=session, username="agent1")
    yield rt
    rt.engine.dispose()


def test_generated_questions_are_stored_with_an_answer_or_refused_clearly(runtime: Runtime):
    """Hundreds of generated messages through the real service on SQLite: nothing is lost."""
    loop = asyncio.new_event_loop()
    with runtime.sessions() as session:
        user_id = store.get_user(session=session, username="agent1").id
    conversation = loop.run_until_complete(runtime.service.start_conversation(user_id=user_id))
    accepted: list[str] = []

    @settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
    @given(text=TEXTS)
    def one(text: str) -> None:
        try:
            reply = runtime.service.reply(conversation_id=conversation, text=text)
        except InputError:
            return

        async def consume() -> str:
            return "".join([chunk async for chunk in reply])

        shown = loop.run_until_complete(consume())
        assert reply.result.reply_id and (shown or reply.result.error)
        accepted.append(clean_text(text, 150))

    try:
        one()
    finally:
        loop.close()
    with runtime.sessions() as session:
        messages = store.conversation_messages(session=session, conversation_id=conversation)
    assert [m.content for m in messages if m.role == "user"] == accepted
    assert [m.role for m in messages] == ["user", "assistant"] * len(accepted)
    print(f"{len(accepted)} generated questions answered and stored")
