"""``afina chat`` (terminal chat) and ``afina ask`` (one turn, for scripts)."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from typing import Annotated

import typer
from rich.markup import escape

from chatbot.cli.common import console, err
from chatbot.cli.kb import build_index
from chatbot.db import store
from chatbot.errors import AfinaError, InputError
from chatbot.runtime import Runtime, index_exists
from chatbot.service import TurnResult, clean_text
from chatbot.settings import Settings, get_settings

_NOT_UTF8 = re.compile("[\udc80-\udcff]")  # how Python keeps undecodable bytes
LocaleOption = Annotated[str | None, typer.Option(help="Conversation language: en or es")]


def _prepare(settings: Settings) -> tuple[Runtime, int]:
    """Open the runtime, build the bundled index on first use, and get the CLI user."""
    runtime = Runtime.open(settings)
    if not index_exists(settings.index_dir):
        err.print("No knowledge-base index yet: building it from", settings.kb_path)
        build_index(settings)
    with runtime.sessions.begin() as session:
        user = store.ensure_user(session=session, username=settings.chat.cli_user)
        return runtime, user.id


def checked_text(text: str, settings: Settings) -> str:
    """The question as the service will take it; ``InputError`` before anything is stored.

    Bytes that are not UTF-8 reach Python as lone surrogates (from argv or a pipe)."""
    if _NOT_UTF8.search(text):
        raise InputError(
            "the question is not valid UTF-8 text: set a UTF-8 locale (e.g. LANG=C.UTF-8) "
            "or convert the input (e.g. iconv -f latin1 -t utf-8)"
        )
    return clean_text(text, settings.chat.max_message_chars)


def _print_sources(result: TurnResult) -> None:
    """Sources (or the hand-over) under an answer."""
    if result.error:
        return
    if result.meta.handoff:
        err.print("[yellow](handed over to a human agent)[/]")
    for source in result.meta.sources:
        err.print(f"[dim]  · {source.score:.2f}  {escape(source.title)}  ({escape(source.id)})[/]")


async def _chat(locale: str | None) -> None:
    settings = get_settings()
    runtime, user_id = await asyncio.to_thread(_prepare, settings)
    service = runtime.service
    await (await asyncio.to_thread(runtime.pool.resolve)).backend.warm()
    conversation: str | None = None  # started by the first accepted question
    interactive = sys.stdin.isatty()
    if interactive:
        console.print("[bold]Afina[/] — ask a question; /new starts over, /quit or Ctrl-D leaves.")
    try:
        while True:
            try:
                line = input("you> " if interactive else "")
            except EOFError:
                break
            command = line.strip()
            if command in ("/quit", "/exit"):
                break
            if command == "/new":
                conversation = None
                continue
            try:
                question = checked_text(line, settings)
            except AfinaError as exc:
                err.print(f"[red]{exc}[/]")
                continue
            if conversation is None:
                conversation = await service.start_conversation(user_id=user_id, locale=locale)
            reply = service.reply(conversation_id=conversation, text=question)
            console.print("[bold cyan]afina>[/] ", end="")
            async for chunk in reply:
                console.print(chunk, end="", markup=False, highlight=False)
            if reply.result.error:
                console.print(f"[red]{reply.result.error}[/]", end="")
            console.print()
            _print_sources(reply.result)
    finally:
        await runtime.aclose()


async def _ask(text: str, locale: str | None, as_json: bool) -> int:
    settings = get_settings()
    text = checked_text(text, settings)  # a rejected question leaves no empty conversation
    runtime, user_id = await asyncio.to_thread(_prepare, settings)
    try:
        conversation = await runtime.service.start_conversation(user_id=user_id, locale=locale)
        reply = runtime.service.reply(conversation_id=conversation, text=text)
        async for chunk in reply:
            if not as_json:
                console.print(chunk, end="", markup=False, highlight=False)
        result = reply.result
    finally:
        await runtime.aclose()
    if as_json:
        console.print_json(json.dumps(_as_dict(conversation, result)))
    elif result.error:
        err.print(f"[red]{result.error}[/]")
    else:
        console.print()
        _print_sources(result)
    return 1 if result.error else 0


def _as_dict(conversation: str, result: TurnResult) -> dict:
    """The turn as JSON for scripts."""
    return {
        "conversation_id": conversation,
        "message_id": result.reply_id,
        "answer": result.text,
        "error": result.error,
        "backend": result.backend_name,
        "handoff": result.meta.handoff,
        "sources": [s.to_dict() for s in result.meta.sources],
        "latency_ms": result.latency_ms,
    }


def chat(locale: LocaleOption = None) -> None:
    """Chat with Afina in the terminal (streams answers, shows sources)."""
    asyncio.run(_chat(locale))


def ask(
    text: Annotated[str, typer.Argument(help="The question")],
    locale: LocaleOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the turn as JSON")] = False,
) -> None:
    """Ask one question and print the answer (exit 1 if the backend failed)."""
    raise typer.Exit(asyncio.run(_ask(text, locale, as_json)))
