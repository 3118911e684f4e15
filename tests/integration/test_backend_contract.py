"""One contract every backend kind passes (txtai-style): text, meta.model, BackendError.

LLM kinds run against the real local server (llama.cpp + SmolLM2); their broken config points
at a closed local port.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from backends import llm_server, registry
from backends.base import Backend, BackendError, Conversation, ReplyMeta, Turn
from tests.integration.conftest import llm_config

pytestmark = pytest.mark.integration
QUESTION = Conversation("c1", (Turn("user", "How much does shipping cost?"),), locale="en")


def working_config(kind: str, small_index_dir: Path, server: llm_server.LocalServer) -> dict:
    """A config under which ``kind`` can answer on this machine."""
    return {
        "retrieval": {"index_dir": str(small_index_dir)},
        "fewshot": llm_config(server, k=2),
        "finetuned": llm_config(server),
    }[kind]


def broken_config(kind: str, tmp_path: Path, closed_port: int) -> dict:
    """A config whose upstream is unavailable."""
    dead = {"base_url": f"http://127.0.0.1:{closed_port}/v1", "model": "m", "max_retries": 0}
    return {
        "retrieval": {"index_dir": str(tmp_path / "no-index")},
        "fewshot": dead,
        "finetuned": dead,
    }[kind]


async def collect(backend: Backend, conversation: Conversation) -> tuple[str, ReplyMeta]:
    meta = ReplyMeta()
    chunks = [chunk async for chunk in backend.stream(conversation, meta)]
    assert all(isinstance(c, str) for c in chunks)
    return "".join(chunks), meta


@pytest.mark.parametrize("kind", sorted(registry.KINDS))
async def test_backend_streams_text_and_records_model(
    kind: str, small_index_dir: Path, llm: llm_server.LocalServer
):
    backend = registry.build(kind, working_config(kind, small_index_dir, llm))
    text, meta = await collect(backend, QUESTION)
    await backend.aclose()
    assert text.strip()
    assert meta.model
    if kind == "retrieval":
        assert meta.sources and meta.sources[0].id == "shipping-cost"
    else:
        assert meta.input_tokens and meta.output_tokens


@pytest.mark.parametrize("kind", sorted(registry.KINDS))
async def test_backend_upstream_failure_is_a_backend_error(
    kind: str, tmp_path: Path, closed_port: int
):
    backend = registry.build(kind, broken_config(kind, tmp_path, closed_port))
    with pytest.raises(BackendError) as info:
        await collect(backend, QUESTION)
    await backend.aclose()
    assert info.value.user_message and "Traceback" not in info.value.user_message


def test_unknown_kind_names_the_known_ones():
    with pytest.raises(ValueError, match="known kinds: fewshot, finetuned, retrieval"):
        registry.build("magic", {})
