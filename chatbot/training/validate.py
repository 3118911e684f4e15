"""Check fine-tuning JSONL files against OpenAI's rules, streaming, with token statistics.

Chat files (``{"messages": [...]}``) and preference files (``{"input": ..., "preferred_output":
..., "non_preferred_output": ...}``) are both understood. Errors make OpenAI reject the file
(or silently drop training signal); warnings are worth a look.
"""

from __future__ import annotations

import hashlib
import json
from array import array
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backends.tokens import count_text
from chatbot.errors import InputError
from chatbot.training.tokens import count_chat

ERROR, WARNING = "error", "warning"
# rule -> (severity, what it means); every rule the validator can report.
RULES: dict[str, tuple[str, str]] = {
    "invalid_json": (ERROR, "line is not a JSON object"),
    "missing_messages": (ERROR, "no non-empty 'messages' list (or preference 'input')"),
    "unknown_key": (ERROR, "key not allowed by the format"),
    "unknown_role": (ERROR, "role is not system, developer, user, assistant or tool"),
    "empty_content": (ERROR, "message content missing or blank"),
    "no_trained_assistant": (ERROR, "no assistant message with weight != 0"),
    "bad_weight": (ERROR, "weight must be 0 or 1 and only on assistant messages"),
    "bad_preference": (ERROR, "preferred/non_preferred output must be one assistant message"),
    "too_long": (ERROR, "over the token limit: the final assistant turn would be cut"),
    "truncated": (WARNING, "over the token limit: trailing non-target messages would be cut"),
    "too_few_examples": (ERROR, "fewer than 10 training examples"),
    "few_examples": (WARNING, "fewer than 50 training examples"),
    "missing_system": (WARNING, "no system message"),
    "missing_user": (WARNING, "no user message"),
    "duplicate_target": (WARNING, "same question and target answer as an earlier example"),
    "split_overlap": (ERROR, "a user prompt also present in the training file"),
}
MIN_EXAMPLES, SUGGESTED_EXAMPLES = 10, 50
ROLES = {"system", "developer", "user", "assistant", "tool"}
MESSAGE_KEYS = {"role", "content", "name", "weight", "tool_calls", "tool_call_id", "function_call"}
CHAT_KEYS = {"messages", "tools", "functions", "parallel_tool_calls", "metadata"}
PREFERENCE_KEYS = {"input", "preferred_output", "non_preferred_output", "metadata"}
INPUT_KEYS = {"messages", "tools", "parallel_tool_calls"}
SAMPLE_LINES = 5


@dataclass
class FileResult:
    """What validating one file found: rule counts, sample line numbers, per-example figures."""

    path: str
    kind: str  # train | validation | test
    examples: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    lines: dict[str, list[int]] = field(default_factory=dict)
    messages: array = field(default_factory=lambda: array("I"))
    tokens: array = field(default_factory=lambda: array("I"))
    assistant_tokens: array = field(default_factory=lambda: array("I"))
    billed_tokens: int = 0

    def add(self, rule: str, line: int) -> None:
        """Count one finding of ``rule`` (and remember its first lines)."""
        self.counts[rule] += 1
        sample = self.lines.setdefault(rule, [])
        if len(sample) < SAMPLE_LINES and line not in sample:
            sample.append(line)

    @property
    def errors(self) -> int:
        """Findings that make the file unusable."""
        return sum(n for rule, n in self.counts.items() if RULES[rule][0] == ERROR)

    @property
    def warnings(self) -> int:
        """Findings worth a look."""
        return sum(n for rule, n in self.counts.items() if RULES[rule][0] == WARNING)


def _digest(*parts: str) -> bytes:
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=12).digest()


