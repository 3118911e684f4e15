"""Shared parts of Afina's admin pages: the page frame, the role check and its refusal pages."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape

import chainlit.auth as chainlit_auth
from fastapi import HTTPException, Request
from fastapi.responses import HTMLResponse

from chatbot.db import store
from chatbot.errors import InputError
from chatbot.ui import state
from chatbot.ui.mount import PATH

STYLE = """
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2330;
background:#f6f7fb}header{background:linear-gradient(120deg,#134e4a,#0f766e);color:#fff;
padding:18px 20px}header h1{margin:0;font-size:22px}header a{color:#fff;margin-right:14px}
main{max-width:1100px;margin:0 auto;padding:12px}section{background:#fff;border:1px solid #e4e7ec;
border-radius:12px;padding:14px 18px;margin:14px 0}table{border-collapse:collapse;width:100%}
th,td{padding:7px;border-bottom:1px solid #e4e7ec;text-align:left;vertical-align:top}
.scroll{overflow-x:auto}button,.button{background:#0f766e;color:#fff;border:0;border-radius:8px;
padding:7px 14px;font:inherit;cursor:pointer;text-decoration:none;display:inline-block}
button.secondary{background:#fff;color:#0f766e;border:1px solid #0f766e}
button.danger{background:#b42318}label{margin-right:12px;display:inline-block;margin-bottom:6px}
input,select{padding:5px;font:inherit;max-width:100%}.muted{color:#667085;font-size:14px}
.tag{display:inline-block;border-radius:6px;padding:0 6px;margin:1px;background:#eef2f6;
font-size:13px}.error{color:#b42318}.ok{color:#067647}form.inline{display:inline}
.cell{max-width:360px;white-space:pre-wrap;word-break:break-word}form.inline button{margin:2px 0}
.review-status{margin:4px 0 0;font-size:14px}.review-status.approved{color:#067647}
.review-status.rejected{color:#b42318}
@media (max-width:640px){table.stack tr,table.stack td{display:block;width:auto}
table.stack tr:first-child{display:none}table.stack td{border:0;padding:4px 0}
table.stack tr{border-bottom:1px solid #e4e7ec;padding:8px 0}.cell{max-width:none}}
"""
NAV = (
    f"<a href='{PATH}'>Chat</a><a href='/admin/review'>Review</a><a href='/admin/users'>Users</a>"
    "<a href='/admin/finetune'>Fine-tuning</a><a href='/admin/evaluations'>Evaluations</a>"
)


@dataclass(frozen=True)
class Admin:
    """The logged-in admin, as stored now."""

    id: int
    username: str


def page(title: str, body: str, *, status: int = 200) -> HTMLResponse:
    """An admin page with Afina's header and navigation."""
    html = (
        "<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport "
        "content='width=device-width, initial-scale=1'><link rel=icon href='/chat/favicon'>"
        f"<title>{escape(title)} · Afina</title><style>{STYLE}</style></head><body><header>"
        f"<h1>{escape(title)}</h1><nav>{NAV}</nav></header><main>{body}</main></body></html>"
    )
    return HTMLResponse(html, status_code=status)


def refusal(title: str, status: int) -> HTMLResponse:
    """The friendly 401 (not logged in) or 403 (not an admin) page."""
    if status == 401:
        text = f"Please <a href='{PATH}/login'>log in</a> as an administrator first."
    else:
        text = (
            f"{escape(title)} is for administrators only. Ask an admin if you need it, or "
            f"<a href='{PATH}'>go back to the chat</a>."
        )
    return page(title, f"<section><p>{text}</p></section>", status=status)


def problem(title: str, message: str, status: int = 400) -> HTMLResponse:
    """A page saying what was wrong with the request and how to fix it."""
    return page(title, f"<section><p class=error>{escape(message)}</p></section>", status=status)


async def require_admin(request: Request, title: str) -> Admin | HTMLResponse:
    """The admin behind the request's login cookie, or the refusal page (401/403)."""
    token = await chainlit_auth.reuseable_oauth(request)
    if not token:
        return refusal(title, 401)
    try:
        # looked up at call time: the host app installs its hardened check there (ui/guard.py)
        user = await chainlit_auth.authenticate_user(token)
    except HTTPException:
        return refusal(title, 401)
    with state.runtime().sessions() as session:
        record = store.get_user(session=session, username=user.identifier)
        if record is None or record.disabled or record.role != "admin":
            return refusal(title, 403)
        return Admin(record.id, record.username)


def parse_date(value: str | None, name: str) -> datetime | None:
    """A form's date (YYYY-MM-DD or an ISO time, UTC without a zone); empty means none."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InputError(
            f"{name} {value!r} is not a date: use the format YYYY-MM-DD (e.g. 2026-11-28) "
            "or an ISO time such as 2026-11-28T09:30"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
