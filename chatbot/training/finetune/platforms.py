"""Announced platform changes (fine-tuning stops, model shutdowns) as a table, and checks on it.

When a provider announces a change, add a row to ``CHANGES``; no code changes. A row applies to
jobs and backends that talk to one of its ``hosts`` (another OpenAI-compatible provider reached
with ``--base-url`` is not affected by OpenAI's dates) and whose model is in one of its
``families`` (``"*"``: every model; a fine-tune ``ft:<base>:...`` belongs to its base's family).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from urllib.parse import urlparse

from chatbot.errors import InputError

OPENAI_BASE_URL = "https://api.openai.com/v1"
# How many days ahead of a date `finetune start` warns and `backends list` flags.
NOTICE_DAYS = 60
ALTERNATIVE = (
    "train locally instead (afina finetune start --provider local), or use another "
    "OpenAI-compatible provider's jobs API (--provider openai --base-url URL)"
)


@dataclass(frozen=True)
class PlatformChange:
    """One announced change: from ``new_jobs_stop`` no new jobs, from ``shutdown`` no answers."""

    provider: str
    hosts: tuple[str, ...]
    families: tuple[str, ...]
    new_jobs_stop: date | None
    shutdown: date | None
    alternative: str


CHANGES: tuple[PlatformChange, ...] = (
    PlatformChange(
        provider="openai",
        hosts=("api.openai.com",),
        families=("*",),
        new_jobs_stop=date(2027, 1, 6),
        shutdown=None,
        alternative=ALTERNATIVE,
    ),
    PlatformChange(
        provider="openai",
        hosts=("api.openai.com",),
        families=("gpt-4o", "gpt-4.1"),
        new_jobs_stop=date(2027, 1, 6),
        shutdown=date(2027, 1, 14),
        alternative=ALTERNATIVE,
    ),
)


def today_utc() -> date:
    """Today's date in UTC (the dates in the table are UTC days)."""
    return datetime.now(UTC).date()


def base_of(model: str) -> str:
    """The base model of a fine-tune id (``ft:gpt-4o-mini-2024-07-18:org:x:id`` -> the base)."""
    if model.startswith("ft:"):
        return model[3:].split(":", 1)[0]
    return model


def in_family(model: str, family: str) -> bool:
    """Whether ``model`` (or the base of a fine-tune) belongs to ``family`` (a name prefix)."""
    if family == "*":
        return True
    base = base_of(model)
    return base == family or base.startswith(family + "-")


def host_of(base_url: str | None) -> str:
    """The host a provider is reached at; no URL means OpenAI's own API."""
    return (urlparse(base_url or OPENAI_BASE_URL).hostname or "").lower()


def changes_for(
    model: str, *, provider: str = "openai", base_url: str | None = None
) -> list[PlatformChange]:
    """The table's rows that apply to ``model`` served by ``provider`` at ``base_url``."""
    host = host_of(base_url)
    return [
        c
        for c in CHANGES
        if c.provider == provider
        and host in c.hosts
        and any(in_family(model, f) for f in c.families)
    ]


def check_start(
    provider: str, base_model: str, today: date | None = None, *, base_url: str | None = None
) -> str | None:
    """A warning before a new job on ``base_model``, or ``InputError`` once it can't run."""
    today = today or today_utc()
    warnings = []
    for change in changes_for(base_model, provider=provider, base_url=base_url):
        where = f"{provider} ({host_of(base_url)})"
        if change.new_jobs_stop and today >= change.new_jobs_stop:
            raise InputError(
                f"{where} stopped new fine-tuning jobs on {change.new_jobs_stop}: "
                f"{change.alternative}"
            )
        if change.shutdown and today >= change.shutdown:
            raise InputError(
                f"{where} shut down {base_of(base_model)} and its fine-tunes on "
                f"{change.shutdown}: {change.alternative}"
            )
        if change.new_jobs_stop and (change.new_jobs_stop - today).days <= NOTICE_DAYS:
            days = (change.new_jobs_stop - today).days
            warnings.append(
                f"{where} stops new fine-tuning jobs on {change.new_jobs_stop} (in {days} days)"
            )
        if change.shutdown and (change.shutdown - today).days <= NOTICE_DAYS:
            days = (change.shutdown - today).days
            warnings.append(
                f"a fine-tune of {base_of(base_model)} stops answering on {change.shutdown} "
                f"(in {days} days)"
            )
    if not warnings:
        return None
    return "; ".join(dict.fromkeys(warnings)) + f". Alternatives: {ALTERNATIVE}."


def shutdown_flag(
    model: str, today: date | None = None, *, base_url: str | None = None
) -> str | None:
    """A short flag for a backend whose model is shut down (or soon will be); else None."""
    today = today or today_utc()
    for change in changes_for(model, base_url=base_url):
        if change.shutdown is None:
            continue
        days = (change.shutdown - today).days
        fix = f"switch with 'afina backends use NAME'; to re-train, {change.alternative}"
        if days <= 0:
            return f"model {model} was shut down on {change.shutdown}: {fix}"
        if days <= NOTICE_DAYS:
            return f"model {model} shuts down on {change.shutdown} (in {days} days): {fix}"
    return None
