"""``afina backends``: list, register and switch the answering backend."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from backends import registry
from chatbot.backend_pool import ACTIVE_BACKEND, LLM_KINDS, kind_defaults, use_backend
from chatbot.cli.common import console, open_runtime
from chatbot.db import store
from chatbot.errors import InputError
from chatbot.settings import Settings
from chatbot.training.finetune.platforms import shutdown_flag

app = typer.Typer(help="Named answer backends.", no_args_is_help=True)


@app.command("list")
def list_command() -> None:
    """List registered backends; the active one is marked, a retiring model is flagged."""
    runtime = open_runtime()
    table = Table("", "name", "kind", "config")
    notices: list[str] = []
    with runtime.sessions() as session:
        active = store.get_setting(session=session, key=ACTIVE_BACKEND)
        for record in store.list_backends(session=session):
            mark = "*" if record.name == active else ""
            notice = _notice(runtime.settings, record.kind, record.config or {})
            if notice:
                mark, notices = mark + "!", [*notices, f"! {record.name}: {notice}"]
            table.add_row(mark, record.name, record.kind, json.dumps(record.config))
    console.print(table)
    for line in notices:
        console.print(line, style="red", markup=False, highlight=False)


def _notice(settings: Settings, kind: str, config: dict[str, Any]) -> str:
    """A flag when the backend's model is past (or near) an announced shutdown."""
    if kind not in LLM_KINDS:
        return ""
    full = {**kind_defaults(settings, kind), **config}
    flag = shutdown_flag(str(full.get("model") or ""), base_url=full.get("base_url") or None)
    return flag or ""


@app.command()
def use(name: Annotated[str, typer.Argument(help="A registered backend")]) -> None:
    """Make ``name`` the backend that answers every user's next message."""
    runtime = open_runtime()
    with runtime.sessions.begin() as session:
        use_backend(session=session, name=name)
    console.print(f"Active backend: {name}.")


@app.command()
def add(
    name: Annotated[str, typer.Argument(help="A new name, e.g. faq-strict")],
    kind: Annotated[str, typer.Option(help=f"One of: {', '.join(sorted(registry.KINDS))}")],
    config: Annotated[str, typer.Option(help="JSON object, e.g. '{\"min_score\": 0.6}'")] = "{}",
    model: Annotated[str | None, typer.Option(help="LLM kinds: model id, e.g. ft:...")] = None,
    base_url: Annotated[str | None, typer.Option(help="LLM kinds: OpenAI-compatible URL")] = None,
    api_key_env: Annotated[
        str | None, typer.Option(help="LLM kinds: NAME of the variable holding the API key")
    ] = None,
) -> None:
    """Register (or replace) a named backend; the config is checked before it is stored."""
    if kind not in registry.KINDS:
        raise InputError(f"unknown kind {kind!r}; use one of: {', '.join(sorted(registry.KINDS))}")
    parsed = _parse_config(config)
    flags = {"model": model, "base_url": base_url, "api_key_env": api_key_env}
    parsed.update({key: value for key, value in flags.items() if value is not None})
    runtime = open_runtime()
    _check_config(runtime.settings, kind, parsed)
    with runtime.sessions.begin() as session:
        store.put_backend(session=session, name=name, kind=kind, config=parsed)
    console.print(f"Registered backend {name!r} ({kind}).")


def _parse_config(config: str) -> dict[str, Any]:
    """The --config JSON object; keys never go in it."""
    try:
        parsed = json.loads(config)
    except json.JSONDecodeError as exc:
        raise InputError(f"--config is not valid JSON: {exc.msg}") from None
    if not isinstance(parsed, dict):
        raise InputError("--config must be a JSON object")
    secrets = sorted(registry.SECRET_KEYS & set(parsed))
    if secrets:
        raise InputError(
            f"--config must not hold {', '.join(secrets)}: keys are never stored. Put the key in "
            "an environment variable and give its name: --api-key-env OPENAI_API_KEY"
        )
    return parsed


def _check_config(settings: Settings, kind: str, config: dict[str, Any]) -> None:
    """Build the backend once (no network, no model load) so a bad config fails here."""
    try:
        registry.build(kind, {**kind_defaults(settings, kind), **config})
    except (ValueError, TypeError) as exc:
        raise InputError(f"invalid {kind} config: {exc}") from None
