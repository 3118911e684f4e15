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
from typing import Any, Self

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


@dataclass(frozen=True)
class Facts:
    """What one example says by itself, wherever it sits: the rules it breaks (in order, with
    repeats), its figures, its prompt's and target's digests. ``Validator.apply`` adds them
    to a file's result at a line; an export computes them once per example, in memory.
    """

    rules: tuple[str, ...] = ()
    example: bool = True  # False: the line is not a JSON object (not counted as an example)
    figures: tuple[int, int, int] | None = None  # messages, tokens, assistant tokens
    prompt: bytes | None = None  # the user side, for split overlap
    target: bytes | None = None  # last question + last target, for duplicate targets

    def to_json(self) -> list[Any]:
        """A JSON-ready form (an export stages it beside the example)."""
        digests = [None if d is None else d.hex() for d in (self.prompt, self.target)]
        return [list(self.rules), self.example, self.figures, *digests]

    @classmethod
    def from_json(cls, data: list[Any]) -> Self:
        """Facts read back from ``to_json``'s form."""
        rules, example, figures, prompt, target = data
        return cls(
            tuple(rules),
            example,
            None if figures is None else (figures[0], figures[1], figures[2]),
            None if prompt is None else bytes.fromhex(prompt),
            None if target is None else bytes.fromhex(target),
        )


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


def _check_message(message: Any, rules: list[str], *, weights: bool) -> None:
    """Keys, role, content and weight of one message."""
    if not isinstance(message, dict):
        rules.append("missing_messages")
        return
    if not MESSAGE_KEYS.issuperset(message):
        rules.append("unknown_key")
    role = message.get("role")
    if role not in ROLES:
        rules.append("unknown_role")
    text = _text(message.get("content"))
    calls = role == "assistant" and (message.get("tool_calls") or message.get("function_call"))
    if not calls and (text is None or not text.strip()):
        rules.append("empty_content")
    if "weight" in message:
        weight = message["weight"]
        good = type(weight) is int and weight in (0, 1)
        if not (weights and good and role == "assistant"):
            rules.append("bad_weight")


class _Counts:
    """Token counts of recent texts: roles, the system prompt and an answer counted twice
    (in the example and as a target) are encoded once. Bounded: cleared when full."""

    def __init__(self, size: int = 4096):
        self.size = size
        self.known: dict[str, int] = {}

    def __call__(self, text: str) -> int:
        found = self.known.get(text)
        if found is None:
            if len(self.known) >= self.size:
                self.known.clear()
            found = self.known[text] = count_text(text)
        return found


