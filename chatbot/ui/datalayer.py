"""Chainlit's data layer as an adapter over Afina's own tables.

It only reads: the history sidebar and resume. Writes Chainlit asks of it go to their one
writer, which checks ownership: ratings to ``chatbot.reviews``, renaming and deleting a chat to
``chatbot.conversations``. Step and element writes are accepted and dropped: ChatService already
stored the turn (with the run-step id that ratings point at).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from chainlit.data.base import BaseDataLayer
from chainlit.data.utils import queue_until_user_message
from chainlit.element import ElementDict
from chainlit.step import StepDict
from chainlit.types import (
    Feedback,
    PageInfo,
    PaginatedResponse,
    Pagination,
    ThreadDict,
    ThreadFilter,
)
from chainlit.user import PersistedUser, User

from chatbot import conversations, reviews
from chatbot.db import history, store
from chatbot.db.models import Message
from chatbot.db.recovery import INTERRUPTED
from chatbot.db.session import retrying
from chatbot.ui import state
from chatbot.ui.auth import CURRENT_USER_ID
from chatbot.ui.render import (
    answer_markdown,
    correction_element,
    derived_id,
    fallback_notice,
    retrieval_summary,
)
from chatbot.ui.texts import t

log = logging.getLogger(__name__)
T = TypeVar("T")
ASSISTANT = "Afina"


def iso(moment: datetime) -> str:
    """An ISO timestamp the browser parses as UTC."""
    return moment.replace(tzinfo=None).isoformat() + "Z"


async def run_db(work: Callable[[Any], T], *, write: bool = False) -> T:
    """Run ``work(session)`` off the event loop in its own transaction (retried once when the
    database connection failed)."""
    sessions = state.runtime().sessions

    def call() -> T:
        if write:
            with sessions.begin() as session:
                return work(session)
        with sessions() as session:
            return work(session)

    return await asyncio.to_thread(retrying, call)  # once more after a dropped connection


async def rate(feedback: Feedback, user_id: int | None) -> str:
    """Rate an answer of ``user_id``'s own (``chatbot.reviews`` writes it); the feedback id
    the browser keeps is the answer's message id."""
    return await run_db(
        lambda s: reviews.rate(
            session=s,
            run_step_id=feedback.forId,
            user_id=user_id,
            value=feedback.value,
            comment=feedback.comment,
        ),
        write=True,
    )


async def unrate(feedback_id: str, user_id: int | None) -> bool:
    """Remove ``user_id``'s rating of their own answer ``feedback_id`` (``chatbot.reviews``)."""
    await run_db(
        lambda s: reviews.unrate(session=s, message_id=feedback_id, user_id=user_id), write=True
    )
    return True


