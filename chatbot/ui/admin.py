"""Admin-only HTTP routes of the web app (export download), authenticated by Chainlit's cookie."""

from __future__ import annotations

import asyncio
import shutil
from datetime import datetime
from typing import Annotated, Any

from chainlit.auth import get_current_user
from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from chatbot.db import store
from chatbot.errors import InputError
from chatbot.runtime import make_embedder
from chatbot.training.download import export_zip
from chatbot.training.filters import ExportFilters
from chatbot.ui import state

router = APIRouter(prefix="/admin", tags=["admin"])


def _require_admin(user: Annotated[Any, Depends(get_current_user)]) -> str:
    """The logged-in admin's username; 401 without a login, 403 for anyone but an admin."""
    if user is None:
        raise HTTPException(status_code=401, detail="log in first")
    with state.runtime().sessions() as session:
        record = store.get_user(session=session, username=user.identifier)
        if record is None or record.disabled or record.role != "admin":
            raise HTTPException(status_code=403, detail="only admins can download exports")
        return record.username


@router.get("/export")
async def download_export(
    username: Annotated[str, Depends(_require_admin)],
    rating: str = "not-negative",
    since: datetime | None = None,
    until: datetime | None = None,
) -> FileResponse:
    """Build a redacted, validated export of the logged chats and send it as a zip."""
    runtime = state.runtime()
    settings = runtime.settings
    try:
        filters = ExportFilters(since=since, until=until, rating=rating)  # type: ignore[arg-type]
        archive, _result = await asyncio.to_thread(
            export_zip,
            sessions=runtime.sessions,
            training=settings.training,
            pii=settings.pii,  # messages never checked for personal data are detected first
            created_by=username,
            encode_factory=lambda: make_embedder(settings).encode,
            filters=filters,
        )
    except InputError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from None
    cleanup = BackgroundTask(shutil.rmtree, archive.parent, ignore_errors=True)
    return FileResponse(
        archive, filename=archive.name, media_type="application/zip", background=cleanup
    )
