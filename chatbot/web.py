"""The FastAPI host app: Chainlit mounted at /chat, /healthz, start-up work in the lifespan."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse

from chatbot.db.recovery import mark_interrupted
from chatbot.runtime import Runtime, index_exists
from chatbot.settings import Settings, get_settings
from chatbot.ui import state
from chatbot.ui.admin import router as admin_router
from chatbot.ui.auth import (
    INVALID,
    LOGIN_ATTEMPT,
    TooManyAttempts,
    auth_secret,
    bootstrap_admin,
)
from chatbot.ui.evaluations import router as evaluations_router
from chatbot.ui.feedback import router as feedback_router
from chatbot.ui.finetuning import router as finetune_router
from chatbot.ui.guard import CLOSED_PATHS, clear_session_files, origin_allowed
from chatbot.ui.mount import PATH, mount
from chatbot.ui.routes import ui_routers

log = logging.getLogger(__name__)
PasswordNotice = Callable[[str], None]
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


async def _login(request: Request, call_next) -> Response:
    """POST /chat/login: the client's address goes to the throttle; a failure is a plain
    "invalid credentials" (not Chainlit's 'credentialssignin'), a throttled try a 429."""
    attempt: dict[str, Any] = {"client": request.client.host if request.client else None}
    token = LOGIN_ATTEMPT.set(attempt)
    try:
        response = await call_next(request)
    finally:
        LOGIN_ATTEMPT.reset(token)
    if response.status_code != 401:
        return response
    if "retry_after" in attempt:
        refused = TooManyAttempts(attempt["retry_after"])
        headers = {"Retry-After": str(refused.retry_after)}
        return JSONResponse({"detail": str(refused)}, status_code=429, headers=headers)
    return JSONResponse({"detail": INVALID}, status_code=401)


def _log_password(password: str) -> None:
    log.warning("created user 'admin' with the one-time password: %s", password)


def ensure_index(settings: Settings) -> None:
    """Build the knowledge-base index when none exists yet (blocking)."""
    if index_exists(settings.index_dir):
        return
    from chatbot.knowledge.ingest import ingest_configured

    log.warning("no knowledge-base index yet: building it from %s", settings.kb_path)
    ingest_configured(settings)


def prepare(settings: Settings, on_password: PasswordNotice) -> Runtime:
    """Migrate, make sure an index and a first admin exist, and return the open runtime."""
    runtime = Runtime.open(settings)
    runtime.start_pii_worker()  # personal data detected as messages are stored
    try:
        ensure_index(settings)
        password = bootstrap_admin(runtime.sessions, settings)
        runtime.service.replay_unsaved()  # turns kept while the database was down
        with runtime.sessions.begin() as session:
            if count := mark_interrupted(session=session):
                log.warning("%d question(s) left unanswered by a stop: marked interrupted", count)
    except BaseException:
        runtime.engine.dispose()
        raise
    if password:
        on_password(password)
    return runtime


async def _warm(runtime: Runtime) -> None:
    """Load the active backend now so the first question is not slow (failures only logged)."""
    try:
        resolved = await asyncio.to_thread(runtime.pool.resolve)
        await resolved.backend.warm()
    except Exception:
        log.exception("could not warm the active backend; the first answer will retry")


def create_app(
    settings: Settings | None = None, *, on_password: PasswordNotice = _log_password
) -> FastAPI:
    """The web app; nothing touches the database until the server starts (lifespan)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        runtime = await asyncio.to_thread(prepare, settings, on_password)
        state.set_runtime(runtime)
        if removed := await asyncio.to_thread(clear_session_files):
            log.warning("removed %d file(s) left by browser sessions of an earlier run", removed)
        try:
            await _warm(runtime)
            yield
        finally:
            state.set_runtime(None)
            await runtime.aclose()

    # no public /docs, /redoc or /openapi.json: they map every route for an attacker
    app = FastAPI(title="Afina", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    allowed = settings.web.allowed_origins

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        """Ready when the runtime is open."""
        try:
            state.runtime()
        except Exception:
            return JSONResponse({"status": "starting"}, status_code=503)
        return JSONResponse({"status": "ok"})

    @app.middleware("http")
    async def guard(request: Request, call_next) -> Response:
        """Refuse foreign-origin writes and unused cookie routes; answer logins plainly."""
        path, origin = request.url.path, request.headers.get("origin")
        if request.method not in SAFE_METHODS and not origin_allowed(
            origin, request.headers.get("host"), allowed
        ):
            log.warning("%s %s from origin %r refused", request.method, path, origin)
            return JSONResponse({"detail": "cross-origin request refused"}, status_code=403)
        if path.startswith(tuple(PATH + p for p in CLOSED_PATHS)):
            return JSONResponse({"detail": "Not Found"}, status_code=404)
        if request.method == "POST" and path == f"{PATH}/login":
            return await _login(request, call_next)
        return await call_next(request)

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        """The chat lives under /chat."""
        return RedirectResponse(PATH)

    # before the Chainlit mount, which takes every other path
    app.include_router(admin_router)
    app.include_router(feedback_router)
    app.include_router(evaluations_router)
    app.include_router(finetune_router)
    for router in ui_routers():  # the review and users pages, the chat-URL ownership check
        app.include_router(router)
    mount(app, auth_secret(settings), allowed_origins=allowed)
    return app
