"""The FastAPI host app: Chainlit mounted at /chat, /healthz, start-up work in the lifespan."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import JSONResponse, RedirectResponse

from chatbot.db.recovery import mark_cut_answers, mark_interrupted
from chatbot.runtime import Runtime, index_exists
from chatbot.settings import Settings, get_settings
from chatbot.ui import state
from chatbot.ui.admin import router as admin_router
from chatbot.ui.auth import auth_secret, bootstrap_admin
from chatbot.ui.evaluations import router as evaluations_router
from chatbot.ui.feedback import router as feedback_router
from chatbot.ui.finetuning import router as finetune_router
from chatbot.ui.guard import HostGuard, clear_session_files
from chatbot.ui.mount import PATH, mount
from chatbot.ui.routes import ui_routers

log = logging.getLogger(__name__)
PasswordNotice = Callable[[str], None]


def _log_password(password: str) -> None:
    log.warning("created user 'admin' with the one-time password: %s", password)


def ensure_index(settings: Settings) -> None:
    """Build the knowledge-base index when none exists yet (blocking)."""
    if index_exists(settings.index_dir):
        return
    from chatbot.knowledge.ingest import ingest_configured

    log.warning("no knowledge-base index yet: building it from %s", settings.kb_path)
    ingest_configured(settings)


def prepare(settings: Settings, on_password: PasswordNotice, *, once: bool = True) -> Runtime:
    """Migrate, make sure an index and a first admin exist, and return the open runtime.

    ``once=False``: one worker of ``afina serve --workers``, whose parent did the start-up work
    (migrating, the first admin, the journal, marking cut questions would race between
    workers, and marking would hit the turns other workers are answering)."""
    runtime = Runtime.open(settings, upgrade=once)
    runtime.start_pii_worker()  # personal data detected as messages are stored
    if not once:
        return runtime
    try:
        ensure_index(settings)
        password = bootstrap_admin(runtime.sessions, settings)
        runtime.service.replay_unsaved()  # turns kept while the database was down
        with runtime.sessions.begin() as session:
            if count := mark_interrupted(session=session):
                log.warning("%d question(s) left unanswered by a stop: marked interrupted", count)
            if count := mark_cut_answers(session=session):
                log.warning("%d answer(s) cut by a stop while streaming: kept as shown", count)
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
    settings: Settings | None = None,
    *,
    on_password: PasswordNotice = _log_password,
    once: bool = True,
) -> FastAPI:
    """The web app; nothing touches the database until the server starts (lifespan).
    ``once=False``: a worker of several (see ``prepare``)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        runtime = await asyncio.to_thread(prepare, settings, on_password, once=once)
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

    app.add_middleware(HostGuard, allowed=allowed)  # origins, closed routes, login answers

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