def _text(content: Any) -> str | None:
    """A message's text: a string, or the text parts of a content list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, dict)]
        return "".join(p for p in parts if isinstance(p, str))
    return None


def _check_message(message: Any, result: FileResult, line: int, *, weights: bool) -> None:
    """Keys, role, content and weight of one message."""
    if not isinstance(message, dict):
        result.add("missing_messages", line)
        return
    if set(message) - MESSAGE_KEYS:
        result.add("unknown_key", line)
    role = message.get("role")
    if role not in ROLES:
        result.add("unknown_role", line)
    text = _text(message.get("content"))
    calls = role == "assistant" and (message.get("tool_calls") or message.get("function_call"))
    if not calls and (text is None or not text.strip()):
        result.add("empty_content", line)
    if "weight" in message:
        weight = message["weight"]
        good = type(weight) is int and weight in (0, 1)
        if not (weights and good and role == "assistant"):
            result.add("bad_weight", line)


def _size_check(messages: list[dict], limit: int, result: FileResult, line: int) -> int:
    """Token count of the example; flag it when over ``limit``."""
    tokens = count_chat(messages)
    if tokens > limit:
        last = max(i for i, m in enumerate(messages) if m.get("role") == "assistant")
        through_last = count_chat(messages[: last + 1])
        result.add("too_long" if through_last > limit else "truncated", line)
    return tokens


class Validator:
    """Validates files one line at a time; remembers training prompts to find split overlap."""

    def __init__(self, max_tokens: int):
        self.max_tokens = max_tokens
        self.train_prompts: set[bytes] = set()

    def validate(self, path: Path, kind: str = "train") -> FileResult:
        """Validate one file; a training file's prompts are remembered for later files."""
        if not path.is_file():
            raise InputError(f"no file {path}: give a JSONL file written by `afina export`")
        result = FileResult(str(path), kind)
        seen: set[bytes] = set()
        with path.open(encoding="utf-8") as lines:
            for number, raw in enumerate(lines, start=1):
                if raw.strip():
                    self._line(raw, number, result, seen)
        if kind == "train":
            if result.examples < MIN_EXAMPLES:
                result.add("too_few_examples", 0)
            elif result.examples < SUGGESTED_EXAMPLES:
                result.add("few_examples", 0)
        return result

    def _line(self, raw: str, line: int, result: FileResult, seen: set[bytes]) -> None:
        try:
            example = json.loads(raw)
        except json.JSONDecodeError:
            example = None
        if not isinstance(example, dict):
            result.add("invalid_json", line)
            return
        result.examples += 1
        if "messages" in example or "input" not in example:
            messages = self._chat(example, result, line)
        else:
            messages = self._preference(example, result, line)
        if messages is None:
            return
        self._figures(messages, result, line)
        users = [_text(m.get("content")) or "" for m in messages if m.get("role") == "user"]
        prompt = _digest(*users)
        if result.kind == "train":
            self.train_prompts.add(prompt)
        elif prompt in self.train_prompts:
            result.add("split_overlap", line)
        targets = [m for m in messages if m.get("role") == "assistant" and m.get("weight") != 0]
        if users and targets:
            key = _digest(users[-1], _text(targets[-1].get("content")) or "")
            if key in seen:
                result.add("duplicate_target", line)
            seen.add(key)

    def _chat(self, example: dict, result: FileResult, line: int) -> list[dict] | None:
        """Rules for a chat example; its messages when they can be measured."""
        if set(example) - CHAT_KEYS:
            result.add("unknown_key", line)
        messages = example.get("messages")
        if not isinstance(messages, list) or not messages:
            result.add("missing_messages", line)
            return None
        for message in messages:
            _check_message(message, result, line, weights=True)
        if not all(isinstance(m, dict) for m in messages):
            return None
        trained = [m for m in messages if m.get("role") == "assistant" and m.get("weight", 1) != 0]
        if not trained:
            result.add("no_trained_assistant", line)
            return None
        return messages

    def _preference(self, example: dict, result: FileResult, line: int) -> list[dict] | None:
        """Rules for a preference (DPO) example; prompt + preferred answer when measurable."""
        if set(example) - PREFERENCE_KEYS:
            result.add("unknown_key", line)
        prompt = example.get("input")
        messages = prompt.get("messages") if isinstance(prompt, dict) else None
        if isinstance(prompt, dict) and set(prompt) - INPUT_KEYS:
            result.add("unknown_key", line)
        if not isinstance(messages, list) or not messages:
            result.add("missing_messages", line)
            return None
        for message in messages:
            _check_message(message, result, line, weights=False)
        outputs = []
        for key in ("preferred_output", "non_preferred_output"):
            output = example.get(key)
            if not (isinstance(output, list) and len(output) == 1 and isinstance(output[0], dict)):
                result.add("bad_preference", line)
                return None
            if output[0].get("role") != "assistant":
                result.add("bad_preference", line)
            _check_message(output[0], result, line, weights=False)
            outputs.append(output[0])
        if not all(isinstance(m, dict) for m in messages):
            return None
        return [*messages, outputs[0]]

    def _figures(self, messages: list[dict], result: FileResult, line: int) -> None:
        """Per-example figures and the role warnings."""
        roles = {m.get("role") for m in messages}
        if not roles & {"system", "developer"}:
            result.add("missing_system", line)
        if "user" not in roles:
            result.add("missing_user", line)
        tokens = _size_check(messages, self.max_tokens, result, line)
        trained = sum(
            count_text(_text(m.get("content")) or "")
            for m in messages
            if m.get("role") == "assistant" and m.get("weight", 1) != 0
        )
        result.messages.append(len(messages))
        result.tokens.append(tokens)
        result.assistant_tokens.append(trained)
        result.billed_tokens += min(tokens, self.max_tokens)
