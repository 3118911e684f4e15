"""One contract every backend kind passes (txtai-style): text, meta.model, BackendError."""

from __future__ import annotations

from pathlib import Path

import pytest

from backends import registry
from backends.base import Backend, BackendError, Conversation, ReplyMeta, Turn

QUESTION = Conversation("c1", (Turn("user", "How much does shipping cost?"),), locale="en")


def working_config(kind: str, small_index_dir: Path) -> dict:
    """A config under which ``kind`` can answer on this machine."""
    return {"retrieval": {"index_dir": str(small_index_dir)}}[kind]


def broken_config(kind: str, tmp_path: Path) -> dict:
    """A config whose upstream is unavailable."""
    return {"retrieval": {"index_dir": str(tmp_path / "no-index")}}[kind]


async def collect(backend: Backend, conversation: Conversation) -> tuple[str, ReplyMeta]:
    meta = ReplyMeta()
    chunks = [chunk async for chunk in backend.stream(conversation, meta)]
    assert all(isinstance(c, str) for c in chunks)
    return "".join(chunks), meta


@pytest.mark.parametrize("kind", sorted(registry.KINDS))
async def test_backend_streams_text_and_records_model(kind: str, small_index_dir: Path):
    backend = registry.build(kind, working_config(kind, small_index_dir))
    text, meta = await collect(backend, QUESTION)
    await backend.aclose()
    assert text.strip()
    assert meta.model
    if kind == "retrieval":
        assert meta.sources and meta.sources[0].id == "shipping-cost"


@pytest.mark.parametrize("kind", sorted(registry.KINDS))
async def test_backend_upstream_failure_is_a_backend_error(kind: str, tmp_path: Path):
    backend = registry.build(kind, broken_config(kind, tmp_path))
    with pytest.raises(BackendError) as info:
        await collect(backend, QUESTION)
    assert info.value.user_message and "Traceback" not in info.value.user_message


def test_unknown_kind_names_the_known_ones():
    with pytest.raises(ValueError, match="known kinds: retrieval"):
        registry.build("magic", {})
