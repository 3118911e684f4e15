"""Few-shot and fine-tuned backends answering through ChatService from the real local server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from backends import llm_server
from backends.base import ReplyMeta
from backends.examples import BUNDLED_EXAMPLES
from backends.fewshot import FewShotBackend
from chatbot.backend_pool import ACTIVE_BACKEND
from chatbot.db import store
from chatbot.runtime import Runtime
from chatbot.service import TurnResult
from chatbot.settings import Settings
from tests.integration.conftest import llm_config

pytestmark = pytest.mark.integration
SHIPPING = "How much does shipping cost?"


def open_runtime(url: str, home: Path, index_dir: Path, server, **backends: dict) -> Runtime:
    """A runtime on ``url`` with ``faq`` over the small index and the given LLM backends."""
    rt = Runtime.open(Settings(home=home, database={"url": url}))
    with rt.sessions.begin() as session:
        store.put_backend(
            session=session, name="faq", kind="retrieval", config={"index_dir": str(index_dir)}
        )
        for name, config in backends.items():
            kind = config.pop("kind")
            store.put_backend(session=session, name=name, kind=kind, config=config)
    return rt


@pytest.fixture
def runtime(
    database_url: str, small_index_dir: Path, tmp_path: Path, llm: llm_server.LocalServer
) -> Iterator[Runtime]:
    rt = open_runtime(
        database_url,
        tmp_path / "var",
        small_index_dir,
        llm,
        **{
            "local-fewshot": {"kind": "fewshot", **llm_config(llm, k=2)},
            "local-finetuned": {"kind": "finetuned", **llm_config(llm)},
        },
    )
    yield rt
    rt.engine.dispose()


def use(rt: Runtime, name: str) -> None:
    with rt.sessions.begin() as session:
        store.set_setting(session=session, key=ACTIVE_BACKEND, value=name)


async def ask(rt: Runtime, text: str, locale: str = "en") -> tuple[list[str], TurnResult, str]:
    """One turn in a new conversation: the streamed chunks, the result, the conversation id."""
    with rt.sessions.begin() as session:
        user = store.ensure_user(session=session, username="agent1")
    conversation = await rt.service.start_conversation(user_id=user.id, locale=locale)
    reply = rt.service.reply(conversation_id=conversation, text=text)
    chunks = [chunk async for chunk in reply]
    return chunks, reply.result, conversation


def stored(rt: Runtime, conversation: str):
    with rt.sessions() as session:
        return store.conversation_messages(session=session, conversation_id=conversation)


async def test_fewshot_answer_streams_and_is_stored_with_usage_and_provenance(runtime: Runtime):
    use(runtime, "local-fewshot")
    chunks, result, conversation = await ask(runtime, SHIPPING)
    assert len(chunks) > 1 and "".join(chunks).strip() and result.error is None
    question, answer = stored(runtime, conversation)
    assert question.content == SHIPPING
    assert answer.content == "".join(chunks) and answer.error is None
    assert answer.backend_name == "local-fewshot" and answer.model == "smollm2"
    assert answer.input_tokens > 0 and 0 < answer.output_tokens <= 16
    assert answer.cost_usd == 0.0 and answer.fallback_from is None
    assert 0 < answer.ttft_ms <= answer.latency_ms
    version = json.loads(BUNDLED_EXAMPLES.read_text())["version"]
    assert answer.details["example_set"]["version"] == version
    assert answer.details["kind"] == "fewshot" and len(answer.details["examples_used"]) == 2


async def test_finetuned_answer_needs_fewer_prompt_tokens_than_fewshot(runtime: Runtime):
    use(runtime, "local-fewshot")
    _, fewshot, _ = await ask(runtime, SHIPPING)
    use(runtime, "local-finetuned")
    chunks, finetuned, conversation = await ask(runtime, SHIPPING)
    assert "".join(chunks).strip() and finetuned.error is None
    answer = stored(runtime, conversation)[1]
    assert answer.backend_name == "local-finetuned"
    assert answer.details["fine_tuned_model"] == "smollm2" and answer.details["examples_used"] == []
    assert finetuned.meta.input_tokens < fewshot.meta.input_tokens


async def test_grounded_answer_cites_knowledge_base_sources(
    postgres_url: str, small_index_dir: Path, tmp_path: Path, llm: llm_server.LocalServer
):
    grounded = llm_config(llm, grounded=True, retrieval={"index_dir": str(small_index_dir)})
    rt = open_runtime(
        postgres_url,
        tmp_path / "var",
        small_index_dir,
        llm,
        grounded={"kind": "finetuned", **grounded},
        plain={"kind": "finetuned", **llm_config(llm)},
    )
    try:
        use(rt, "plain")
        _, plain, _ = await ask(rt, SHIPPING)
        use(rt, "grounded")
        chunks, result, conversation = await ask(rt, SHIPPING)
        answer = stored(rt, conversation)[1]
    finally:
        rt.engine.dispose()
    assert "".join(chunks).strip() and result.error is None
    assert answer.sources[0]["id"] == "shipping-cost" and answer.index_version
    assert answer.details["grounded"][0] == "shipping-cost"
    assert result.meta.input_tokens > plain.meta.input_tokens  # the sources are in the prompt


async def test_spanish_conversation_gets_spanish_examples(runtime: Runtime):
    use(runtime, "local-fewshot")
    _, result, conversation = await ask(runtime, "¿Cuánto cuesta el envío?", locale="es")
    answer = stored(runtime, conversation)[1]
    assert result.error is None
    assert all(e.endswith("-es") for e in answer.details["examples_used"])


async def test_nearest_examples_are_chosen_by_similarity(llm: llm_server.LocalServer, embedder):
    from backends.base import Conversation, Turn

    backend = FewShotBackend.from_config(llm_config(llm, select="nearest", k=2), embedder=embedder)
    meta = ReplyMeta()
    question = Conversation("c", (Turn("user", "I forgot my password, what do I do?"),))
    text = "".join([c async for c in backend.stream(question, meta)])
    await backend.aclose()
    assert text.strip()
    assert meta.details["select"] == "nearest"
    assert meta.details["examples_used"][0] == "reset-password-en"
