"""What went wrong with a remote fine-tuning job, in words that name who must act and how."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import openai

from chatbot.errors import AfinaError


class RemoteJobError(AfinaError):
    """A remote fine-tuning job failed; the message (also stored on the job) names the fix."""


@dataclass(frozen=True)
class Where:
    """The provider a job talks to, for messages: URL, base model, key variable, retries."""

    base_url: str
    model: str
    api_key_env: str
    timeout_s: float
    max_retries: int


def provider_message(exc: openai.APIError) -> str:
    """The provider's own explanation (its error body's ``message``), else the SDK's text."""
    body: Any = exc.body
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return exc.message


def explain(exc: openai.APIError, *, stage: str, where: Where, file: str | None = None) -> str:
    """One sentence for an SDK error raised while ``stage`` (upload, create, poll, cancel)."""
    at, said = where.base_url, provider_message(exc)
    status = getattr(exc, "status_code", None)
    if isinstance(exc, openai.APITimeoutError):
        return (
            f"no answer from {at} within {where.timeout_s:g}s: check --base-url and the "
            "network, or raise AFINA_LLM_TIMEOUT_S"
        )
    if isinstance(exc, openai.APIConnectionError):
        return f"cannot connect to {at}: check --base-url and the network"
    if isinstance(exc, openai.AuthenticationError):
        variable = where.api_key_env or "(no variable: give one with --api-key-env)"
        return (
            f"{at} rejected the API key (401) from the environment variable {variable}: "
            "check its value, or name another variable with --api-key-env"
        )
    if isinstance(exc, openai.PermissionDeniedError):
        return f"{at} refused access (403): {said}; check the account may fine-tune {where.model}"
    if isinstance(exc, openai.RateLimitError):
        if exc.code == "insufficient_quota":
            return f"{at}: the account's quota is used up (429): check billing, then start again"
        return (
            f"{at} is rate limiting (429) and still refused after {where.max_retries} retries: "
            "wait a few minutes and start the job again (or raise AFINA_LLM_MAX_RETRIES)"
        )
    if stage == "upload" and isinstance(
        exc, openai.BadRequestError | openai.UnprocessableEntityError
    ):
        return (
            f"{at} rejected {file} as fine-tuning data ({status}): {said}. Check the export "
            "with 'afina export validate FOLDER' and export again"
        )
    if stage == "create" and isinstance(exc, openai.NotFoundError):
        return (
            f"{at} has no model {where.model!r} to fine-tune (404): {said}; check --base-model "
            "against the provider's fine-tunable models"
        )
    if stage == "create" and isinstance(exc, openai.BadRequestError):
        return (
            f"{at} refused the job (400): {said}; check --base-model, --suffix and the "
            "hyperparameters"
        )
    if isinstance(exc, openai.InternalServerError):
        return (
            f"{at} failed with a server error ({status}) after {where.max_retries} retries: "
            "try again later"
        )
    return f"{at} answered {status or 'an error'} while {stage}: {said}"


def job_failed(remote: Any, where: Where) -> str:
    """The message for a job the provider reports as ``failed`` (its ``error`` object)."""
    error = remote.error
    said = error.message if error is not None else "no reason given"
    code = f" (code {error.code}" + (f", param {error.param})" if error.param else ")")
    code = code if error is not None and error.code else ""
    data = error is not None and (error.param or "").endswith("_file")
    hint = (
        "check the export with 'afina export validate FOLDER' and export again"
        if data or "file" in (error.code if error is not None else "")
        else f"see 'afina finetune events ID' for the provider's log of job {remote.id}"
    )
    return f"{where.base_url} job {remote.id} failed: {said}{code}; {hint}"
