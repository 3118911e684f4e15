"""Chat JSONL examples -> token ids and labels: the model's chat template, loss on answers only."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

IGNORE = -100  # label of a token the loss skips (PyTorch's cross-entropy ignore_index)


@dataclass(frozen=True)
class TokenizedExample:
    """One training example: token ids and labels (``IGNORE`` where no loss is taken)."""

    input_ids: list[int]
    labels: list[int]

    @property
    def target_tokens(self) -> int:
        """How many tokens the loss is computed on."""
        return sum(1 for label in self.labels if label != IGNORE)


def read_chats(path: Path) -> Iterator[list[dict[str, Any]]]:
    """The ``messages`` of each line of a chat fine-tuning JSONL file."""
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                yield list(json.loads(line)["messages"])


def _render(tokenizer: Any, messages: list[dict[str, Any]], prompt: bool = False) -> str:
    """The chat template's text for ``messages`` (with the assistant header when ``prompt``)."""
    plain = [{"role": m["role"], "content": m["content"]} for m in messages]
    return str(tokenizer.apply_chat_template(plain, tokenize=False, add_generation_prompt=prompt))


def target_spans(tokenizer: Any, messages: list[dict[str, Any]]) -> tuple[str, list[range]]:
    """The rendered chat and the character spans of the answers to learn (weight 0: skipped).

    A span runs from after the assistant header to the end of the turn (its end-of-turn token
    included, so the model learns to stop).
    """
    text = _render(tokenizer, messages)
    spans = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant" or message.get("weight", 1) == 0:
            continue
        start = len(_render(tokenizer, messages[:i], prompt=True))
        end = len(_render(tokenizer, messages[: i + 1]))
        if not text.startswith(_render(tokenizer, messages[: i + 1])):
            raise ValueError("the chat template does not render conversations prefix by prefix")
        spans.append(range(start, end))
    return text, spans


def tokenize_chat(
    tokenizer: Any, messages: list[dict[str, Any]], max_tokens: int
) -> TokenizedExample:
    """Token ids of the rendered chat, labels only on learnable answers, cut to ``max_tokens``."""
    text, spans = target_spans(tokenizer, messages)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(encoded["input_ids"])[:max_tokens]
    offsets = list(encoded["offset_mapping"])[:max_tokens]
    labels = [
        token if any(start in span for span in spans) else IGNORE
        for token, (start, _end) in zip(ids, offsets, strict=True)
    ]
    return TokenizedExample(input_ids=ids, labels=labels)


def load_examples(tokenizer: Any, path: Path, max_tokens: int) -> list[TokenizedExample]:
    """Every example of ``path`` that keeps at least one answer token to learn from."""
    examples = (tokenize_chat(tokenizer, m, max_tokens) for m in read_chats(path))
    return [e for e in examples if e.target_tokens > 0]


def system_prompt_of(path: Path) -> str | None:
    """The most common system message of a chat file (what the fine-tune learned to expect)."""
    counts: dict[str, int] = {}
    for messages in read_chats(path):
        if messages and messages[0]["role"] == "system":
            text = str(messages[0]["content"])
            counts[text] = counts.get(text, 0) + 1
    return max(counts, key=lambda text: counts[text]) if counts else None
