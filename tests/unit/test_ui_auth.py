"""Browser login: the cookie secret, the first admin, password checks, slowed-down failures."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from chatbot.db import store
from chatbot.passwords import hash_password
from chatbot.runtime import Runtime
from chatbot.settings import DatabaseSettings, Settings, WebSettings
from chatbot.ui.auth import (
    LoginThrottle,
    auth_secret,
    bootstrap_admin,
    check_password,
    login,
)
from chatbot.ui.texts import TEXTS, locale_of, t


def make_settings(tmp_path: Path, **web) -> Settings:
    return Settings(
        home=tmp_path / "var",
        database=DatabaseSettings(url=f"sqlite:///{tmp_path / 'afina.db'}"),
        web=WebSettings(**web),
    )


def test_auth_secret_is_generated_once_and_kept(tmp_path: Path):
    settings = make_settings(tmp_path)
    first = auth_secret(settings)
    assert len(first) > 40 and auth_secret(settings) == first
    assert (tmp_path / "var" / "chainlit-auth-secret").stat().st_mode & 0o077 == 0


def test_configured_auth_secret_wins(tmp_path: Path):
    settings = make_settings(tmp_path, auth_secret=SecretStr("from-settings"))
    assert auth_secret(settings) == "from-settings"
    assert not (tmp_path / "var" / "chainlit-auth-secret").exists()


def test_first_start_creates_admin_with_a_one_time_password(tmp_path: Path):
    settings = make_settings(tmp_path)
    runtime = Runtime.open(settings)
    try:
        with runtime.sessions.begin() as session:
            store.ensure_user(session=session, username="local")  # the CLI user cannot log in
        password = bootstrap_admin(runtime.sessions, settings)
        assert password
        assert bootstrap_admin(runtime.sessions, settings) is None  # only once
        admin = check_password(runtime.sessions, "admin", password)
        assert admin is not None and admin.role == "admin"
        assert check_password(runtime.sessions, "admin", password + "x") is None
        assert check_password(runtime.sessions, "nobody", password) is None
    finally:
        runtime.engine.dispose()


def test_configured_admin_password_is_used_and_not_printed(tmp_path: Path):
    settings = make_settings(tmp_path, admin_password=SecretStr("configured-secret"))
    runtime = Runtime.open(settings)
    try:
        assert bootstrap_admin(runtime.sessions, settings) is None
        assert check_password(runtime.sessions, "admin", "configured-secret") is not None
    finally:
        runtime.engine.dispose()


def test_disabled_users_cannot_log_in(tmp_path: Path):
    runtime = Runtime.open(make_settings(tmp_path))
    try:
        with runtime.sessions.begin() as session:
            user = store.add_user(
                session=session, username="eve", password_hash=hash_password("long enough")
            )
            user.disabled = True
        assert check_password(runtime.sessions, "eve", "long enough") is None
    finally:
        runtime.engine.dispose()


def test_repeated_failures_wait_longer_each_time_and_success_resets():
    throttle = LoginThrottle(base_s=0.5, max_s=8.0)
    alice = throttle.keys("Alice", None)
    delays = []
    for _ in range(6):
        assert throttle.reserve(alice) is not None
        throttle.release(alice, False)
        delays.append(throttle.delay(throttle._records["name:alice"].failures))
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    assert throttle.reserve(throttle.keys("alice", None)) > 0  # names are case-insensitive
    throttle.release(alice, None)
    assert throttle.reserve(throttle.keys("bob", None)) == 0  # others are not slowed down
    throttle.release(alice, True)  # a success resets
    assert throttle.reserve(alice) == 0


async def test_login_counts_failures(tmp_path: Path):
    runtime = Runtime.open(make_settings(tmp_path))
    throttle = LoginThrottle(base_s=0.0)
    try:
        with runtime.sessions.begin() as session:
            store.add_user(
                session=session, username="ana", password_hash=hash_password("right one")
            )
        assert await login(runtime.sessions, throttle, "ana", "wrong one") is None
        assert throttle._records["name:ana"].failures == 1
        user = await login(runtime.sessions, throttle, "ana", "right one")
        assert user is not None and user.username == "ana" and "name:ana" not in throttle._records
    finally:
        runtime.engine.dispose()


@pytest.mark.parametrize("key", sorted(TEXTS["en"]))
def test_every_text_exists_in_spanish(key: str):
    assert TEXTS["es"][key] and TEXTS["es"][key] != TEXTS["en"][key]


def test_browser_languages_map_to_afina_locales():
    assert locale_of("es-ES") == "es" and locale_of("es") == "es"
    assert locale_of("fr-FR") == "en" and locale_of(None) == "en"
    assert t("es", "backend_switched", user="ana", name="faq").startswith("ana cambió")
