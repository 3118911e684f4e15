"""Mount Chainlit (with Afina's callbacks and config) inside a FastAPI app."""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI

UI_DIR = Path(__file__).resolve().parent
PATH = "/chat"


def mount(
    app: FastAPI, auth_secret: str, path: str = PATH, allowed_origins: list[str] | None = None
) -> None:
    """Point Chainlit at this folder's config, hand it the cookie secret, mount and harden it
    (revocable cookies, ``allowed_origins`` besides the page's own, no API docs)."""
    # Chainlit reads the secret from the process environment (chatbot.ui set its app root).
    os.environ["CHAINLIT_AUTH_SECRET"] = auth_secret
    from chainlit.server import app as chainlit_app
    from chainlit.utils import mount_chainlit

    from chatbot.ui import no_sleep
    from chatbot.ui.branding import install
    from chatbot.ui.guard import harden

    mount_chainlit(app=app, target=str(UI_DIR / "app.py"), path=path)
    harden(chainlit_app, allowed_origins or [])
    install()
    no_sleep.install()  # Chainlit's 1 ms sleep per message and step blocks the event loop
