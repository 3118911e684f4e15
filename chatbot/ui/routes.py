"""The web app's own pages besides the chat, for ``chatbot.web`` to include before the mount."""

from __future__ import annotations

from fastapi import APIRouter


def ui_routers() -> list[APIRouter]:
    """The routers of the chat-URL check and the admin review and users pages."""
    from chatbot.ui import review, threads, users_page

    return [threads.router, review.router, users_page.router]