class AfinaDataLayer(BaseDataLayer):
    """History and resume over Afina's tables; writes are handed to their one writer."""

    # users ------------------------------------------------------------------------------------
    async def get_user(self, identifier: str) -> PersistedUser | None:
        """The Chainlit view of a user of ours."""

        def work(session):
            user = store.get_user(session=session, username=identifier)
            if user is None or user.disabled:
                return None
            return PersistedUser(
                id=str(user.id),
                identifier=user.username,
                display_name=user.display_name or user.username,
                createdAt=iso(user.created_at),
                metadata={"role": user.role},
            )

        return await run_db(work)

    async def create_user(self, user: User) -> PersistedUser | None:
        """Users are created with ``afina users add``; logging in only looks them up."""
        return await self.get_user(user.identifier)

    # feedback ----------------------------------------------------------------------------------
    async def upsert_feedback(self, feedback: Feedback) -> str:
        """Store a thumbs up/down (+comment) against the answer of the run step ``forId``;
        only the user whose cookie was checked for this request, on their own answers."""
        return await rate(feedback, CURRENT_USER_ID.get())

    async def delete_feedback(self, feedback_id: str) -> bool:
        """Remove the rating of the answer ``feedback_id`` (a message id), the owner's only."""
        return await unrate(feedback_id, CURRENT_USER_ID.get())

    # steps and elements: the service stores content, so these are accepted and dropped ---------
    @queue_until_user_message()
    async def create_step(self, step_dict: StepDict) -> None:
        """Dropped: ChatService already stores the messages of a turn."""

    @queue_until_user_message()
    async def update_step(self, step_dict: StepDict) -> None:
        """Dropped: ChatService already stores the messages of a turn."""

    @queue_until_user_message()
    async def delete_step(self, step_id: str) -> None:
        """Dropped: stored messages are never edited from the browser."""

    @queue_until_user_message()
    async def create_element(self, element) -> None:
        """Dropped: sources are stored with the answer and rebuilt on resume."""

    @queue_until_user_message()
    async def delete_element(self, element_id: str, thread_id: str | None = None) -> None:
        """Dropped: elements (the correction editor) are rebuilt from stored answers."""

    async def get_element(self, thread_id: str, element_id: str) -> ElementDict | None:
        """Elements are rebuilt with the thread; none is fetched alone."""
        return None

    async def get_favorite_steps(self, user_id: str) -> list[StepDict]:
        """Favorites are not offered."""
        return []

    # threads -----------------------------------------------------------------------------------
    async def get_thread_author(self, thread_id: str) -> str:
        """The username owning the conversation ('' when there is none)."""
        owner = await run_db(
            lambda s: history.conversation_owner(session=s, conversation_id=thread_id)
        )
        return owner or ""

    async def delete_thread(self, thread_id: str) -> None:
        """Delete the conversation: ``chatbot.conversations`` checks it is the user's."""
        user_id = CURRENT_USER_ID.get()
        await run_db(
            lambda s: conversations.delete(session=s, conversation_id=thread_id, user_id=user_id),
            write=True,
        )

    async def list_threads(
        self, pagination: Pagination, filters: ThreadFilter
    ) -> PaginatedResponse[ThreadDict]:
        """One page of the user's own conversations (search and rating filters work)."""
        if not filters.userId:
            return PaginatedResponse(PageInfo(False, None, None), [])
        cursor = pagination.cursor or ""
        offset = int(cursor) if cursor.isdigit() else 0
        rating = None if filters.feedback is None else (1 if filters.feedback == 1 else -1)

        def work(session):
            return history.list_conversations(
                session=session,
                user_id=int(filters.userId or 0),
                search=filters.search,
                rating=rating,
                offset=offset,
                limit=pagination.first,
            )

        rows, more = await run_db(work)
        threads: list[ThreadDict] = [
            {
                "id": c.id,
                "createdAt": iso(c.updated_at),
                "name": c.title,
                "userId": str(c.user_id),
                "userIdentifier": owner,
                "tags": [],
                "metadata": {},
                "steps": [],
                "elements": [],
            }
            for c, owner in rows
        ]
        end = str(offset + len(rows)) if rows else None
        return PaginatedResponse(PageInfo(more, str(offset), end), threads)

    async def get_thread(self, thread_id: str) -> ThreadDict | None:
        """The conversation rebuilt as Chainlit steps: question, run, retrieval, answer."""
        view = await run_db(lambda s: history.thread_view(session=s, conversation_id=thread_id))
        return None if view is None else thread_dict(view)

    async def update_thread(
        self,
        thread_id: str,
        name: str | None = None,
        user_id: str | None = None,
        metadata: dict | None = None,
        tags: list[str] | None = None,
    ) -> None:
        """Rename a conversation from the sidebar (``chatbot.conversations`` checks it is the
        user's). Chainlit's call with the raw first message (with a user id, before the message
        is validated) is ignored: a rejected message must leave no conversation behind, and
        ChatService titles it from the cleaned question. Other thread data (metadata, tags) is
        not kept."""
        if not name or user_id is not None:
            return
        owner = CURRENT_USER_ID.get()
        await run_db(
            lambda s: conversations.rename(
                session=s, conversation_id=thread_id, user_id=owner, title=name
            ),
            write=True,
        )

    async def build_debug_url(self) -> str:
        """No external debugger."""
        return ""

    async def close(self) -> None:
        """The runtime owns the engine; nothing to close here."""


