"""LLM backends when the endpoint fails: real refused and stalled sockets, then cloud-only shapes.

Refused connections and timeouts are produced for real (a closed local port, a TCP server that
never answers). 401, 404 model_not_found and 429 come only from the OpenAI cloud, which cannot
run here: those tests use an httpx2 MockTransport (the SDK's HTTP layer) serving OpenAI's error
bodies, and say so.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx2
import pytest

from backends.base import BackendError, Conversation, ReplyMeta, Turn
from backends.finetuned import FineTunedBackend
from chatbot.backend_pool import ACTIVE_BACKEND, kind_defaults, with_secrets
from chatbot.db import store
from chatbot.runtime import Runtime
from chatbot.settings import Settings

pytestmark = pytest.mark.integration
QUESTION = "What does delivery cost?"


@pytest.fixture
def make_runtime(
    postgres_url: str, small_index_dir: Path, tmp_path: Path
) -> Iterator[Callable[..., Runtime]]:
    """Open a runtime whose active backend ``broken`` is a few-shot backend with ``config``."""
    opened: list[Runtime] = []

    def make(config: dict, **llm) -> Runtime:
        rt = Runtime.open(Settings(home=tmp_path / "var", database={"url": postgres_url}, llm=llm))
        with rt.sessions.begin() as session:
            faq = {"index_dir": str(small_index_dir)}
            store.put_backend(session=session, name="faq", kind="retrieval", config=faq)
            store.put_backend(session=session, name="broken", kind="fewshot", config=config)
            store.set_setting(session=session, key=ACTIVE_BACKEND, value="broken")
        opened.append(rt)
        return rt

    yield make
    for rt in opened:
        rt.engine.dispose()


async def turn(rt: Runtime):
    with rt.sessions.begin() as session:
        user = store.ensure_user(session=session, username="agent1")
    conversation = await rt.service.start_conversation(user_id=user.id)
    reply = rt.service.reply(conversation_id=conversation, text=QUESTION)
    text = "".join([chunk async for chunk in reply])
    with rt.sessions() as session:
        messages = store.conversation_messages(session=session, conversation_id=conversation)
    return text, reply.result, messages


def assert_fell_back(text: str, result, messages, *, notice: str, cause: str) -> None:
    """The user sees why, then the retrieval answer; both messages are stored and marked."""
    question, answer = messages
    assert question.role == "user" and question.content == QUESTION
    assert text.startswith(notice) and "Shipping is free" in text
    assert result.error is None and result.fallback_from == "broken"
    # the notice is shown, not stored as the answer (never a training target)
    assert answer.content.startswith("Shipping is free") and answer.error is None
    assert text == answer.details["fallback"]["notice"] + "\n\n" + answer.content
    assert answer.backend_name == "faq" and answer.fallback_from == "broken"
    assert answer.sources[0]["id"] == "shipping-cost"
    assert answer.details["fallback"]["from"] == "broken"
    assert cause in answer.details["fallback"]["error"]


async def test_refused_connection_falls_back_to_retrieval(make_runtime, closed_port: int):
    url = f"http://127.0.0.1:{closed_port}/v1"
    rt = make_runtime({"base_url": url, "max_retries": 1})
    text, result, messages = await turn(rt)
    assert_fell_back(
        text,
        result,
        messages,
        notice="The answer service can't be reached right now.",
        cause="cannot connect",
    )


async def test_stalled_server_times_out_and_falls_back(make_runtime, stalled_url: str):
    rt = make_runtime({"base_url": stalled_url, "timeout_s": 1, "max_retries": 1})
    text, result, messages = await turn(rt)
    assert_fell_back(
        text,
        result,
        messages,
        notice="The answer service took too long to reply.",
        cause="no answer within 1s",
    )


async def test_without_fallback_the_error_is_shown_and_the_question_kept(
    make_runtime, closed_port: int
):
    url = f"http://127.0.0.1:{closed_port}/v1"
    rt = make_runtime({"base_url": url, "max_retries": 0}, fallback_backend="")
    text, result, (question, answer) = await turn(rt)
    assert text == "" and result.error.startswith("The answer service can't be reached")
    assert question.content == QUESTION
    assert answer.content == result.error and answer.backend_name == "broken"
    assert "cannot connect" in answer.error and answer.fallback_from is None


# Cloud-only shapes: the OpenAI API's error bodies served by an httpx2 MockTransport. ----------
def openai_cloud(status: int, code: str, seen: list[httpx2.Request]) -> httpx2.AsyncClient:
    """A fake of the OpenAI cloud (it cannot run here): every request gets this error."""

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        body = {"error": {"message": f"mock {code}", "type": code, "code": code, "param": None}}
        return httpx2.Response(status, json=body, headers={"retry-after-ms": "10"})

    return httpx2.AsyncClient(transport=httpx2.MockTransport(handler))


async def cloud_error(status: int, code: str, config: dict) -> tuple[BackendError, list]:
    seen: list[httpx2.Request] = []
    backend = FineTunedBackend.from_config(config, http_client=openai_cloud(status, code, seen))
    conversation = Conversation("c", (Turn("user", QUESTION),))
    with pytest.raises(BackendError) as info:
        _ = [c async for c in backend.stream(conversation, ReplyMeta())]
    await backend.aclose()
    return info.value, seen


CLOUD = {
    "base_url": "https://api.openai.com/v1",
    "model": "ft:gpt-4o-mini-2024-07-18:shop::abc123",
    "api_key_env": "SHOP_OPENAI_KEY",
    "max_retries": 1,
}


@pytest.mark.parametrize(
    ("status", "code", "retryable", "says", "calls"),
    [
        (401, "invalid_api_key", False, "credentials", 1),
        (404, "model_not_found", False, "model is not available", 1),
        (429, "rate_limit_exceeded", True, "busy", 2),  # the SDK retried once
        (429, "insufficient_quota", False, "quota", 2),  # billing: the chat is told not to retry
    ],
)
async def test_openai_cloud_errors_become_chat_messages(
    monkeypatch: pytest.MonkeyPatch, status, code, retryable, says, calls
):
    monkeypatch.setenv("SHOP_OPENAI_KEY", "sk-test-from-env")
    config = with_secrets(Settings(), "finetuned", dict(CLOUD))
    error, seen = await cloud_error(status, code, config)
    assert error.retryable is retryable and says in error.user_message
    assert "Traceback" not in error.user_message and "sk-test" not in error.detail
    assert len(seen) == calls and seen[0].headers["authorization"] == "Bearer sk-test-from-env"
    assert seen[0].url.path == "/v1/chat/completions"
    assert json.loads(seen[0].content)["stream_options"] == {"include_usage": True}


async def test_missing_key_variable_is_named_and_nothing_is_sent(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("SHOP_OPENAI_KEY", raising=False)
    config = with_secrets(Settings(), "finetuned", dict(CLOUD))
    error, seen = await cloud_error(401, "invalid_api_key", config)
    assert not error.retryable and "SHOP_OPENAI_KEY" in error.detail and seen == []


def test_api_key_is_passed_to_the_backend_but_not_hashed_or_stored(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setenv("SHOP_OPENAI_KEY", "sk-secret")
    settings = Settings()
    config = {**kind_defaults(settings, "finetuned"), **CLOUD}
    built = with_secrets(settings, "finetuned", config)
    assert built["api_key"] == "sk-secret" and "api_key" not in config
    from backends.registry import config_hash

    assert config_hash("finetuned", built) == config_hash("finetuned", config)
