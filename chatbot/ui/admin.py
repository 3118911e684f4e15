"""Admin-only export download of the web app, authenticated by Chainlit's login cookie."""

from __future__ import annotations

import asyncio
import shutil

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse
from starlette.background import BackgroundTask

from chatbot.errors import InputError
from chatbot.runtime import make_embedder
from chatbot.training.download import export_zip
from chatbot.training.filters import ExportFilters
from chatbot.ui import state
from chatbot.ui.adminpage import parse_date, problem, require_admin

router = APIRouter(prefix="/admin", tags=["admin"])
TITLE = "Training-data export"


def export_filters(
    *,
    rating: str = "not-negative",
    since: str | None = None,
    until: str | None = None,
    backend: str | None = None,
    locale: str | None = None,
    user: str | None = None,
    corrected_only: bool = False,
) -> ExportFilters:
    """The filters of ``afina export`` from a query string; ``InputError`` names the fix."""
    return ExportFilters(
        since=parse_date(since, "since"),
        until=parse_date(until, "until"),
        backend=backend or None,
        rating=rating,  # type: ignore[arg-type]  # checked by ExportFilters
        corrected_only=corrected_only,
        user=user or None,
        locale=locale or None,
    )


@router.get("/export", response_model=None)
async def download_export(
    request: Request,
    rating: str = "not-negative",
    since: str | None = None,
    until: str | None = None,
    backend: str | None = None,
    locale: str | None = None,
    user: str | None = None,
    corrected_only: bool = False,
) -> FileResponse | HTMLResponse:
    """Build a redacted, validated export of the logged chats and send it as a zip."""
    admin = await require_admin(request, TITLE)
    if isinstance(admin, HTMLResponse):
        return admin
    runtime = state.runtime()
    settings = runtime.settings
    try:
        filters = export_filters(
            rating=rating,
            since=since,
            until=until,
            backend=backend,
            locale=locale,
            user=user,
            corrected_only=corrected_only,
        )
        archive, _result = await asyncio.to_thread(
            export_zip,
            sessions=runtime.sessions,
            training=settings.training,
            pii=settings.pii,  # messages never checked for personal data are detected first
            created_by=admin.username,
            encode_factory=lambda: make_embedder(settings).encode,
            filters=filters,
        )
    except InputError as exc:
        return problem(TITLE, str(exc))
    cleanup = BackgroundTask(shutil.rmtree, archive.parent, ignore_errors=True)
    return FileResponse(
        archive, filename=archive.name, media_type="application/zip", background=cleanup
    )
