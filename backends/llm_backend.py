"""What the few-shot and fine-tuned backends share: config, grounding, prompt, streaming."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from backends.base import Backend, BackendError, Conversation, ReplyMeta, Source
from backends.examples import Example
from backends.openai_chat import ChatClient, Endpoint
from backends.prompting import build_prompt

log = logging.getLogger(__name__)
COMMON_KEYS = {
    "base_url",
    "model",
    "api_key",
    "api_key_env",
    "timeout_s",
    "max_retries",
    "max_tokens",
    "temperature",
    "prompt_budget",
    "system_prompt",
    "grounded",
    "retrieval",
}


@dataclass(frozen=True)
class LLMOptions:
    """How a chat-model backend prompts: answer length, temperature, budget, grounding."""

    system_prompt: str
    max_tokens: int = 256
    temperature: float = 0.3
    prompt_budget: int = 1500
    grounded: bool = False
    retrieval: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: Mapping[str, Any], default_system: str) -> LLMOptions:
        """Read the prompting options; grounding needs a ``retrieval`` config with an index."""
        grounded = bool(config.get("grounded", False))
        retrieval = dict(config.get("retrieval") or {})
        if grounded and "index_dir" not in retrieval:
            raise ValueError("grounded mode needs 'retrieval': {'index_dir': ...}")
        return cls(
            system_prompt=str(config.get("system_prompt") or default_system),
            max_tokens=int(config.get("max_tokens", 256)),
            temperature=float(config.get("temperature", 0.3)),
            prompt_budget=int(config.get("prompt_budget", 1500)),
            grounded=grounded,
            retrieval=retrieval,
        )


def check_keys(kind: str, config: Mapping[str, Any], allowed: set[str]) -> None:
    """Reject unknown config keys, naming the known ones (a typo must not pass silently)."""
    unknown = sorted(set(config) - allowed)
    if unknown:
        raise ValueError(
            f"unknown {kind} config key(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(allowed - {'api_key'}))}"
        )


class ChatModelBackend(Backend):
    """A chat model behind an OpenAI-compatible endpoint; subclasses choose the examples."""

    kind: ClassVar[str]

    def __init__(
        self,
        endpoint: Endpoint,
        options: LLMOptions,
        *,
        embedder: Any = None,
        http_client: Any = None,
    ):
        self.endpoint = endpoint
        self.options = options
        self.client = ChatClient(endpoint, http_client=http_client)
        self._embedder = embedder
        self._retriever: Any = None
        self._lock = threading.Lock()

    # hooks for subclasses ----------------------------------------------------------------------
    def examples_for(self, conversation: Conversation) -> list[Example]:
        """Examples to put in the prompt, most useful first (blocking); none by default."""
        return []

    def extra_body(self) -> dict[str, Any] | None:
        """Endpoint-specific request fields (none by default)."""
        return None

    def provenance(self) -> dict[str, Any]:
        """Backend-specific facts stored with every answer."""
        return {
            "kind": self.kind,
            "base_url": self.endpoint.base_url,
            "system_prompt": self.options.system_prompt,
        }

    # shared machinery --------------------------------------------------------------------------
    def embedder(self) -> Any:
        """The retrieval embedder (shared in the process), loaded on first use (blocking)."""
        with self._lock:
            if self._embedder is None:
                from backends.retrieval.embedder import load_embedder

                r = self.options.retrieval
                self._embedder = load_embedder(
                    str(r.get("model", "")),
                    allow_download=bool(r.get("allow_download", False)),
                    model_cache=str(r.get("model_cache", "")),
                )
            return self._embedder

    async def ground(self, conversation: Conversation) -> tuple[list[Source], str | None]:
        """The retrieval backend's top sources for the question (none when it would hand over)."""
        if self._retriever is None:
            from backends.retrieval.backend import RetrievalBackend

            self._retriever = RetrievalBackend.from_config(self.options.retrieval)
        found = ReplyMeta()
        async for _ in self._retriever.stream(conversation, found):
            pass  # only the sources matter here, not retrieval's own answer
        return ([] if found.handoff else found.sources), found.index_version

    async def stream(self, conversation: Conversation, meta: ReplyMeta) -> AsyncIterator[str]:
        """Build the prompt under the token budget, then stream the model's answer."""
        sources: list[Source] | None = None
        meta.details.update(self.provenance())
        if self.options.grounded:
            try:
                sources, meta.index_version = await self.ground(conversation)
            except BackendError as exc:
                log.warning("grounding unavailable, answering ungrounded: %s", exc.detail)
                meta.details["grounding_error"] = exc.detail
        examples = await asyncio.to_thread(self.examples_for, conversation)
        prompt = build_prompt(
            system=self.options.system_prompt,
            turns=conversation.turns,
            budget=self.options.prompt_budget,
            locale=conversation.locale,
            examples=examples,
            sources=sources,
        )
        meta.details.update(prompt.report())
        if sources is not None:
            meta.sources = prompt.sources
            meta.details["grounded"] = [s.id for s in prompt.sources]
        async for text in self.client.stream(
            prompt.messages,
            meta,
            max_tokens=self.options.max_tokens,
            temperature=self.options.temperature,
            locale=conversation.locale,
            extra_body=self.extra_body(),
        ):
            yield text

    async def warm(self) -> None:
        """Load what grounding needs (index, embedder) before the first question."""
        if self.options.grounded:
            from backends.retrieval.backend import RetrievalBackend

            if self._retriever is None:
                self._retriever = RetrievalBackend.from_config(self.options.retrieval)
            await self._retriever.warm()

    async def aclose(self) -> None:
        """Close the endpoint's connections."""
        await self.client.aclose()
