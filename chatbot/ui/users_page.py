"""The admin "Users" page: add users, reset passwords, change roles, disable and enable.

Admin-only on the server; every change goes through ``chatbot.accounts`` and logs the user out
of their open sessions (their session epoch moves on)."""

from __future__ import annotations

import asyncio
from html import escape
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from chatbot import accounts
from chatbot.db import store
from chatbot.errors import InputError, NotFoundError
from chatbot.ui import state
from chatbot.ui.adminpage import Admin, page, require_admin

router = APIRouter(prefix="/admin/users", tags=["admin"])
TITLE = "Users"


def _post(action: str, fields: str, label: str, css: str = "") -> str:
    return (
        f"<form class=inline method=post action='/admin/users/{action}'>{fields}"
        f"<button type=submit class='{css}'>{escape(label)}</button></form> "
    )


def _row(user, me: str) -> str:
    name = escape(user.username)
    who = f"<input type=hidden name=username value='{name}'>"
    other = "agent" if user.role == "admin" else "admin"
    actions = _post(
        "password",
        who + f"<input type=password name=password minlength=8 required "
        f"aria-label='New password for {name}' placeholder='new password' autocomplete=off>",
        "Reset password",
    )
    if user.username != me:
        actions += _post(
            "role",
            who + f"<input type=hidden name=role value={other}>",
            f"Make {other}",
            "secondary",
        )
        state_ = "enable" if user.disabled else "disable"
        actions += _post(state_, who, state_.capitalize(), "" if user.disabled else "danger")
    status = "disabled" if user.disabled else ("active" if user.password_hash else "no password")
    return (
        f"<tr data-user='{name}'><td>{name}</td><td>{escape(user.role)}</td>"
        f"<td>{escape(status)}</td><td>{actions}</td></tr>"
    )


@router.get("", response_class=HTMLResponse)
async def users(request: Request) -> Response:
    """Every user with their actions, and the form that adds one."""
    admin = await require_admin(request, TITLE)
    if isinstance(admin, HTMLResponse):
        return admin

    def listing() -> str:
        with state.runtime().sessions() as session:
            return "".join(_row(u, admin.username) for u in store.list_users(session=session))

    rows = await asyncio.to_thread(listing)
    message, error = request.query_params.get("done"), request.query_params.get("error")
    note = f"<p class=ok role=status>{escape(message)}</p>" if message else ""
    note += f"<p class=error role=alert>{escape(error)}</p>" if error else ""
    body = (
        f"{note}<section><h2>Add a user</h2><form method=post action='/admin/users/add'>"
        "<label>User name <input name=username required maxlength=64></label>"
        "<label>Password <input type=password name=password minlength=8 required "
        "autocomplete=new-password></label><label>Role <select name=role><option>agent</option>"
        "<option>admin</option></select></label><button type=submit>Add user</button></form>"
        "</section><section><h2>Users</h2><p class=muted>Resetting a password, changing a role "
        "or disabling logs the user out everywhere.</p><div class=scroll>"
        "<table class=stack id=users><tr><th>User</th><th>Role</th><th>Status</th>"
        f"<th>Actions</th></tr>{rows}</table></div>"
        "</section>"
    )
    return page(TITLE, body)


DONE = {
    "add": "User {0} added.",
    "password": "Password of {0} reset; they were logged out.",
    "role": "Role of {0} changed; they were logged out.",
    "disable": "User {0} disabled and logged out.",
    "enable": "User {0} enabled.",
}


@router.post("/{action}", response_model=None)
async def change(
    request: Request,
    action: str,
    username: Annotated[str, Form()],
    password: Annotated[str, Form()] = "",
    role: Annotated[str, Form()] = "agent",
) -> Response:
    """Apply one change, then back to the list with what happened."""
    admin = await require_admin(request, TITLE)
    if isinstance(admin, HTMLResponse):
        return admin
    if action not in DONE:
        return RedirectResponse("/admin/users?" + urlencode({"error": "unknown action"}), 303)
    try:
        await asyncio.to_thread(_apply, admin, action, username, password, role)
    except (InputError, NotFoundError) as exc:
        return RedirectResponse("/admin/users?" + urlencode({"error": str(exc)}), 303)
    done = DONE[action].format(repr(username.strip()))
    return RedirectResponse("/admin/users?" + urlencode({"done": done}), 303)


def _apply(admin: Admin, action: str, username: str, password: str, role: str) -> None:
    me = admin.username
    with state.runtime().sessions.begin() as session:
        if action == "add":
            accounts.add(session=session, username=username, role=role, password=password)
        elif action == "password":
            accounts.set_password(session=session, username=username, password=password)
        elif action == "role":
            accounts.set_role(session=session, username=username, role=role, by=me)
        else:
            disabled = action == "disable"
            accounts.set_disabled(session=session, username=username, disabled=disabled, by=me)
