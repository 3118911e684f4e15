"""The ``finetuned`` backend: a fine-tuned model (OpenAI ``ft:...``, local model or LoRA)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from backends.llm_backend import COMMON_KEYS, ChatModelBackend, LLMOptions, check_keys
from backends.openai_chat import Endpoint

DEFAULT_SYSTEM = "You are Afina, a customer-support assistant. Answer briefly."


class FineTunedBackend(ChatModelBackend):
    """A short system prompt and the conversation: the model learned the rest in training."""

    kind = "finetuned"

    @classmethod
    def from_config(cls, config: Mapping[str, Any], **kw: Any) -> FineTunedBackend:
        """Build from a stored config: endpoint and model id, optional system prompt."""
        check_keys(cls.kind, config, COMMON_KEYS)
        return cls(
            Endpoint.from_config(config), LLMOptions.from_config(config, DEFAULT_SYSTEM), **kw
        )

    def provenance(self) -> dict[str, Any]:
        """The fine-tuned model id (also in ``messages.model``) and the endpoint."""
        return {**super().provenance(), "fine_tuned_model": self.endpoint.model}
