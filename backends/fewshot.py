"""The ``fewshot`` backend: a base chat model prompted with a versioned set of example exchanges."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from backends.base import Conversation
from backends.examples import BUNDLED_EXAMPLES, Example, ExampleSelector, ExampleSet
from backends.llm_backend import COMMON_KEYS, ChatModelBackend, LLMOptions, check_keys
from backends.openai_chat import Endpoint

DEFAULT_SYSTEM = (
    "You are a friendly customer-support assistant. Answer briefly, following the examples."
)
SELECTIONS = ("locale", "nearest")
# Examples per prompt unless the config says otherwise (each costs prompt tokens and time).
DEFAULT_K = 4


class FewShotBackend(ChatModelBackend):
    """System prompt + k examples (in the chat's locale, or the nearest) + the conversation."""

    kind = "fewshot"

    def __init__(self, endpoint: Endpoint, options: LLMOptions, selector: ExampleSelector, **kw):
        super().__init__(endpoint, options, **kw)
        self.selector = selector

    @classmethod
    def from_config(cls, config: Mapping[str, Any], **kw: Any) -> FewShotBackend:
        """Build from a stored config: endpoint, ``examples`` file, ``select`` and ``k``."""
        check_keys(cls.kind, config, COMMON_KEYS | {"examples", "select", "k"})
        path = Path(config.get("examples") or BUNDLED_EXAMPLES)
        examples = ExampleSet.load(path)
        select = str(config.get("select", "locale"))
        if select not in SELECTIONS:
            raise ValueError(f"select must be one of {', '.join(SELECTIONS)}, not {select!r}")
        k = int(config.get("k") or DEFAULT_K)
        options = LLMOptions.from_config(config, examples.system_prompt or DEFAULT_SYSTEM)
        backend = cls(Endpoint.from_config(config), options, ExampleSelector(examples, k=k), **kw)
        if select == "nearest":
            backend.selector = ExampleSelector(examples, k=k, embedder=backend.embedder)
        return backend

    def examples_for(self, conversation: Conversation) -> list[Example]:
        """The examples for this question, most useful first (blocking: may embed)."""
        return self.selector.select(conversation.last_user_text, conversation.locale)

    def provenance(self) -> dict[str, Any]:
        """The example set's name, version and digest, and how examples were chosen."""
        select = "nearest" if self.selector.nearest else "locale"
        return {
            **super().provenance(),
            "example_set": self.selector.examples.provenance(),
            "select": select,
        }
