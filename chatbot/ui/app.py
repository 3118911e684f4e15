"""Chainlit callbacks: translate between the browser and ChatService, nothing more."""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import chainlit as cl
from chainlit.input_widget import InputWidget, Select
from chainlit.types import ThreadDict
from fastapi import Request, Response

from chatbot import reviews
from chatbot.backend_pool import ACTIVE_BACKEND, use_backend
from chatbot.db import store
from chatbot.errors import DatabaseUnavailable, InputError, NotAllowedError, NotFoundError
from chatbot.ui import state, turns
from chatbot.ui.auth import (
    LOGIN_ATTEMPT,
    LoginThrottle,
    LoginUser,
    TooManyAttempts,
    end_sessions,
    login,
    session_user,
)
from chatbot.ui.datalayer import ASSISTANT, AfinaDataLayer, run_db
from chatbot.ui.render import backend_label
from chatbot.ui.texts import locale_of, t

log = logging.getLogger(__name__)
THROTTLE = LoginThrottle()
SAVE_CORRECTION = "save_correction"
BACKEND_SETTING = "backend"


@cl.data_layer
def data_layer() -> AfinaDataLayer:
    """Afina's tables behind the history sidebar, resume and feedback."""
    return AfinaDataLayer()


@cl.password_auth_callback
async def password_login(username: str, password: str) -> cl.User | None:
    """Check the password against ``users``; None makes Chainlit answer 401.

    The cookie carries the user's session epoch, so logout and password changes void it."""
    attempt = LOGIN_ATTEMPT.get()
    client = attempt.get("client") if attempt is not None else None
    try:
        user = await login(state.runtime().sessions, THROTTLE, username, password, client)
    except TooManyAttempts as exc:
        if attempt is not None:
            attempt["retry_after"] = exc.retry_after
        return None
    if user is None:
        return None
    return cl.User(
        identifier=user.username,
        display_name=user.display_name or user.username,
        metadata={"role": user.role, "epoch": user.epoch},
    )


@cl.on_logout
async def logout(request: Request, response: Response) -> dict[str, bool]:
    """Logging out voids every login cookie of the user (all browsers), not just this one."""
    from chainlit.auth import decode_jwt, get_token_from_cookies

    try:
        claimed = decode_jwt(get_token_from_cookies(dict(request.cookies)) or "")
    except Exception:  # no valid cookie: nothing to end
        return {"success": True}
    epoch = (claimed.metadata or {}).get("epoch")
    ended = await run_db(
        lambda s: end_sessions(session=s, username=claimed.identifier, epoch=epoch), write=True
    )
    if ended:
        log.info("%s logged out: their login cookies are void", claimed.identifier)
    return {"success": True}


