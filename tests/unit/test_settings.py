"""Settings: one class, AFINA_ prefix, and .env.example listing every setting."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from chatbot.settings import Settings, get_settings

ROOT = Path(__file__).resolve().parents[2]


def env_names(model: type[BaseModel], prefix: str = "AFINA_") -> set[str]:
    """The environment variable of every leaf setting."""
    names = set()
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names |= env_names(annotation, f"{prefix}{name.upper()}_")
        else:
            names.add(f"{prefix}{name.upper()}")
    return names


def example_names() -> set[str]:
    lines = (ROOT / ".env.example").read_text().splitlines()
    return {
        line.split("=", 1)[0].strip() for line in lines if line.strip() and not line.startswith("#")
    }


def test_env_example_lists_every_setting_and_nothing_else():
    assert example_names() == env_names(Settings)


def test_env_example_values_are_valid(monkeypatch: pytest.MonkeyPatch):
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, value = line.split("=", 1)
            monkeypatch.setenv(key.strip(), value.strip())
    Settings()  # raises if any example value is invalid


def test_nested_setting_read_from_prefixed_variable(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AFINA_DATABASE_URL", "postgresql://afina@db/afina")
    monkeypatch.setenv("AFINA_RETRIEVAL_MIN_SCORE", "0.7")
    settings = get_settings()
    assert settings.database_url == "postgresql://afina@db/afina"
    assert settings.retrieval.min_score == 0.7


def test_default_database_is_sqlite_under_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("AFINA_HOME", str(tmp_path / "h"))
    assert get_settings().database_url == f"sqlite:///{tmp_path / 'h' / 'afina.db'}"


def test_out_of_range_setting_is_rejected(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AFINA_RETRIEVAL_MIN_SCORE", "3")
    with pytest.raises(ValueError, match="min_score"):
        Settings()
