"""Training examples from one stored conversation: chat fine-tuning and preference (DPO) format.

A correction replaces the assistant text it corrects; assistant turns that are not approved
stay as context with ``weight: 0`` (or drop the example); failed turns and the question that
got no answer are left out. The system message is the one the answering backend used
(``details["system_prompt"]``), else a stored system message, else the configured one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from chatbot.db.training_queries import StoredConversation, StoredMessage
from chatbot.training.filters import ExportFilters, is_approved
from chatbot.training.pii import spans as pii_spans
from chatbot.training.redact import Redactor

Format = Literal["chat", "dpo"]


@dataclass(frozen=True)
class ExampleOptions:
    """How a conversation becomes examples."""

    format: Format = "chat"
    per_turn: bool = False
    drop_unapproved: bool = False
    system_prompt: str = ""


@dataclass(frozen=True)
class _Turn:
    """A usable turn: its final text, and for assistant turns whether it is a target."""

    message: StoredMessage
    text: str
    target: bool


def redact_conversation(conversation: StoredConversation, redactor: Redactor) -> StoredConversation:
    """The conversation with message texts and corrections redacted (one placeholder map).

    Spans detected when a message was stored are applied first, then the regex layer
    catches what they missed (and is all there is for a text never checked).
    """
    messages = []
    changed = False
    for m in conversation.messages:
        content = redact_text(m.content, m.pii_spans, redactor)
        correction = m.correction
        if correction is not None:
            correction = redact_text(correction, m.correction_spans, redactor)
        if content != m.content or correction != m.correction:  # most texts hold nothing
            m = dataclasses.replace(m, content=content, correction=correction)
            changed = True
        messages.append(m)
    if not changed:
        return conversation
    return dataclasses.replace(conversation, messages=tuple(messages))


def redact_text(text: str, spans: list[dict[str, Any]] | None, redactor: Redactor) -> str:
    """``text`` with its stored spans replaced, then the regex layer applied."""
    if spans:
        text = pii_spans.apply(text, (pii_spans.Span.from_json(s) for s in spans), redactor)
    return redactor.redact(text)


def _turns(conversation: StoredConversation, filters: ExportFilters) -> list[_Turn]:
    """User and assistant turns in order; a failed answer takes its question with it."""
    turns: list[_Turn] = []
    for message in conversation.messages:
        if message.role == "system":
            continue
        if message.role == "assistant" and message.error is not None:
            if turns and turns[-1].message.role == "user":
                turns.pop()
            continue
        text = message.correction if message.correction is not None else message.content
        target = message.role == "assistant" and is_approved(message, filters)
        turns.append(_Turn(message, text, target))
    return turns


def system_prompt(conversation: StoredConversation, answer: StoredMessage, fallback: str) -> str:
    """The system message the answering backend used, else a stored one, else ``fallback``."""
    details = answer.details or {}
    prompt = details.get("system_prompt")
    if isinstance(prompt, str) and prompt.strip():
        return prompt
    for message in conversation.messages:
        if message.role == "system" and message.content.strip():
            return message.content
    return fallback


def _chat_messages(turns: list[_Turn], system: str, last_target: int) -> list[dict[str, Any]]:
    """Messages up to and including ``last_target``; only that slice's targets get weight 1."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    for turn in turns[: last_target + 1]:
        item: dict[str, Any] = {"role": turn.message.role, "content": turn.text}
        if turn.message.role == "assistant" and not turn.target:
            item["weight"] = 0
        messages.append(item)
    return messages


def build_examples(
    conversation: StoredConversation, filters: ExportFilters, options: ExampleOptions
) -> list[dict[str, Any]]:
    """The examples (JSON-ready dicts) one conversation yields; may be empty."""
    turns = _turns(conversation, filters)
    if options.format == "dpo":
        return _preference_examples(conversation, turns, options)
    targets = [i for i, t in enumerate(turns) if t.target]
    if not targets:
        return []
    ends = targets if options.per_turn else [targets[-1]]
    examples = []
    for end in ends:
        window = turns[: end + 1]
        unapproved = any(t.message.role == "assistant" and not t.target for t in window)
        if unapproved and options.drop_unapproved:
            continue
        system = system_prompt(conversation, turns[end].message, options.system_prompt)
        messages = _chat_messages(turns, system, end)
        if options.per_turn:  # earlier answers are context; only this turn is trained on
            for item in messages[:-1]:
                if item["role"] == "assistant":
                    item["weight"] = 0
        examples.append({"messages": messages})
    return examples


def _preference_examples(
    conversation: StoredConversation, turns: list[_Turn], options: ExampleOptions
) -> list[dict[str, Any]]:
    """One pair per corrected turn: prompt, preferred = correction, non-preferred = original."""
    examples = []
    for i, turn in enumerate(turns):
        message = turn.message
        if message.role != "assistant" or message.correction is None:
            continue
        if message.correction.strip() == message.content.strip():
            continue
        system = system_prompt(conversation, message, options.system_prompt)
        prompt = [{"role": "system", "content": system}] if system else []
        prompt += [{"role": t.message.role, "content": t.text} for t in turns[:i]]
        if not any(m["role"] == "user" for m in prompt):
            continue
        examples.append(
            {
                "input": {"messages": prompt},
                "preferred_output": [{"role": "assistant", "content": message.correction}],
                "non_preferred_output": [{"role": "assistant", "content": message.content}],
            }
        )
    return examples


def dedup_text(conversation: StoredConversation) -> str:
    """What near-duplicate detection compares: the user's side of the conversation."""
    return "\n".join(m.content for m in conversation.messages if m.role == "user")[:2000]