class Validator:
    """Validates files one line at a time; remembers training prompts to find split overlap."""

    def __init__(self, max_tokens: int):
        self.max_tokens = max_tokens
        self.train_prompts: set[bytes] = set()
        self._count = _Counts()

    def validate(self, path: Path, kind: str = "train") -> FileResult:
        """Validate one file; a training file's prompts are remembered for later files."""
        if not path.is_file():
            raise InputError(f"no file {path}: give a JSONL file written by `afina export`")
        result = FileResult(str(path), kind)
        seen: set[bytes] = set()
        with path.open(encoding="utf-8") as lines:
            for number, raw in enumerate(lines, start=1):
                if raw.strip():
                    self.apply(self._parse(raw), number, result, seen)
        self.finish(result)
        return result

    def finish(self, result: FileResult) -> None:
        """The whole-file rules, once every line is in ``result``."""
        if result.kind == "train":
            if result.examples < MIN_EXAMPLES:
                result.add("too_few_examples", 0)
            elif result.examples < SUGGESTED_EXAMPLES:
                result.add("few_examples", 0)

    def _parse(self, raw: str) -> Facts:
        try:
            example = json.loads(raw)
        except json.JSONDecodeError:
            example = None
        return self.facts(example)

    def facts(self, example: Any) -> Facts:
        """What one example (a line's JSON value) says by itself."""
        if not isinstance(example, dict):
            return Facts(("invalid_json",), example=False)
        rules: list[str] = []
        if "messages" in example or "input" not in example:
            messages = self._chat(example, rules)
        else:
            messages = self._preference(example, rules)
        if messages is None:
            return Facts(tuple(rules))
        figures = self._figures(messages, rules)
        users = [_text(m.get("content")) or "" for m in messages if m.get("role") == "user"]
        targets = [m for m in messages if m.get("role") == "assistant" and m.get("weight") != 0]
        target = None
        if users and targets:
            target = _digest(users[-1], _text(targets[-1].get("content")) or "")
        return Facts(tuple(rules), True, figures, _digest(*users), target)

    def apply(self, facts: Facts, line: int, result: FileResult, seen: set[bytes]) -> None:
        """Add one example's facts to ``result`` at ``line``, with the rules across lines
        (split overlap with the training file, a repeated target within this file)."""
        for rule in facts.rules:
            result.add(rule, line)
        if not facts.example:
            return
        result.examples += 1
        if facts.figures is None:
            return
        messages, tokens, trained = facts.figures
        result.messages.append(messages)
        result.tokens.append(tokens)
        result.assistant_tokens.append(trained)
        result.billed_tokens += min(tokens, self.max_tokens)
        if facts.prompt is not None:
            if result.kind == "train":
                self.train_prompts.add(facts.prompt)
            elif facts.prompt in self.train_prompts:
                result.add("split_overlap", line)
        if facts.target is not None:
            if facts.target in seen:
                result.add("duplicate_target", line)
            seen.add(facts.target)

    def _chat(self, example: dict, rules: list[str]) -> list[dict] | None:
        """Rules for a chat example; its messages when they can be measured."""
        if set(example) - CHAT_KEYS:
            rules.append("unknown_key")
        messages = example.get("messages")
        if not isinstance(messages, list) or not messages:
            rules.append("missing_messages")
            return None
        for message in messages:
            _check_message(message, rules, weights=True)
        if not all(isinstance(m, dict) for m in messages):
            return None
        trained = [m for m in messages if m.get("role") == "assistant" and m.get("weight", 1) != 0]
        if not trained:
            rules.append("no_trained_assistant")
            return None
        return messages

    def _preference(self, example: dict, rules: list[str]) -> list[dict] | None:
        """Rules for a preference (DPO) example; prompt + preferred answer when measurable."""
        if set(example) - PREFERENCE_KEYS:
            rules.append("unknown_key")
        prompt = example.get("input")
        messages = prompt.get("messages") if isinstance(prompt, dict) else None
        if isinstance(prompt, dict) and set(prompt) - INPUT_KEYS:
            rules.append("unknown_key")
        if not isinstance(messages, list) or not messages:
            rules.append("missing_messages")
            return None
        for message in messages:
            _check_message(message, rules, weights=False)
        outputs = []
        for key in ("preferred_output", "non_preferred_output"):
            output = example.get(key)
            if not (isinstance(output, list) and len(output) == 1 and isinstance(output[0], dict)):
                rules.append("bad_preference")
                return None
            if output[0].get("role") != "assistant":
                rules.append("bad_preference")
            _check_message(output[0], rules, weights=False)
            outputs.append(output[0])
        if not all(isinstance(m, dict) for m in messages):
            return None
        return [*messages, outputs[0]]

    def _figures(self, messages: list[dict], rules: list[str]) -> tuple[int, int, int]:
        """Per-example figures (messages, tokens, assistant tokens) and the role and size
        warnings."""
        roles = {m.get("role") for m in messages}
        if not roles & {"system", "developer"}:
            rules.append("missing_system")
        if "user" not in roles:
            rules.append("missing_user")
        tokens = count_chat(messages, self._count)
        if tokens > self.max_tokens:
            last = max(i for i, m in enumerate(messages) if m.get("role") == "assistant")
            through_last = count_chat(messages[: last + 1], self._count)
            rules.append("too_long" if through_last > self.max_tokens else "truncated")
        trained = sum(
            self._count(_text(m.get("content")) or "")
            for m in messages
            if m.get("role") == "assistant" and m.get("weight", 1) != 0
        )
        return len(messages), tokens, trained
