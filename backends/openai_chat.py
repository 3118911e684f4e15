"""One streaming client for any OpenAI-compatible chat endpoint (OpenAI, vLLM, llama.cpp, ...)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import openai

from backends.base import BackendError, ReplyMeta

log = logging.getLogger(__name__)
# Sent when the endpoint needs no key (a local server): the SDK insists on some key, and
# passing one keeps it from reading OPENAI_API_KEY from the environment on its own.
NO_KEY = "no-key-needed"

MESSAGES: dict[str, dict[str, str]] = {
    "unreachable": {
        "en": "The answer service can't be reached right now. Please try again in a moment.",
        "es": "No se puede contactar con el servicio de respuestas. Inténtalo de nuevo luego.",
    },
    "timeout": {
        "en": "The answer service took too long to reply. Please try again in a moment.",
        "es": "El servicio de respuestas tardó demasiado. Inténtalo de nuevo en un momento.",
    },
    "auth": {
        "en": "The answer service refused Afina's credentials; an administrator must check them.",
        "es": "El servicio de respuestas rechazó las credenciales; un administrador las revisará.",
    },
    "model": {
        "en": "The configured answer model is not available; an administrator must check it.",
        "es": "El modelo de respuestas no está disponible; un administrador debe revisarlo.",
    },
    "busy": {
        "en": "The answer service is busy right now. Please try again in a moment.",
        "es": "El servicio de respuestas está ocupado. Inténtalo de nuevo en un momento.",
    },
    "quota": {
        "en": "The answer service's quota is used up; an administrator must check the account.",
        "es": "Se agotó la cuota del servicio de respuestas; un administrador revisará la cuenta.",
    },
    "upstream": {
        "en": "The answer service had a problem. Please try again in a moment.",
        "es": "El servicio de respuestas tuvo un problema. Inténtalo de nuevo en un momento.",
    },
    "rejected": {
        "en": "The answer service could not handle this question; try rephrasing it.",
        "es": "El servicio de respuestas no pudo procesar la pregunta; prueba a reformularla.",
    },
    "empty": {
        "en": "The answer service returned an empty answer. Please try again.",
        "es": "El servicio de respuestas devolvió una respuesta vacía. Inténtalo de nuevo.",
    },
}


def message(key: str, locale: str) -> str:
    """A chat-fit message in ``locale`` (English when the locale is unknown)."""
    texts = MESSAGES[key]
    return texts.get(locale, texts["en"])


@dataclass(frozen=True)
class Endpoint:
    """Where and how to call a chat model; ``api_key`` is the value, passed in, never stored."""

    base_url: str
    model: str
    api_key: str | None = None
    api_key_env: str = ""
    timeout_s: float = 30.0
    max_retries: int = 2

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Endpoint:
        """Read ``base_url``, ``model`` (required) and the optional client settings."""
        missing = [key for key in ("base_url", "model") if not config.get(key)]
        if missing:
            raise ValueError(f"LLM backend config needs {' and '.join(map(repr, missing))}")
        return cls(
            base_url=str(config["base_url"]).rstrip("/"),
            model=str(config["model"]),
            api_key=config.get("api_key") or None,
            api_key_env=str(config.get("api_key_env") or ""),
            timeout_s=float(config.get("timeout_s", 30.0)),
            max_retries=int(config.get("max_retries", 2)),
        )


class ChatClient:
    """Streams chat completions with usage; every upstream failure becomes ``BackendError``."""

    def __init__(self, endpoint: Endpoint, *, http_client: Any = None):
        self.endpoint = endpoint
        self._http_client = http_client
        self._client: openai.AsyncOpenAI | None = None

    def _sdk(self, locale: str) -> openai.AsyncOpenAI:
        """The SDK client, made on first use (a named but unset key variable is an error)."""
        e = self.endpoint
        if e.api_key_env and not e.api_key:
            raise BackendError(
                message("auth", locale),
                retryable=False,
                detail=f"no API key: set the environment variable {e.api_key_env} "
                f"(the backend's api_key_env) for {e.base_url}",
            )
        if self._client is None:
            self._client = openai.AsyncOpenAI(
                base_url=e.base_url,
                api_key=e.api_key or NO_KEY,
                timeout=e.timeout_s,
                max_retries=e.max_retries,
                http_client=self._http_client,
            )
        return self._client

    async def stream(
        self,
        messages: list[dict[str, str]],
        meta: ReplyMeta,
        *,
        max_tokens: int,
        temperature: float,
        locale: str = "en",
        extra_body: Mapping[str, Any] | None = None,
    ) -> AsyncIterator[str]:
        """Yield the answer's text; record model, token usage and finish reason on ``meta``.

        ``extra_body``: endpoint-specific request fields (llama.cpp's per-request ``lora``).
        """
        client = self._sdk(locale)
        meta.model = self.endpoint.model
        produced = False
        try:
            stream = await client.chat.completions.create(  # type: ignore[call-overload]
                model=self.endpoint.model,
                messages=messages,  # plain role/content dicts
                max_tokens=max_tokens,
                temperature=temperature,
                stream=True,
                stream_options={"include_usage": True},
                extra_body=dict(extra_body) if extra_body else None,
            )
            async for chunk in stream:
                if chunk.model:
                    meta.model = chunk.model
                if chunk.usage is not None:
                    meta.input_tokens = chunk.usage.prompt_tokens
                    meta.output_tokens = chunk.usage.completion_tokens
                for choice in chunk.choices:
                    if choice.finish_reason:
                        meta.details["finish_reason"] = choice.finish_reason
                    if choice.delta.content:
                        produced = True
                        yield choice.delta.content
        except openai.APIError as exc:
            raise backend_error(exc, self.endpoint, locale) from exc
        if not produced:
            raise BackendError(
                message("empty", locale), retryable=True, detail=f"empty answer from {meta.model}"
            )

    async def aclose(self) -> None:
        """Close the SDK's HTTP connections."""
        if self._client is not None:
            await self._client.close()
            self._client = None


def backend_error(exc: openai.APIError, endpoint: Endpoint, locale: str) -> BackendError:
    """Translate an SDK error into a chat-fit ``BackendError`` whose detail names the fix."""
    where = f"{endpoint.base_url} (model {endpoint.model!r})"
    if isinstance(exc, openai.APITimeoutError):
        key, retry, fix = "timeout", True, f"no answer within {endpoint.timeout_s:g}s from {where}"
    elif isinstance(exc, openai.APIConnectionError):
        key, retry, fix = "unreachable", True, f"cannot connect to {where}: is the server running?"
    elif isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
        hint = endpoint.api_key_env or "api_key_env (no key variable is configured)"
        key, retry, fix = "auth", False, f"{where} rejected the key: check {hint}"
    elif isinstance(exc, openai.NotFoundError):
        key, retry, fix = "model", False, f"{where}: model not found; check the backend's model"
    elif isinstance(exc, openai.RateLimitError):
        quota = getattr(exc, "code", None) == "insufficient_quota"
        key, retry = ("quota", False) if quota else ("busy", True)
        fix = f"{where} is rate limiting" + (" (quota used up: check billing)" if quota else "")
    elif isinstance(exc, openai.InternalServerError):
        key, retry, fix = "upstream", True, f"{where} failed with a server error"
    elif isinstance(exc, openai.APIStatusError):
        key, retry, fix = "rejected", False, f"{where} rejected the request"
    else:
        key, retry, fix = "upstream", True, f"{where} sent a broken stream"
    status = getattr(exc, "status_code", None)
    detail = f"{type(exc).__name__}{f' {status}' if status else ''}: {fix} ({exc})"
    return BackendError(message(key, locale), retryable=retry, detail=detail)
