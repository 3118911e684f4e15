"""The backend interface: a conversation in, text chunks out, facts recorded on ``ReplyMeta``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class Turn:
    """One message of a conversation."""

    role: Role
    content: str


@dataclass(frozen=True)
class Conversation:
    """What a backend sees: the turns so far, the last one being the user's question."""

    id: str
    turns: tuple[Turn, ...]
    locale: str = "en"
    # False when the last message's language was unclear ("como me registro", "ok") and
    # ``locale`` is the conversation's so far: a backend may then answer in another language.
    locale_sure: bool = True

    @property
    def last_user_text(self) -> str:
        """The latest user message (the question to answer)."""
        for turn in reversed(self.turns):
            if turn.role == "user":
                return turn.content
        raise ValueError(f"conversation {self.id} has no user message")


@dataclass(frozen=True)
class Source:
    """A knowledge-base entry a reply drew on."""

    id: str
    title: str
    score: float
    snippet: str
    locale: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form for storage."""
        return {
            "id": self.id,
            "title": self.title,
            "score": round(self.score, 4),
            "snippet": self.snippet,
            "locale": self.locale,
        }


@dataclass
class ReplyMeta:
    """Facts a backend records while it streams; the caller stores them as provenance."""

    model: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    sources: list[Source] = field(default_factory=list)
    handoff: bool = False
    index_version: str | None = None
    # the language the reply is in, when the backend chose one other than the conversation's
    locale: str | None = None
    # backend-specific provenance (e.g. example-set version), stored as messages.details
    details: dict[str, Any] = field(default_factory=dict)


class BackendError(Exception):
    """An upstream failure, with a message fit for the chat and whether a retry may help."""

    def __init__(self, user_message: str, *, retryable: bool, detail: str | None = None):
        super().__init__(user_message)
        self.user_message = user_message
        self.retryable = retryable
        self.detail = detail or user_message


class Backend(ABC):
    """Answers a conversation by streaming text; the caller does the timing."""

    kind: ClassVar[str]
    # Whether ``stream`` reads the earlier turns; False lets the caller pass only the question
    # (no reading of the whole conversation per turn).
    uses_history: ClassVar[bool] = True
    # Whether an answer may hang on something outside this process (a model server): the
    # caller then puts deadlines on the first and each next chunk. False for an answer computed
    # here, which costs no watching task per turn.
    may_hang: ClassVar[bool] = True

    @abstractmethod
    def stream(self, conversation: Conversation, meta: ReplyMeta) -> AsyncIterator[str]:
        """Yield the reply in chunks and fill ``meta``; raise ``BackendError`` on failure."""

    async def warm(self) -> None:  # noqa: B027 - optional hook
        """Load models or open connections before the first turn (so it is not slow)."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release connections or models held by the backend."""
