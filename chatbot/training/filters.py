"""Which conversations and assistant turns an export takes (``--since``, ``--rating``, ...)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal

from chatbot.db.training_queries import StoredConversation, StoredMessage, conversation_filter
from chatbot.errors import InputError

Rating = Literal["positive", "not-negative", "any"]
RATINGS: tuple[str, ...] = ("positive", "not-negative", "any")


@dataclass(frozen=True)
class ExportFilters:
    """Conversation filters; ``rating`` also decides which assistant turns are approved.

    - ``positive``: only upvoted or corrected turns are approved.
    - ``not-negative`` (default): every turn except a downvoted one without a correction;
      conversations holding such a turn (or one an admin rejected) are left out.
    - ``any``: like ``not-negative`` for turns, but conversations with a downvoted turn stay
      (that turn is context, never a target).

    An admin's review outweighs all of these: an approved turn is a target (its newest
    correction, if any), a rejected one never is, nor is its correction.
    """

    since: datetime | None = None
    until: datetime | None = None
    backend: str | None = None
    rating: Rating = "not-negative"
    corrected_only: bool = False
    min_turns: int = 1
    user: str | None = None
    locale: str | None = None

    def __post_init__(self) -> None:
        if self.rating not in RATINGS:
            raise InputError(f"unknown --rating {self.rating!r}; use one of: {', '.join(RATINGS)}")
        if self.min_turns < 0:
            raise InputError("--min-turns must be 0 or more")
        if self.since and self.until and self.since >= self.until:
            raise InputError("--since must be before --until")

    def sql(self) -> list[Any]:
        """The part of the filter the database applies."""
        return conversation_filter(
            since=self.since,
            until=self.until,
            backend=self.backend,
            username=self.user,
            locale=self.locale,
            corrected_only=self.corrected_only,
        )

    def to_json(self) -> dict[str, Any]:
        """The filters as recorded in the export's lineage."""
        data = asdict(self)
        for key in ("since", "until"):
            if data[key] is not None:
                data[key] = data[key].isoformat()
        return data


def is_downvoted(message: StoredMessage) -> bool:
    """A turn with net negative feedback and no correction, unless an admin approved it
    (approval outweighs ratings); never a training target."""
    return message.rating < 0 and message.correction is None and message.review != "approved"


# backends that write their own text; their answers are targets only when upvoted or corrected
GENERATIVE_KINDS = ("fewshot", "finetuned")


def is_approved(message: StoredMessage, filters: ExportFilters) -> bool:
    """Whether an assistant turn may be a training target under ``filters``."""
    if message.error is not None or message.review == "rejected" or is_downvoted(message):
        return False
    if message.review == "approved":  # an admin's review outweighs ratings and the backend
        return not filters.corrected_only or message.correction is not None
    if filters.corrected_only:
        return message.correction is not None
    if message.correction is not None or message.rating > 0:
        return True
    if message.backend_kind in GENERATIVE_KINDS:  # may invent facts: only once reviewed
        return False
    return filters.rating != "positive"


def keep_conversation(conversation: StoredConversation, filters: ExportFilters) -> str | None:
    """None when the conversation passes the filters the database could not apply; else why not."""
    messages = conversation.messages
    if sum(1 for m in messages if m.role == "user") < filters.min_turns:
        return "fewer_turns"
    if filters.rating == "not-negative" and any(
        m.role == "assistant" and is_downvoted(m) for m in messages
    ):
        return "downvoted"
    if filters.rating == "not-negative" and any(m.review == "rejected" for m in messages):
        return "rejected"
    return None
