"""Chat prompts under a token budget: system text, grounding sources, examples, conversation."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from backends.base import BackendError, Source, Turn
from backends.examples import Example
from backends.tokens import PER_MESSAGE, PER_REPLY, count_text

T = TypeVar("T")
LANGUAGE = {"en": "English", "es": "Spanish"}
GROUNDING_HEAD = (
    "Answer only from these help-centre sources and cite the ones you use like [1]. "
    "If they do not answer the question, say you will pass it to a human agent."
)
NO_SOURCES = "No help-centre source matches this question: say you will pass it to a human agent."
TOO_LONG = {
    "en": "This conversation is too long for the answer model; start a new chat or shorten it.",
    "es": "La conversación es demasiado larga para el modelo; empieza otra o acórtala.",
}


@dataclass
class Prompt:
    """The messages to send and what the budget kept or dropped."""

    messages: list[dict[str, str]]
    tokens: int
    sources: list[Source] = field(default_factory=list)
    examples: list[Example] = field(default_factory=list)
    turns_kept: int = 0
    turns_dropped: int = 0

    def report(self) -> dict[str, Any]:
        """Provenance about the prompt, stored with the answer."""
        return {
            "prompt_tokens_o200k": self.tokens,
            "examples_used": [e.id for e in self.examples],
            "turns_kept": self.turns_kept,
            "turns_dropped": self.turns_dropped,
        }


def source_line(number: int, source: Source) -> str:
    """One numbered grounding source as it appears in the system message."""
    return f"[{number}] {source.title}: {source.snippet}"


def build_prompt(
    *,
    system: str,
    turns: Sequence[Turn],
    budget: int,
    locale: str = "en",
    examples: Sequence[Example] = (),
    sources: Sequence[Source] | None = None,
) -> Prompt:
    """Fit system + question first, then sources, examples and older turns while they fit.

    ``sources=None`` means ungrounded; an empty list means grounded but nothing matched.
    """
    history = [t for t in turns if t.role in ("user", "assistant")]
    if not history or history[-1].role != "user":
        raise ValueError("the conversation must end with a user message")
    if locale in LANGUAGE:
        system = f"{system} Reply in {LANGUAGE[locale]}."
    fit = _Budget(budget, PER_REPLY + 2 * PER_MESSAGE + count_text(system))
    fit.used += count_text(history[-1].content)
    if fit.used > budget:
        raise BackendError(
            TOO_LONG.get(locale, TOO_LONG["en"]),
            retryable=False,
            detail=f"system prompt and question take {fit.used} tokens; prompt_budget is {budget}",
        )
    kept_sources: list[Source] = []
    if sources is not None:
        fit.used += count_text(GROUNDING_HEAD if sources else NO_SOURCES) + 2
        kept_sources = fit.take(sources, lambda s, i: count_text(source_line(i + 1, s)) + 1)
    kept_examples = fit.take(
        examples, lambda e, _: 2 * PER_MESSAGE + count_text(e.user) + count_text(e.assistant)
    )
    older = fit.take(history[-2::-1], lambda t, _: PER_MESSAGE + count_text(t.content))[::-1]
    messages = [{"role": "system", "content": _system_text(system, sources, kept_sources)}]
    for example in kept_examples:
        messages += [
            {"role": "user", "content": example.user},
            {"role": "assistant", "content": example.assistant},
        ]
    messages += [{"role": t.role, "content": t.content} for t in [*older, history[-1]]]
    return Prompt(
        messages=messages,
        tokens=fit.used,
        sources=kept_sources,
        examples=kept_examples,
        turns_kept=len(older) + 1,
        turns_dropped=len(history) - 1 - len(older),
    )


@dataclass
class _Budget:
    """Tokens allowed and used so far."""

    limit: int
    used: int

    def take(self, items: Sequence[T], cost: Callable[[T, int], int]) -> list[T]:
        """The leading ``items`` that still fit, in order (stops at the first that does not)."""
        taken: list[T] = []
        for item in items:
            tokens = cost(item, len(taken))
            if self.used + tokens > self.limit:
                break
            taken.append(item)
            self.used += tokens
        return taken


def _system_text(system: str, grounded: Sequence[Source] | None, kept: list[Source]) -> str:
    """The system message, with the numbered sources when grounded."""
    if grounded is None:
        return system
    if not kept:
        return f"{system}\n\n{NO_SOURCES}"
    lines = "\n".join(source_line(i, s) for i, s in enumerate(kept, start=1))
    return f"{system}\n\n{GROUNDING_HEAD}\n{lines}"
