"""Hardening of the mounted Chainlit app: revocable cookies, allowed origins, no API docs."""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, HTTPException
from fastapi.responses import JSONResponse
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chatbot.ui import state
from chatbot.ui.auth import (
    CURRENT_USER_ID,
    ENDED,
    INVALID,
    LOGIN_ATTEMPT,
    LoginUser,
    TooManyAttempts,
    session_user,
)
from chatbot.ui.mount import PATH

log = logging.getLogger(__name__)
MAX_SOCKET_BYTES = 4 * 1024 * 1024
DOC_PATHS = ("/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json")
# Chainlit routes Afina does not use that hand out cookies: closed by the host app.
CLOSED_PATHS = ("/auth/jwt", "/auth/header", "/auth/oauth")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


class MountedOnly:
    """Chainlit's own check that a request is for its mount (``/chat``; 404 otherwise), as
    plain ASGI: Chainlit's version is a ``BaseHTTPMiddleware`` (see ``HostGuard``)."""

    def __init__(self, app: ASGIApp, prefix: str) -> None:
        self.app, self.prefix = app, prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope["path"].startswith(self.prefix):
            await JSONResponse({"detail": "Not found"}, status_code=404)(scope, receive, send)
            return
        await self.app(scope, receive, send)


class HostGuard:
    """The host app's request checks, as plain ASGI middleware: foreign-origin writes and
    unused cookie routes are refused, and a failed login answers plainly.

    Plain ASGI, not Starlette's ``BaseHTTPMiddleware``: that one runs the app in a second task
    and raises "RuntimeError: No response returned" (a traceback in the log) whenever a request
    ends without a response, as Socket.IO's long polls do when the browser leaves or the
    server stops."""

    def __init__(self, app: ASGIApp, allowed: list[str]) -> None:
        self.app, self.allowed = app, list(allowed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        path, method, origin = scope["path"], scope["method"], headers.get("origin")
        refused: JSONResponse | None = None
        if method not in SAFE_METHODS and not origin_allowed(
            origin, headers.get("host"), self.allowed
        ):
            log.warning("%s %s from origin %r refused", method, path, origin)
            refused = JSONResponse({"detail": "cross-origin request refused"}, status_code=403)
        elif path.startswith(tuple(PATH + p for p in CLOSED_PATHS)):
            refused = JSONResponse({"detail": "Not Found"}, status_code=404)
        if refused is not None:
            await refused(scope, receive, send)
        elif method == "POST" and path == f"{PATH}/login":
            await self._login(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _login(self, scope: Scope, receive: Receive, send: Send) -> None:
        """POST /chat/login: the client's address goes to the throttle; a failure is a plain
        "invalid credentials" (not Chainlit's 'credentialssignin'), a throttled try a 429."""
        client = scope.get("client")
        attempt: dict[str, Any] = {"client": client[0] if client else None}
        refused = False

        async def relay(message: Message) -> None:
            nonlocal refused
            if message["type"] == "http.response.start" and message["status"] == 401:
                refused = True
            if not refused:
                await send(message)

        token = LOGIN_ATTEMPT.set(attempt)
        try:
            await self.app(scope, receive, relay)
        finally:
            LOGIN_ATTEMPT.reset(token)
        if not refused:
            return
        answer = JSONResponse({"detail": INVALID}, status_code=401)
        if "retry_after" in attempt:
            throttled = TooManyAttempts(attempt["retry_after"])
            headers = {"Retry-After": str(throttled.retry_after)}
            answer = JSONResponse({"detail": str(throttled)}, status_code=429, headers=headers)
        await answer(scope, receive, send)


async def authenticate_token(token: str = "") -> Any:
    """Chainlit's cookie check, plus: the user exists, is enabled, and the cookie's epoch is
    current (logout, a password change and disabling raise it). 401 otherwise."""
    from chainlit.auth import decode_jwt
    from chainlit.user import PersistedUser

    try:
        claimed = decode_jwt(token or "")
    except Exception as exc:
        raise HTTPException(status_code=401, detail="Invalid authentication token") from exc
    epoch = (claimed.metadata or {}).get("epoch")
    sessions = state.runtime().sessions

    def work() -> LoginUser | None:
        with sessions() as session:
            return session_user(session=session, username=claimed.identifier, epoch=epoch)

    user = await asyncio.to_thread(work)
    if user is None:
        raise HTTPException(status_code=401, detail=ENDED)
    CURRENT_USER_ID.set(user.id)
    return PersistedUser(
        id=str(user.id),
        identifier=user.username,
        display_name=user.display_name or user.username,
        createdAt=user.created_at,
        metadata={"role": user.role, "epoch": user.epoch},
    )


def same_origin(origin: str, host: str | None) -> bool:
    """Whether ``origin`` (scheme://host[:port]) names the host the request was sent to."""
    return bool(host) and urlsplit(origin).netloc.lower() == (host or "").lower()


def origin_allowed(origin: str | None, host: str | None, allowed: Iterable[str]) -> bool:
    """No Origin (not a browser's cross-origin call), the page's own origin, or a listed one."""
    if not origin:
        return True
    return same_origin(origin, host) or origin.rstrip("/") in {a.rstrip("/") for a in allowed}


def harden(chainlit_app: FastAPI, allowed_origins: list[str]) -> None:
    """Install the cookie check, the allowed origins, and drop the API docs of Chainlit's app."""
    import chainlit.auth
    from chainlit.server import sio

    chainlit.auth.authenticate_user = authenticate_token  # get_current_user calls it by name
    allowed = list(allowed_origins)
    for at, middleware in enumerate(chainlit_app.user_middleware):
        if middleware.cls is CORSMiddleware:
            middleware.kwargs["allow_origins"] = allowed
        elif getattr(middleware.cls, "__name__", "") == "ChainlitMiddleware":
            chainlit_app.user_middleware[at] = Middleware(MountedOnly, prefix=PATH)

    def websocket_origin(origin: str | None, environ: dict[str, Any]) -> bool:
        ok = origin_allowed(origin, environ.get("HTTP_HOST"), allowed)
        if not ok:
            log.warning("websocket from origin %r refused", origin)
        return ok

    sio.eio.cors_allowed_origins = websocket_origin
    # a pasted megabyte reaches on_message and is refused there with a message, instead of
    # the socket being dropped silently at engine.io's 1 MB default
    sio.eio.max_http_buffer_size = MAX_SOCKET_BYTES
    drop_docs(chainlit_app)


def clear_session_files(max_age_s: float = 7200) -> int:
    """Remove files Chainlit kept for browser sessions that ended long ago (a crash skips its
    clean-up); sessions time out after an hour, so older folders serve nobody. Returns how
    many files went."""
    from chainlit.config import FILES_DIRECTORY

    if not FILES_DIRECTORY.is_dir():
        return 0
    count, now = 0, time.time()
    for entry in FILES_DIRECTORY.iterdir():
        if now - entry.stat().st_mtime < max_age_s:
            continue  # maybe a live session of a server sharing this folder
        if entry.is_dir():
            count += sum(1 for p in entry.rglob("*") if p.is_file())
            shutil.rmtree(entry, ignore_errors=True)
        else:
            count += 1
            entry.unlink(missing_ok=True)
    return count


def drop_docs(app: FastAPI) -> None:
    """No public /docs, /redoc or /openapi.json (they list every route to an attacker)."""
    app.openapi_url = app.docs_url = app.redoc_url = None
    app.router.routes[:] = [
        r for r in app.router.routes if getattr(r, "path", None) not in DOC_PATHS
    ]
