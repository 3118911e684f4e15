"""Tokens of a training example the way OpenAI's cookbook counts them (o200k, offline)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from backends.tokens import PER_MESSAGE, PER_REPLY, count_text

PER_NAME = 1


def count_chat(messages: list[dict[str, Any]], count: Callable[[str], int] = count_text) -> int:
    """Tokens of a chat example: per message 3 + role + content (+1 per name), plus 3 priming.

    ``count`` counts one text's tokens (a caching counter may stand in for ``count_text``).
    """
    total = PER_REPLY
    for message in messages:
        total += PER_MESSAGE
        for key in ("role", "content", "name"):
            value = message.get(key)
            if isinstance(value, str):
                total += count(value) + (PER_NAME if key == "name" else 0)
    return total
