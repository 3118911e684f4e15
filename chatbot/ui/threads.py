"""A chat URL of someone else's (or a deleted) conversation: a clear page, not a network error."""

from __future__ import annotations

import chainlit.auth as chainlit_auth
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

from chatbot.db import history
from chatbot.ui.datalayer import run_db
from chatbot.ui.mount import PATH

router = APIRouter(tags=["chat"])
NOT_YOURS = (
    "<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport "
    "content='width=device-width, initial-scale=1'><link rel=icon href='{path}/favicon'>"
    "<title>Conversation not found · Afina</title><style>body{{font:16px/1.5 system-ui,"
    "sans-serif;max-width:560px;margin:15vh auto;padding:0 20px;color:#1d2330}}a{{color:#0f766e}}"
    "</style></head><body><h1>Conversation not found</h1><p>This conversation does not exist or "
    "is not yours: each agent sees only their own chats.</p><p><a href='{path}'>Start a new "
    "chat</a></p></body></html>"
)


@router.get(PATH + "/thread/{thread_id}", response_model=None)
async def open_thread(request: Request, thread_id: str) -> Response | None:
    """Chainlit's page for the user's own conversation; a 404 page for any other one."""
    from chainlit.server import serve

    token = await chainlit_auth.reuseable_oauth(request)
    try:
        # looked up at call time: the host app installs its hardened check there (ui/guard.py)
        user = await chainlit_auth.authenticate_user(token) if token else None
    except HTTPException:
        user = None
    if user is not None:
        owner = await run_db(
            lambda s: history.conversation_owner(session=s, conversation_id=thread_id)
        )
        if owner != user.identifier:
            return HTMLResponse(NOT_YOURS.format(path=PATH), status_code=404)
    return await serve(request)  # not logged in: Chainlit's page sends them to the login
