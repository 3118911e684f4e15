"""The ``finetuned`` backend: a fine-tuned model (OpenAI ``ft:...``, local model or LoRA)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from backends.base import BackendError
from backends.llm_backend import COMMON_KEYS, ChatModelBackend, LLMOptions, check_keys
from backends.openai_chat import Endpoint, message

DEFAULT_SYSTEM = "You are Afina, a customer-support assistant. Answer briefly."
# ``adapter``: a LoRA adapter GGUF served next to its base model; ``lora_id``: its id on that
# server (set by `afina llm serve`), sent per request as llama.cpp's ``lora`` field.
# ``model_file``: a whole fine-tuned GGUF on its own server; ``served``: set by `afina llm serve`.
KEYS = COMMON_KEYS | {"adapter", "lora_id", "model_file", "served"}


class FineTunedBackend(ChatModelBackend):
    """A short system prompt and the conversation: the model learned the rest in training."""

    kind = "finetuned"

    def __init__(
        self,
        *args: Any,
        adapter: str = "",
        lora_id: int | None = None,
        model_file: str = "",
        served: bool = False,
        **kw: Any,
    ):
        super().__init__(*args, **kw)
        self.adapter, self.lora_id = adapter, lora_id
        self.model_file, self.served = model_file, served

    @classmethod
    def from_config(cls, config: Mapping[str, Any], **kw: Any) -> FineTunedBackend:
        """Build from a stored config: endpoint and model id, optional system prompt and LoRA."""
        check_keys(cls.kind, config, KEYS)
        lora_id = config.get("lora_id")
        return cls(
            Endpoint.from_config(config),
            LLMOptions.from_config(config, DEFAULT_SYSTEM),
            adapter=str(config.get("adapter") or ""),
            lora_id=None if lora_id is None else int(lora_id),
            model_file=str(config.get("model_file") or ""),
            served=bool(config.get("served", False)),
            **kw,
        )

    def extra_body(self) -> dict[str, Any] | None:
        """Switch the server's LoRA adapter on for this request only (others stay at 0)."""
        if self.lora_id is not None:
            return {"lora": [{"id": self.lora_id, "scale": 1.0}]}
        if self.adapter or (self.model_file and not self.served):
            raise BackendError(
                message("model", "en"),
                retryable=False,
                detail=f"the fine-tune {self.adapter or self.model_file} is not loaded: "
                "(re)start `afina llm serve`, which loads registered local fine-tunes",
            )
        return None

    def provenance(self) -> dict[str, Any]:
        """The fine-tuned model id (also in ``messages.model``), the endpoint and the adapter."""
        extra = {"adapter": self.adapter, "lora_id": self.lora_id} if self.adapter else {}
        extra |= {"model_file": self.model_file} if self.model_file else {}
        return {**super().provenance(), "fine_tuned_model": self.endpoint.model, **extra}
