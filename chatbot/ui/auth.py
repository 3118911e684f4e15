"""Browser login: passwords checked against ``users``, failures throttled, cookies revocable.

- Every login verifies one Argon2 hash, a dummy one for unknown or disabled names, so a wrong
  name takes as long as a wrong password.
- ``LoginThrottle`` checks and reserves a try per name and per client before the password is
  verified: parallel tries for one name are refused; failures make the next try wait longer.
- A login cookie carries the user's ``session_epoch``; logout, ``afina users passwd`` and
  disabling raise it, and ``authenticate_token`` (installed into Chainlit) refuses older cookies
  on every HTTP request and websocket connect.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from chatbot.db import history, store
from chatbot.db.models import User
from chatbot.errors import AfinaError
from chatbot.passwords import hash_password, verify_password
from chatbot.settings import Settings

log = logging.getLogger(__name__)
SECRET_FILE = "chainlit-auth-secret"
INVALID = "invalid credentials"
ENDED = "your session has ended: log in again"
# The database id of the user whose cookie was accepted for the current request (feedback
# ownership is checked against it); None when no cookie was checked.
CURRENT_USER_ID: ContextVar[int | None] = ContextVar("afina_current_user_id", default=None)
# Set by the host app around POST /chat/login: {"client": address}; the login adds
# {"retry_after": seconds} when it was refused by the throttle.
LOGIN_ATTEMPT: ContextVar[dict[str, Any] | None] = ContextVar("afina_login", default=None)


@dataclass(frozen=True)
class LoginUser:
    """Who logged in: what the UI needs to know about them."""

    id: int
    username: str
    display_name: str | None
    role: str
    epoch: int = 0
    created_at: str = ""

    @classmethod
    def of(cls, user: User) -> LoginUser:
        """The login view of a stored user."""
        created = user.created_at.replace(tzinfo=None).isoformat() + "Z"
        epoch = user.session_epoch or 0
        return cls(user.id, user.username, user.display_name, user.role, epoch, created)


class TooManyAttempts(AfinaError):
    """Logins for this name or from this client failed too often just now."""

    def __init__(self, retry_after: float):
        self.retry_after = max(1, round(retry_after + 0.49))
        super().__init__(
            f"too many failed logins: try again in {self.retry_after} s "
            "(or ask an admin to reset the password with 'afina users passwd')"
        )


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
    dummy_hash()  # made now, so the first login for an unknown name is not slower
    with sessions.begin() as session:
        if not history.needs_first_admin(session=session):
            return None
        configured = settings.web.admin_password.get_secret_value()
        password = configured or secrets.token_urlsafe(12)
        history.create_first_admin(session=session, password_hash=hash_password(password))
    return None if configured else password


@cache
def dummy_hash() -> str:
    """An Argon2 hash of a random password: verified for names that cannot log in."""
    return hash_password(secrets.token_urlsafe(24))


def check_password(
    sessions: sessionmaker[Session], username: str, password: str
) -> LoginUser | None:
    """The user when the password matches and the account is enabled (blocking).

    Exactly one Argon2 verification runs whatever the name, so timing tells nothing."""
    with sessions() as session:
        user = store.get_user(session=session, username=username)
        usable = user is not None and not user.disabled and bool(user.password_hash)
        stored = user.password_hash if usable and user is not None else None
        matches = verify_password(stored or dummy_hash(), password)
        if user is None or not usable or not matches:
            return None
        return LoginUser.of(user)


@dataclass
class _Record:
    failures: int = 0
    ready_at: float = 0.0  # no try before this moment (monotonic seconds)
    busy: int = 0  # tries being verified right now
    last: float = 0.0


class LoginThrottle:
    """Failure counters per name and per client, checked and reserved before verifying.

    ``reserve`` runs without awaiting, so on the event loop the check and the reservation are
    one step: a try for a name while another try for it is under way (or more than
    ``client_parallel`` at once from one client) is refused at once. Tries one after the other
    are slowed instead: a name's n-th failure in a row makes its next try wait
    ``base_s * 2**(n-1)`` (at most ``max_s``) before the password is checked; from its
    ``client_free``-th failure (across names) a client waits the same way.
    """

    def __init__(
        self,
        *,
        base_s: float = 0.5,
        max_s: float = 8.0,
        forget_s: float = 900.0,
        client_free: int = 20,
        client_parallel: int = 4,
        max_keys: int = 10_000,
    ):
        self.base_s, self.max_s, self.forget_s = base_s, max_s, forget_s
        self.client_free, self.client_parallel = client_free, client_parallel
        self.max_keys = max_keys
        self._records: dict[str, _Record] = {}

    @staticmethod
    def keys(username: str, client: str | None) -> tuple[str, ...]:
        """The counters a login touches: its name, and its client when known."""
        name = f"name:{username.strip().lower()[:256]}"
        return (name, f"client:{client}") if client else (name,)

    def reserve(self, keys: tuple[str, ...]) -> float | None:
        """None when refused (tries already under way); else the keys are reserved and the
        result is the seconds to wait before checking the password (0 = at once)."""
        now, wait = time.monotonic(), 0.0
        for key in keys:
            record = self._records.get(key)
            if record is None:
                continue
            parallel = self.client_parallel if key.startswith("client:") else 1
            if record.busy >= parallel:
                return None
            if not record.busy and now - record.last > self.forget_s:
                del self._records[key]
                continue
            wait = max(wait, record.ready_at - now)
        for key in keys:
            record = self._records.setdefault(key, _Record(last=now))
            record.busy += 1
            record.ready_at = max(record.ready_at, now + wait)
        self._bound()
        return wait

    def retry_after(self, keys: tuple[str, ...]) -> float:
        """Seconds after which a refused try may be sent again."""
        now = time.monotonic()
        waits = [r.ready_at - now for k in keys if (r := self._records.get(k)) is not None]
        return max([self.base_s, *waits])

    def release(self, keys: tuple[str, ...], succeeded: bool | None) -> None:
        """End a reserved try: count a failure, forget the name on success, None = not tried."""
        now = time.monotonic()
        for key in keys:
            record = self._records.get(key)
            if record is None:
                continue
            record.busy = max(0, record.busy - 1)
            if succeeded is None:
                continue
            if succeeded and key.startswith("name:") and not record.busy:
                del self._records[key]
            elif not succeeded:
                record.failures += 1
                record.last = now
                free = self.client_free - 1 if key.startswith("client:") else 0
                record.ready_at = now + self.delay(record.failures - free)

    def delay(self, failures: int) -> float:
        """Seconds before the next try after ``failures`` counted failures."""
        if failures <= 0:
            return 0.0
        return min(self.base_s * 2 ** min(failures - 1, 30), self.max_s)

    def _bound(self) -> None:
        """Keep memory bounded under a spray of names (the oldest idle counters go first)."""
        if len(self._records) <= self.max_keys:
            return
        for key in list(self._records)[: len(self._records) - self.max_keys]:
            if not self._records[key].busy:
                del self._records[key]


async def login(
    sessions: sessionmaker[Session],
    throttle: LoginThrottle,
    username: str,
    password: str,
    client: str | None = None,
) -> LoginUser | None:
    """Check a login off the event loop, after the back-off its name and client have earned;
    ``TooManyAttempts`` (nothing checked) while another try for the name is under way."""
    keys = throttle.keys(username, client)
    wait = throttle.reserve(keys)
    if wait is None:
        log.warning("parallel login for %r from %s refused", username[:64], client)
        raise TooManyAttempts(throttle.retry_after(keys))
    outcome: bool | None = None
    try:
        await asyncio.sleep(wait)
        user = await asyncio.to_thread(check_password, sessions, username, password)
        outcome = user is not None
    finally:
        throttle.release(keys, outcome)
    if user is None:
        log.warning("failed login for %r from %s", username[:64], client)
    return user


def session_user(*, session: Session, username: str, epoch: Any) -> LoginUser | None:
    """The user a cookie names, when it is still valid: enabled, and of the current epoch."""
    user = store.get_user(session=session, username=username)
    if user is None or user.disabled or not isinstance(epoch, int):
        return None
    if epoch != (user.session_epoch or 0):
        return None
    return LoginUser.of(user)


def end_sessions(*, session: Session, username: str, epoch: Any) -> bool:
    """Logout: void every cookie of ``username`` when ``epoch`` is current; whether it was."""
    user = store.get_user(session=session, username=username)
    if user is None or epoch != (user.session_epoch or 0):
        return False
    store.end_sessions(session=session, user=user)
    return True
