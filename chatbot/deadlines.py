"""Deadlines on a streamed answer: time to the first chunk, and idle time between chunks."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from backends.base import BackendError

SLOW = {
    "en": "The answer service did not answer in time.",
    "es": "El servicio de respuestas no respondió a tiempo.",
}


async def within_deadlines(
    stream: AsyncIterator[str], *, first_s: float, idle_s: float, locale: str = "en"
) -> AsyncIterator[str]:
    """Relay ``stream``; a retryable ``BackendError`` when the first chunk takes longer than
    ``first_s`` or any later one longer than ``idle_s`` (the stream is closed then)."""
    iterator = aiter(stream)
    wait, what = first_s, "first token"
    try:
        while True:
            try:
                chunk = await asyncio.wait_for(anext(iterator), wait)
            except StopAsyncIteration:
                return
            except TimeoutError:
                setting = "FIRST_TOKEN" if what == "first token" else "IDLE"
                raise BackendError(
                    SLOW.get(locale, SLOW["en"]),
                    retryable=True,
                    detail=f"no {what} within {wait:g} s (AFINA_CHAT_{setting}_TIMEOUT_S)",
                ) from None
            wait, what = idle_s, "token"
            yield chunk
    finally:
        with contextlib.suppress(Exception):
            await iterator.aclose()  # type: ignore[attr-defined]
