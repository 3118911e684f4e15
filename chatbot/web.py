"""The FastAPI host app: Chainlit mounted at /chat, /healthz, start-up work in the lifespan."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse

from chatbot.runtime import Runtime, index_exists
from chatbot.settings import Settings, get_settings
from chatbot.ui import state
from chatbot.ui.admin import router as admin_router
from chatbot.ui.auth import INVALID, auth_secret, bootstrap_admin
from chatbot.ui.mount import PATH, mount

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


def prepare(settings: Settings, on_password: PasswordNotice) -> Runtime:
    """Migrate, make sure an index and a first admin exist, and return the open runtime."""
    runtime = Runtime.open(settings)
    try:
        ensure_index(settings)
        password = bootstrap_admin(runtime.sessions, settings)
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
        try:
            await _warm(runtime)
            yield
        finally:
            state.set_runtime(None)
            await runtime.aclose()

    app = FastAPI(title="Afina", lifespan=lifespan)

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        """Ready when the runtime is open."""
        try:
            state.runtime()
        except Exception:
            return JSONResponse({"status": "starting"}, status_code=503)
        return JSONResponse({"status": "ok"})

    @app.middleware("http")
    async def plain_login_error(request: Request, call_next) -> Response:
        """A failed login answers a plain "invalid credentials" (not 'credentialssignin')."""
        response = await call_next(request)
        if request.method == "POST" and request.url.path == f"{PATH}/login":
            if response.status_code == 401:
                return JSONResponse({"detail": INVALID}, status_code=401)
        return response

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        """The chat lives under /chat."""
        return RedirectResponse(PATH)

    app.include_router(admin_router)  # before the Chainlit mount, which takes every other path
    mount(app, auth_secret(settings))
    return app
