"""``afina users``: add, list, change passwords, disable and enable."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table

from chatbot.cli.common import console, open_runtime
from chatbot.db import store
from chatbot.errors import NotFoundError
from chatbot.passwords import hash_password

app = typer.Typer(help="Support agents and admins.", no_args_is_help=True)


def read_password(from_stdin: bool) -> str:
    """A new password from stdin (scripts) or an interactive prompt; never from argv."""
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    hash_password(password)  # validates length early
    return password


@app.command()
def add(
    username: Annotated[str, typer.Argument(help="Login name")],
    role: Annotated[str, typer.Option(help="agent or admin")] = "agent",
    display_name: Annotated[str | None, typer.Option(help="Name shown in the UI")] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin")
    ] = False,
) -> None:
    """Create a user (the password is prompted for, or read from stdin)."""
    password = read_password(password_stdin)
    runtime = open_runtime()
    with runtime.sessions.begin() as session:
        store.add_user(
            session=session,
            username=username,
            role=role,
            password_hash=hash_password(password),
            display_name=display_name,
        )
    console.print(f"Added {role} {username!r}.")


@app.command("list")
def list_command() -> None:
    """List users."""
    runtime = open_runtime()
    table = Table("username", "role", "display name", "disabled", "can log in")
    with runtime.sessions() as session:
        for user in store.list_users(session=session):
            table.add_row(
                user.username,
                user.role,
                user.display_name or "",
                str(user.disabled),
                "yes" if user.password_hash else "no",
            )
    console.print(table)


@app.command()
def passwd(
    username: Annotated[str, typer.Argument()],
    password_stdin: Annotated[bool, typer.Option("--password-stdin")] = False,
) -> None:
    """Set a user's password."""
    password = read_password(password_stdin)
    runtime = open_runtime()
    with runtime.sessions.begin() as session:
        user = store.get_user(session=session, username=username)
        if user is None:
            raise NotFoundError(f"no user {username!r}; see 'afina users list'")
        user.password_hash = hash_password(password)
        store.end_sessions(session=session, user=user)
    console.print(f"Password of {username!r} changed; their open sessions are logged out.")


@app.command()
def disable(username: Annotated[str, typer.Argument()]) -> None:
    """Stop a user from logging in and end their open sessions (conversations are kept)."""
    runtime = open_runtime()
    with runtime.sessions.begin() as session:
        store.set_disabled(session=session, username=username, disabled=True)
    console.print(f"User {username!r} disabled; their open sessions are logged out.")


@app.command()
def enable(username: Annotated[str, typer.Argument()]) -> None:
    """Let a disabled user log in again (with their password)."""
    runtime = open_runtime()
    with runtime.sessions.begin() as session:
        store.set_disabled(session=session, username=username, disabled=False)
    console.print(f"User {username!r} enabled.")
