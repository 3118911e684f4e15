"""Named backends: read from the database, completed with settings defaults, built once."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from backends import registry
from backends.base import Backend
from chatbot.db import history, store
from chatbot.errors import NotAllowedError
from chatbot.knowledge.tuning.registry import active_language_models
from chatbot.settings import Settings

ACTIVE_BACKEND = "active_backend"
DEFAULT_BACKEND = "faq"
LOCAL_FEWSHOT = "local-fewshot"
LOCAL_FINETUNED = "local-finetuned"
LLM_KINDS = ("fewshot", "finetuned")


@dataclass(frozen=True)
class ResolvedBackend:
    """A ready backend with the name and config hash its replies are stored under."""

    name: str
    kind: str
    config_hash: str
    backend: Backend


def kind_defaults(settings: Settings, kind: str) -> dict[str, Any]:
    """Config a stored backend inherits from settings unless its own config says otherwise."""
    r = settings.retrieval
    retrieval = {
        "index_dir": str(settings.index_dir),
        "model": r.model,
        # settings' choice, or the tuned embedder `afina kb use-model` made active
        "language_models": active_language_models(settings),
        "min_score": r.min_score,
        "language_min_scores": dict(r.language_min_scores),
        "language_sparse_weights": dict(r.language_sparse_weights),
        "language_view_weights": {k: list(v) for k, v in r.language_view_weights.items()},
        "top_k": r.top_k,
        "allow_download": r.allow_download,
        "model_cache": r.model_cache,
        "calibrated_handover": r.calibrated_handover,
        "short_words": r.short_words,
        "spelling_languages": list(r.spelling_languages),
    }
    if kind == "retrieval":
        return retrieval
    if kind in LLM_KINDS:
        llm = settings.llm
        defaults: dict[str, Any] = {
            "base_url": llm.base_url or local_base_url(llm.port),
            "model": llm.model,
            "api_key_env": llm.api_key_env,
            "timeout_s": llm.timeout_s,
            "max_retries": llm.max_retries,
            "max_tokens": llm.max_tokens,
            "temperature": llm.temperature,
            "prompt_budget": llm.prompt_budget,
            "retrieval": retrieval,
        }
        if kind == "fewshot" and llm.examples:
            defaults["examples"] = llm.examples
        return defaults
    return {}


def local_base_url(port: int) -> str:
    """The OpenAI-compatible URL of `afina llm serve` on ``port``."""
    return f"http://127.0.0.1:{port}/v1"


def with_secrets(settings: Settings, kind: str, config: dict[str, Any]) -> dict[str, Any]:
    """The config plus the API key read (by settings) from the variable it names; never stored."""
    if kind not in LLM_KINDS or not config.get("api_key_env"):
        return config
    return {**config, "api_key": settings.llm.api_key(str(config["api_key_env"]))}


def register_defaults(*, session: Session) -> None:
    """Register the built-in ``faq`` retrieval backend and make it active if nothing is."""
    if not any(b.name == DEFAULT_BACKEND for b in store.list_backends(session=session)):
        store.put_backend(session=session, name=DEFAULT_BACKEND, kind="retrieval", config={})
    if store.get_setting(session=session, key=ACTIVE_BACKEND) is None:
        store.set_setting(session=session, key=ACTIVE_BACKEND, value=DEFAULT_BACKEND)


def register_llm_defaults(
    *, session: Session, settings: Settings, base_url: str, lora: bool = False
) -> list[str]:
    """On `afina llm serve`: register ``faq`` and ``local-fewshot`` (and ``local-finetuned``
    with a LoRA) when missing; return the names newly registered."""
    register_defaults(session=session)
    names = {b.name for b in store.list_backends(session=session)}
    wanted = {LOCAL_FEWSHOT: "fewshot"} | ({LOCAL_FINETUNED: "finetuned"} if lora else {})
    # the URL is stored only when it differs from the default, so AFINA_LLM_PORT keeps working
    config = {} if base_url == local_base_url(settings.llm.port) else {"base_url": base_url}
    added = []
    for name, kind in wanted.items():
        if name not in names:
            store.put_backend(session=session, name=name, kind=kind, config=dict(config))
            added.append(name)
    return added


def stale_backends(*, session: Session, settings: Settings, base_url: str) -> list[str]:
    """Backends `afina llm serve` registered that point at another URL than ``base_url``."""
    stale = []
    for record in store.list_backends(session=session):
        if record.name in (LOCAL_FEWSHOT, LOCAL_FINETUNED):
            config = {**kind_defaults(settings, record.kind), **(record.config or {})}
            if config.get("base_url") != base_url:
                stale.append(record.name)
    return stale


def use_backend(*, session: Session, name: str, user_id: int | None = None) -> None:
    """Make ``name`` the backend answering everyone's next message (an admin's switch in the
    browser, ``afina backends use``). ``user_id`` is who switched, refused unless an enabled
    admin; None is the operator at the command line."""
    if user_id is not None:
        user = history.get_user_by_id(session=session, user_id=user_id)
        if user is None or user.disabled or user.role != "admin":
            raise NotAllowedError("only admins switch the answering backend")
    store.get_backend(session=session, name=name)  # NotFoundError names the registered ones
    store.set_setting(session=session, key=ACTIVE_BACKEND, value=name, user_id=user_id)


class BackendPool:
    """Builds each (name, config) once and hands out the active or a named backend."""

    def __init__(self, sessions: sessionmaker[Session], settings: Settings):
        self._sessions = sessions
        self.settings = settings
        self._built: dict[tuple[str, str], Backend] = {}

    def resolve(self, name: str | None = None) -> ResolvedBackend:
        """The backend ``name``, or the app-wide active one (blocking: reads the database)."""
        with self._sessions() as session:
            return self.resolve_in(session, name)

    def resolve_in(self, session: Session, name: str | None = None) -> ResolvedBackend:
        """``resolve`` with reads in ``session`` (a turn's own transaction): two small reads
        per turn, so an admin's switch (or config change) reaches every process at its next
        turn; a backend is built only when its name or config is new."""
        if name is None:
            name = store.setting_value(session=session, key=ACTIVE_BACKEND) or DEFAULT_BACKEND
        kind, own = store.backend_kind_config(session=session, name=name)
        config = {**kind_defaults(self.settings, kind), **own}
        digest = registry.config_hash(kind, config)
        key = (name, digest)
        if key not in self._built:
            self._built[key] = registry.build(kind, with_secrets(self.settings, kind, config))
        return ResolvedBackend(name=name, kind=kind, config_hash=digest, backend=self._built[key])

    def fallback_for(self, failed: str) -> ResolvedBackend | None:
        """The configured fallback backend, unless it is the one that failed or is unset."""
        name = self.settings.llm.fallback_backend
        if not name or name == failed:
            return None
        return self.resolve(name)

    async def aclose(self) -> None:
        """Close every built backend."""
        await asyncio.gather(*(b.aclose() for b in self._built.values()))
        self._built.clear()
