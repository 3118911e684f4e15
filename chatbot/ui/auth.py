"""Login for the browser: passwords checked against ``users``, failures slowed down."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from chatbot.db import history, store
from chatbot.passwords import hash_password, verify_password
from chatbot.settings import Settings

log = logging.getLogger(__name__)
SECRET_FILE = "chainlit-auth-secret"
INVALID = "invalid credentials"


@dataclass(frozen=True)
class LoginUser:
    """Who logged in: what the UI needs to know about them."""

    id: int
    username: str
    display_name: str | None
    role: str


def auth_secret(settings: Settings) -> str:
    """The cookie-signing secret: from settings, or generated once and kept under the home."""
    configured = settings.web.auth_secret.get_secret_value()
    if configured:
        return configured
    path = Path(settings.home) / SECRET_FILE
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret + "\n")
    return secret


def bootstrap_admin(sessions: sessionmaker[Session], settings: Settings) -> str | None:
    """Create ``admin`` when nobody can log in; return its password when it was generated."""
    with sessions.begin() as session:
        if not history.needs_first_admin(session=session):
            return None
        configured = settings.web.admin_password.get_secret_value()
        password = configured or secrets.token_urlsafe(12)
        history.create_first_admin(session=session, password_hash=hash_password(password))
    return None if configured else password


def check_password(
    sessions: sessionmaker[Session], username: str, password: str
) -> LoginUser | None:
    """The user when the password matches and the account is enabled (blocking)."""
    with sessions() as session:
        user = store.get_user(session=session, username=username)
        if user is None or user.disabled or not verify_password(user.password_hash, password):
            return None
        return LoginUser(user.id, user.username, user.display_name, user.role)


class LoginThrottle:
    """Remembers recent failures per name and makes each further try wait longer."""

    def __init__(self, *, base_s: float = 0.5, max_s: float = 8.0, forget_s: float = 900.0):
        self.base_s, self.max_s, self.forget_s = base_s, max_s, forget_s
        self._failures: dict[str, tuple[int, float]] = {}

    def delay(self, username: str) -> float:
        """Seconds to wait before answering a login for ``username``."""
        count, last = self._failures.get(username.lower(), (0, 0.0))
        if count == 0 or time.monotonic() - last > self.forget_s:
            return 0.0
        return min(self.base_s * 2 ** (count - 1), self.max_s)

    def failed(self, username: str) -> None:
        """Count a failed login."""
        key = username.lower()
        count, last = self._failures.get(key, (0, 0.0))
        if time.monotonic() - last > self.forget_s:
            count = 0
        self._failures[key] = (count + 1, time.monotonic())
        if len(self._failures) > 10_000:  # bound memory under a spray of names
            self._failures.pop(next(iter(self._failures)))

    def succeeded(self, username: str) -> None:
        """Forget the failures of ``username``."""
        self._failures.pop(username.lower(), None)


async def login(
    sessions: sessionmaker[Session], throttle: LoginThrottle, username: str, password: str
) -> LoginUser | None:
    """Check a login off the event loop; repeated failures for a name answer ever slower."""
    await asyncio.sleep(throttle.delay(username))
    user = await asyncio.to_thread(check_password, sessions, username, password)
    if user is None:
        throttle.failed(username)
        log.warning("failed login for %r", username[:64])
        return None
    throttle.succeeded(username)
    return user
