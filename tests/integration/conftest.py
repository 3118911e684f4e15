"""Integration fixtures: the real local LLM server, and real sockets that refuse or stall."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from backends import llm_server


@pytest.fixture(scope="session")
def llm() -> Iterator[llm_server.LocalServer]:
    """llama.cpp serving the bundled SmolLM2 on a free port, one thread, for the whole session."""
    server = llm_server.start(port=0, context_tokens=4096)
    yield server
    server.close()


def llm_config(server: llm_server.LocalServer, **extra) -> dict:
    """A backend config pointing at ``server``, with short answers to keep tests quick."""
    return {
        "base_url": server.base_url,
        "model": server.model,
        "max_tokens": 16,
        "temperature": 0.0,
        "timeout_s": 60,
        "max_retries": 0,
        **extra,
    }


@pytest.fixture
def closed_port() -> int:
    """A local port nothing listens on: connecting is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