def thread_dict(view: history.ThreadView) -> ThreadDict:
    """Chainlit's thread shape for a stored conversation."""
    conversation = view.conversation
    steps: list[StepDict] = []
    elements: list[ElementDict] = []
    parent: str | None = None
    for message in view.messages:
        if message.role == "user":
            parent = message.id
            steps.append(_user_step(message, view.owner))
            if message.status == INTERRUPTED:
                steps.append(_interrupted_step(message, conversation.locale))
        elif message.role == "assistant":
            new_steps, new_elements = _answer_steps(message, parent, conversation.locale, view)
            steps.extend(new_steps)
            elements.extend(new_elements)
    return {
        "id": conversation.id,
        "createdAt": iso(conversation.created_at),
        "name": conversation.title,
        "userId": str(conversation.user_id),
        "userIdentifier": view.owner,
        "tags": [],
        "metadata": _json_safe(conversation.meta),
        "steps": steps,
        "elements": elements,
    }


def _user_step(message: Message, owner: str) -> StepDict:
    return {
        "id": message.id,
        "threadId": message.conversation_id,
        "type": "user_message",
        "name": owner,
        "output": message.content,
        "createdAt": iso(message.created_at),
        "start": iso(message.created_at),
        "end": iso(message.created_at),
        "parentId": None,
        "metadata": {},
    }


def _interrupted_step(question: Message, locale: str) -> StepDict:
    """A note under a question whose answer never came (the server stopped mid-turn)."""
    when = iso(question.created_at)
    return {
        "id": derived_id(question.id, "interrupted"),
        "threadId": question.conversation_id,
        "type": "assistant_message",
        "name": ASSISTANT,
        "output": f"⚠️ {t(locale, 'interrupted')}",
        "createdAt": when,
        "start": when,
        "end": when,
        "parentId": question.id,
        "metadata": {},
    }


def _answer_steps(
    message: Message, question_id: str | None, locale: str, view: history.ThreadView
) -> tuple[list[StepDict], list[ElementDict]]:
    """The run step (carrying feedback), the retrieval step, the answer and its sources."""
    when = iso(message.created_at)
    common = {"threadId": message.conversation_id, "createdAt": when, "start": when, "end": when}
    run_id = message.run_step_id or derived_id(message.id, "run")
    sources = list(message.sources or [])
    run: StepDict = {
        **common,  # type: ignore[typeddict-item]
        "id": run_id,
        "type": "run",
        "name": "on_message",
        "parentId": question_id,
        "output": "",
        "metadata": {},
    }
    if message.id in view.feedback and message.run_step_id:
        value, comment = view.feedback[message.id]
        run["feedback"] = {
            "id": message.id,
            "forId": run_id,
            "value": 1 if value > 0 else 0,
            "comment": comment,
        }
    steps: list[StepDict] = [run]
    if message.error is None and message.index_version is not None:  # a knowledge-base answer
        steps.append(
            {
                **common,  # type: ignore[typeddict-item]
                "id": derived_id(message.id, "retrieval"),
                "type": "retrieval",
                "name": t(locale, "retrieval"),
                "parentId": run_id,
                "output": retrieval_summary(sources, locale),
                "metadata": {},
            }
        )
    content = answer_markdown(
        text=message.content,
        locale=locale,
        backend=message.backend_name,
        sources=sources,
        handoff=message.handoff,
        error=message.content if message.error and message.status is None else None,
        partial=message.status is not None,
        notice=fallback_notice(message.details),
    )
    steps.append(
        {
            **common,  # type: ignore[typeddict-item]
            "id": message.id,
            "type": "assistant_message",
            "name": ASSISTANT,
            "parentId": run_id,
            "output": content,
            "metadata": {},
        }
    )
    if message.error is not None:
        return steps, []
    return steps, [_correction_element(message, view.corrections.get(message.id), locale)]


def _correction_element(message: Message, correction: str | None, locale: str) -> ElementDict:
    """The correction editor under an answer, showing the saved correction if there is one."""
    element = correction_element(
        message.id, message.conversation_id, message.content, correction, locale
    )
    return element  # type: ignore[return-value]


def _json_safe(value: Any) -> dict:
    """Metadata that survives JSON (anything else is dropped)."""
    try:
        return json.loads(json.dumps(value or {}))
    except (TypeError, ValueError):
        return {}
