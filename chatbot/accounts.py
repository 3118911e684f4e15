"""User accounts as admins manage them (web page and CLI): every change ends open sessions."""

from __future__ import annotations

from sqlalchemy.orm import Session

from chatbot.db import store
from chatbot.db.models import User
from chatbot.errors import InputError, NotFoundError
from chatbot.passwords import hash_password


def _user(session: Session, username: str) -> User:
    user = store.get_user(session=session, username=username)
    if user is None:
        raise NotFoundError(f"no user {username!r}; see 'afina users list'")
    return user


def add(*, session: Session, username: str, role: str, password: str) -> User:
    """A new user who can log in with ``password`` (8 characters or more)."""
    name = username.strip()
    if not name or len(name) > 64 or any(c.isspace() for c in name):
        raise InputError("the user name must be 1-64 characters without spaces")
    return store.add_user(
        session=session, username=name, role=role, password_hash=hash_password(password)
    )


def set_password(*, session: Session, username: str, password: str) -> None:
    """Reset a password; the user's open sessions are logged out."""
    user = _user(session, username)
    user.password_hash = hash_password(password)
    store.end_sessions(session=session, user=user)


def set_role(*, session: Session, username: str, role: str, by: str) -> None:
    """Make a user an agent or an admin (not oneself: an admin cannot lock themselves out)."""
    if role not in store.ROLES:
        raise InputError(f"unknown role {role!r}; use one of: {', '.join(store.ROLES)}")
    if username == by:
        raise InputError("you cannot change your own role; ask another admin")
    user = _user(session, username)
    user.role = role
    store.end_sessions(session=session, user=user)


def set_disabled(*, session: Session, username: str, disabled: bool, by: str) -> None:
    """Disable (logging them out) or enable a user; never oneself."""
    if username == by and disabled:
        raise InputError("you cannot disable yourself; ask another admin")
    store.set_disabled(session=session, username=username, disabled=disabled)