def friendly(callback: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    """Any unexpected error becomes a short message in the chat (logged with its traceback)."""

    @functools.wraps(callback)
    async def guarded(*args: Any, **kwargs: Any) -> None:
        try:
            await callback(*args, **kwargs)
        except Exception:  # never a traceback in the browser
            log.exception("%s failed in thread %s", callback.__name__, cl.context.session.thread_id)
            await cl.Message(content=f"⚠️ {t(_locale(), 'error')}", author=ASSISTANT).send()

    return guarded


def _locale() -> str:
    return locale_of(getattr(cl.context.session, "language", None))


async def _current_user() -> LoginUser | None:
    """The logged-in user as stored now (role, disabled and session epoch re-read): None
    once the user logged out, changed password or was disabled since this socket connected."""
    session_user_ = cl.user_session.get("user")
    if session_user_ is None:
        return None
    epoch = (getattr(session_user_, "metadata", None) or {}).get("epoch")
    return await run_db(
        lambda s: session_user(session=s, username=session_user_.identifier, epoch=epoch)
    )


async def _send_backend_control(user: LoginUser | None) -> None:
    """Admins get the app-wide backend switch; agents get nothing."""
    if user is None or user.role != "admin":
        return

    def work(session):
        items = {
            backend_label(b.name, b.kind, b.config): b.name
            for b in store.list_backends(session=session)
        }
        return items, store.get_setting(session=session, key=ACTIVE_BACKEND)

    items, active = await run_db(work)
    names = list(items.values())
    widget: InputWidget = Select(
        id=BACKEND_SETTING,
        label=t(_locale(), "backend_label"),
        items=items,
        initial_value=active if active in names else names[0],
    )
    await cl.ChatSettings([widget]).send()


@cl.on_chat_start
@friendly
async def start() -> None:
    """Greet the user in their language; admins also get the backend control."""
    user = await _current_user()
    name = (user.display_name or user.username) if user else ""
    text = t(_locale(), "welcome", name=name)
    if user is not None and user.role == "admin":
        text += "\n\n" + t(_locale(), "admin_links")
    await cl.Message(content=text, author=ASSISTANT).send()
    await _send_backend_control(user)


@cl.on_chat_resume
@friendly
async def resume(thread: ThreadDict) -> None:
    """Chainlit re-sends the stored thread; admins get their control back."""
    await _send_backend_control(await _current_user())


@cl.on_settings_update
@friendly
async def settings_update(settings: dict[str, Any]) -> None:
    """Switch the active backend, only for admins (re-checked here, whatever the UI showed)."""
    locale, user = _locale(), await _current_user()
    name = settings.get(BACKEND_SETTING)
    if user is None or user.role != "admin":
        log.warning("backend switch to %r refused for %s", name, user.username if user else "?")
        await cl.Message(content=t(locale, "backend_refused"), author=ASSISTANT).send()
        return
    if not isinstance(name, str):
        return
    try:  # chatbot.backend_pool checks the role again, as for the command line
        await run_db(lambda s: use_backend(session=s, name=name, user_id=user.id), write=True)
    except (NotFoundError, NotAllowedError) as exc:
        await cl.Message(content=str(exc), author=ASSISTANT).send()
        return
    log.info("%s switched the active backend to %s", user.username, name)
    text = t(locale, "backend_switched", user=user.username, name=name)
    await cl.Message(content=text, author=ASSISTANT).send()


@cl.on_message
@friendly
async def on_message(message: cl.Message) -> None:
    """One turn: ChatService stores and streams; we show the stream, sources and actions."""
    turn = await turns.begin(message, _locale(), await _current_user())
    if turn is None:  # refused, or not storable now: the chat says why
        return
    answer = cl.Message(content="", id=turn.reply_id, author=ASSISTANT)
    # closed at once on Stop or a dropped socket: the service stores what was shown
    try:
        async with contextlib.aclosing(aiter(turn.reply)) as stream:
            async for chunk in stream:
                await answer.stream_token(chunk)
    except (DatabaseUnavailable, NotFoundError) as exc:  # kept in the journal / deleted meanwhile
        await turns.warn(turn.locale, "not_found" if isinstance(exc, NotFoundError) else "unsaved")
        return
    await turns.finish(turn, answer)


@cl.action_callback(SAVE_CORRECTION)
async def save_correction(action: cl.Action) -> dict[str, Any]:
    """The correction editor's Save: stored by ``chatbot.reviews`` (which checks ownership)."""
    locale, user = _locale(), await _current_user()
    message_id, text = (str(action.payload.get(k) or "") for k in ("message_id", "text"))
    if user is None:
        return {"ok": False, "message": t(locale, "session_ended")}
    try:
        await run_db(
            lambda s: reviews.correct(session=s, message_id=message_id, user_id=user.id, text=text),
            write=True,
        )
    except InputError:
        return {"ok": False, "message": t(locale, "correct_empty")}
    except NotFoundError:
        return {"ok": False, "message": t(locale, "not_found")}
    log.info("%s corrected answer %s", user.username, message_id)
    return {"ok": True}
