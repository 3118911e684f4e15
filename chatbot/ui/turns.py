"""One browser turn around ChatService's stream: the checks before it, what is shown after it.

``chatbot/ui/app.py``'s ``on_message`` calls ``begin``, streams the reply's chunks into the
answer, then calls ``finish``. Every write goes through ChatService and
``chatbot.conversations``; this module only translates for the browser.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import chainlit as cl

from chatbot import conversations
from chatbot.db.session import outage
from chatbot.errors import InputError, NotFoundError
from chatbot.journal import describe
from chatbot.runtime import Runtime
from chatbot.service import Reply, TurnResult, clean_text
from chatbot.ui import state
from chatbot.ui.auth import LoginUser
from chatbot.ui.datalayer import ASSISTANT, run_db
from chatbot.ui.render import (
    answer_markdown,
    correction_element,
    fallback_notice,
    retrieval_summary,
)
from chatbot.ui.texts import locale_of, t

# what chatbot/ui/public/afina.js listens for: the chat's address becomes /chat/thread/<id>
THREAD_MESSAGE = "thread"
# the (thread, user) this browser session already opened: later turns skip that transaction
# (a conversation deleted meanwhile is still refused: storing the question needs it)
OPENED = "afina_opened_thread"


@dataclass
class Turn:
    """A turn under way: the reply to stream, and what is shown around it."""

    reply: Reply
    reply_id: str
    locale: str
    search: cl.Step


async def warn(locale: str, key: str, **values: object) -> None:
    """A short notice in the chat, in the user's language."""
    await cl.Message(content=f"⚠️ {t(locale, key, **values)}", author=ASSISTANT).send()


async def begin(message: cl.Message, locale: str, user: LoginUser | None) -> Turn | None:
    """Check the user and the question, open the conversation and show the search step.

    None when the turn ends here: the reason is already shown in the chat."""
    if user is None:
        await warn(locale, "session_ended")
        return None
    runtime, thread_id, reply_id = state.runtime(), cl.context.session.thread_id, str(uuid.uuid4())
    if not isinstance(message.content, str):  # a hand-made payload: text that is not text
        message.content = ""
    run = cl.context.current_run or cl.context.current_step  # feedback points at its id
    try:  # validated before anything is stored: a rejected message leaves no conversation
        reply = runtime.service.reply(
            conversation_id=thread_id,
            text=message.content,
            user_message_id=message.id,
            reply_id=reply_id,
            run_step_id=run.id if run is not None else None,
        )
    except InputError:
        await _refuse_input(message.content, locale, runtime.settings.chat.max_message_chars)
        return None
    if not await _open_conversation(runtime, message, user, locale):
        return None
    # shown while waiting; kept above a retrieval answer, removed under any other one
    search = cl.Step(  # a child of the run, like the answer after it
        name=t(locale, "retrieval"), type="retrieval", parent_id=run.id if run else None
    )
    await search.send()
    return Turn(reply, reply_id, locale, search)


async def finish(turn: Turn, answer: cl.Message) -> None:
    """Show the search results, the answer with its sources and the correction editor."""
    result = turn.reply.result
    await _show_search(turn.search, result, turn.locale)
    await _show_answer(answer, result, turn.locale)


async def _refuse_input(text: str, locale: str, limit: int) -> None:
    """The rejected message's problem in the user's language."""
    try:
        length = len(clean_text(text, sys.maxsize))
    except InputError:  # nothing left once control characters are removed
        await warn(locale, "empty")
        return
    await warn(locale, "too_long", length=length, limit=limit)


async def _open_conversation(
    runtime: Runtime, message: cl.Message, user: LoginUser, locale: str
) -> bool:
    """Make sure this thread is a conversation of ``user`` (started on the first message);
    while the database is down, keep the question in the journal. False: the turn ends."""
    thread_id = cl.context.session.thread_id
    if cl.user_session.get(OPENED) == (thread_id, user.id):  # checked on an earlier turn
        return True
    try:
        await run_db(
            lambda s: conversations.open_own(
                session=s, conversation_id=thread_id, user_id=user.id, locale=locale
            ),
            write=True,
        )
    except NotFoundError:
        await cl.Message(content=t(locale, "not_found"), author=ASSISTANT).send()
        return False
    except Exception as exc:
        if not outage(exc):
            raise
        await _keep_unsaved(runtime, thread_id, user, locale, message, exc)
        return False
    cl.user_session.set(OPENED, (thread_id, user.id))
    # the chat's address becomes /chat/thread/<id> (chatbot/ui/public/afina.js): a reload, even
    # mid-answer or after Stop, reopens this conversation instead of starting a new one
    await cl.send_window_message({"afina": THREAD_MESSAGE, "id": thread_id})
    return True


async def _keep_unsaved(
    runtime: Runtime, thread_id: str, user: LoginUser, locale: str, message: cl.Message, exc
) -> None:
    """The database is down: keep the question in the journal, and say so."""
    limit = runtime.settings.chat.max_message_chars
    record = {
        "kind": "question",
        "conversation_id": thread_id,
        "user_id": user.id,
        "locale": locale,
        "question_id": message.id,
        "question": clean_text(message.content, limit),
        "at": datetime.now(UTC).isoformat(),
        "error": describe(exc),
    }
    await asyncio.to_thread(runtime.service.journal.add, record)
    await warn(locale, "unsaved")


async def _show_search(search: cl.Step, result: TurnResult, locale: str) -> None:
    """The search step keeps its results only when a knowledge-base search answered."""
    if result.error or result.meta.index_version is None:
        await search.remove()
        return
    search.output = retrieval_summary([s.to_dict() for s in result.meta.sources], locale)
    await search.update()


async def _show_answer(answer: cl.Message, result: TurnResult, locale: str) -> None:
    """The answer with its sources and backend, and the correction editor under it (labels
    in the answer's language, as when the chat is reopened)."""
    locale = locale_of(result.meta.locale or result.locale or locale)
    answer.content = answer_markdown(
        text=result.text,
        locale=locale,
        backend=result.backend_name,
        sources=[s.to_dict() for s in result.meta.sources],
        handoff=result.meta.handoff,
        error=result.error,
        partial=result.status == "partial",
        notice=fallback_notice(result.meta.details),
    )
    await (answer.update() if answer.streaming else answer.send())
    if result.error:
        return
    editor = correction_element(answer.id, answer.thread_id, result.text, None, locale)
    await cl.context.emitter.send_element(editor)  # type: ignore[arg-type]
