"""ChatService on real databases: what is stored, in what order, and what survives failures."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from backends import registry
from backends.base import Backend, BackendError, Conversation, ReplyMeta
from chatbot.db import store
from chatbot.db.models import Message
from chatbot.errors import InputError
from chatbot.runtime import Runtime
from chatbot.settings import Settings

pytestmark = pytest.mark.integration


class ProbeBackend(Backend):
    """A backend that reports what the database held when it was called, then fails or answers.

    Not a fake of an external service: it lets the test observe the service's ordering.
    """

    kind = "probe"
    seen_user_rows: int | None = None

    def __init__(self, config):
        self.fail = config.get("fail", False)
        self.sessions = config["sessions"]

    async def stream(self, conversation: Conversation, meta: ReplyMeta) -> AsyncIterator[str]:
        with self.sessions() as session:
            rows = session.scalars(select(Message).where(Message.role == "user")).all()
            ProbeBackend.seen_user_rows = len(rows)
        meta.model = "probe-1"
        yield "partial "
        if self.fail:
            raise BackendError(
                "The answer service is busy; try again.", retryable=True, detail="upstream 503"
            )
        yield "done"


@pytest.fixture
def runtime(database_url: str, small_index_dir: Path, tmp_path: Path) -> Iterator[Runtime]:
    settings = Settings(home=tmp_path / "var", database={"url": database_url})
    rt = Runtime.open(settings)
    with rt.sessions.begin() as session:
        store.put_backend(
            session=session,
            name="faq",
            kind="retrieval",
            config={"index_dir": str(small_index_dir)},
        )
    registry.KINDS["probe"] = ProbeBackend
    yield rt
    registry.KINDS.pop("probe", None)
    rt.engine.dispose()


def use_probe(rt: Runtime, *, fail: bool) -> None:
    """Register the probe backend (its config carries the sessionmaker) and make it active."""
    original = rt.pool.resolve_in

    def resolve_in(session, name=None):
        resolved = original(session, "probe")
        resolved.backend.sessions = rt.sessions
        resolved.backend.fail = fail
        return resolved

    with rt.sessions.begin() as session:
        store.put_backend(session=session, name="probe", kind="probe", config={"sessions": None})
    rt.pool.resolve_in = resolve_in  # type: ignore[method-assign]


async def new_conversation(rt: Runtime, locale: str = "en") -> str:
    with rt.sessions.begin() as session:
        user = store.ensure_user(session=session, username="agent1")
    return await rt.service.start_conversation(user_id=user.id, locale=locale)


async def test_reply_is_stored_with_provenance(runtime: Runtime):
    conversation = await new_conversation(runtime)
    reply = runtime.service.reply(conversation_id=conversation, text="What does delivery cost?")
    text = "".join([chunk async for chunk in reply])
    assert text.startswith("Shipping is free")
    with runtime.sessions() as session:
        user_msg, answer = store.conversation_messages(
            session=session, conversation_id=conversation
        )
        title = store.get_conversation(session=session, conversation_id=conversation).title
    assert (user_msg.role, user_msg.content) == ("user", "What does delivery cost?")
    assert answer.role == "assistant" and answer.content == text
    assert answer.backend_name == "faq" and len(answer.backend_config_hash or "") == 12
    assert answer.model == "sentence-transformers/all-MiniLM-L6-v2+onnx-int8"
    assert answer.sources[0]["id"] == "shipping-cost" and answer.sources[0]["score"] > 0.5
    assert answer.index_version and answer.error is None and answer.handoff is False
    assert 0 < answer.ttft_ms <= answer.latency_ms
    assert title == "What does delivery cost?"
    assert reply.result.reply_id == answer.id


async def test_ids_given_by_the_ui_are_kept(runtime: Runtime):
    conversation = await new_conversation(runtime)
    ids = ("11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222")
    reply = runtime.service.reply(
        conversation_id=conversation, text="shipping fees?", user_message_id=ids[0], reply_id=ids[1]
    )
    _ = [c async for c in reply]
    with runtime.sessions() as session:
        stored = [
            m.id for m in store.conversation_messages(session=session, conversation_id=conversation)
        ]
    assert stored == list(ids)


async def test_user_message_is_committed_before_the_backend_runs(runtime: Runtime):
    use_probe(runtime, fail=False)
    conversation = await new_conversation(runtime)
    reply = runtime.service.reply(conversation_id=conversation, text="hello")
    assert "".join([c async for c in reply]) == "partial done"
    assert ProbeBackend.seen_user_rows == 1


async def test_backend_failure_stores_error_and_keeps_the_question(runtime: Runtime):
    use_probe(runtime, fail=True)
    conversation = await new_conversation(runtime)
    reply = runtime.service.reply(conversation_id=conversation, text="Where is my parcel?")
    _ = [c async for c in reply]
    assert reply.result.error == "The answer service is busy; try again."
    with runtime.sessions() as session:
        question, answer = store.conversation_messages(
            session=session, conversation_id=conversation
        )
    assert question.content == "Where is my parcel?"
    assert answer.error == "upstream 503" and answer.backend_name == "probe"
    # the backend failed after "partial ": what the user saw is stored, marked partial
    assert answer.content == "partial " and answer.status == "partial"


async def test_failed_turn_is_not_shown_to_the_backend_again(runtime: Runtime):
    use_probe(runtime, fail=True)
    conversation = await new_conversation(runtime)
    _ = [c async for c in runtime.service.reply(conversation_id=conversation, text="first")]
    seen: list[Conversation] = []
    original = ProbeBackend.stream

    async def spy(self, conv, meta):
        seen.append(conv)
        async for chunk in original(self, conv, meta):
            yield chunk

    ProbeBackend.stream = spy  # type: ignore[method-assign]
    try:
        _ = [c async for c in runtime.service.reply(conversation_id=conversation, text="second")]
    finally:
        ProbeBackend.stream = original  # type: ignore[method-assign]
    assert [t.role for t in seen[0].turns] == ["user", "user"]


@pytest.mark.parametrize("text", ["", "   \n\t", "\x00\x07"])
async def test_empty_question_is_rejected_and_nothing_stored(runtime: Runtime, text: str):
    conversation = await new_conversation(runtime)
    with pytest.raises(InputError, match="empty"):
        runtime.service.reply(conversation_id=conversation, text=text)
    with runtime.sessions() as session:
        assert store.conversation_messages(session=session, conversation_id=conversation) == []


async def test_too_long_question_names_the_limit(runtime: Runtime):
    conversation = await new_conversation(runtime)
    with pytest.raises(InputError, match=r"limit is 4000.*AFINA_CHAT_MAX_MESSAGE_CHARS"):
        runtime.service.reply(conversation_id=conversation, text="a" * 4001)


async def test_spanish_conversation_hands_over_in_spanish(runtime: Runtime, small_index_dir: Path):
    with runtime.sessions.begin() as session:  # a strict threshold: nothing matches well enough
        store.put_backend(
            session=session,
            name="faq",
            kind="retrieval",
            config={
                "index_dir": str(small_index_dir),
                "min_score": 0.99,
                "language_min_scores": {"es": 0.99},
            },
        )
    conversation = await new_conversation(runtime, locale="es")
    reply = runtime.service.reply(
        conversation_id=conversation, text="¿Qué tiempo hará mañana en Lisboa?"
    )
    text = "".join([c async for c in reply])
    assert reply.result.meta.handoff and text.startswith("No estoy seguro")
    with runtime.sessions() as session:
        assert store.conversation_messages(session=session, conversation_id=conversation)[1].handoff


async def test_answer_follows_the_language_the_customer_writes_in(runtime: Runtime):
    conversation = await new_conversation(runtime, locale="en")
    reply = runtime.service.reply(
        conversation_id=conversation, text="hola, cuanto me cuesta el envio de mi pedido?"
    )
    text = "".join([c async for c in reply])
    assert text.startswith("El envío es gratis")
    assert reply.result.meta.sources[0].locale == "es"
    # a short, ambiguous follow-up keeps the language the conversation switched to
    follow = runtime.service.reply(conversation_id=conversation, text="ok")
    _ = [c async for c in follow]
    with runtime.sessions() as session:
        assert store.get_conversation(session=session, conversation_id=conversation).locale == "es"
    assert {s.locale for s in follow.result.meta.sources} == {"es"}


async def test_unclear_language_is_answered_from_the_knowledge_base_that_knows_it(
    runtime: Runtime,
):
    """ "envio gratis?" is too short for the detector (Spanish at 0.73, below its bar), so the
    new English conversation keeps English; the English index hands over, the Spanish one
    knows the question: the answer is Spanish and the conversation follows it."""
    conversation = await new_conversation(runtime, locale="en")
    reply = runtime.service.reply(conversation_id=conversation, text="envio gratis?")
    text = "".join([c async for c in reply])
    assert text.startswith("El envío es gratis")
    assert not reply.result.meta.handoff and reply.result.meta.sources[0].locale == "es"
    with runtime.sessions() as session:
        assert store.get_conversation(session=session, conversation_id=conversation).locale == "es"
