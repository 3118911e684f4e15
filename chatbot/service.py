"""ChatService: one turn end to end — store the question, stream the answer, store provenance."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from backends.base import BackendError, Conversation, ReplyMeta, Turn
from backends.language import detect_sure
from chatbot import conversations
from chatbot.backend_pool import BackendPool, ResolvedBackend
from chatbot.batching import batched
from chatbot.db import answer_store, recovery, store
from chatbot.db.session import outage, retrying
from chatbot.deadlines import within_deadlines
from chatbot.errors import DatabaseUnavailable, InputError
from chatbot.journal import FILE_NAME as JOURNAL_FILE
from chatbot.journal import Journal, describe
from chatbot.pricing import cost_usd
from chatbot.settings import ChatSettings

log = logging.getLogger(__name__)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")  # not text: unstorable as UTF-8
TITLE_CHARS = 80
FALLBACK_NOTE = {
    "en": "Here is an answer from the backup assistant instead:",
    "es": "Esta es la respuesta del asistente de respaldo:",
}
UNSAVED = (
    "The database is not answering, even after a retry: this turn is kept in "
    f"AFINA_HOME/{JOURNAL_FILE} and written to the database when it is back."
)
UNEXPECTED = {
    "en": "Something went wrong while answering. Please try again in a moment.",
    "es": "Algo salió mal al responder. Vuelve a intentarlo en un momento.",
}


def clean_text(text: str, limit: int) -> str:
    """The question without control characters (lone surrogates become U+FFFD, so the question
    is kept); empty or over ``limit`` is an ``InputError``."""
    cleaned = _LONE_SURROGATE.sub("\ufffd", _CONTROL.sub("", text)).strip()
    if not cleaned:
        raise InputError("The message is empty: type a question first.")
    if len(cleaned) > limit:
        raise InputError(
            f"The message is {len(cleaned)} characters long; the limit is {limit}. "
            "Shorten it, or raise AFINA_CHAT_MAX_MESSAGE_CHARS."
        )
    return cleaned


@dataclass
class TurnResult:
    """What a finished turn produced; ``error`` is the message shown instead of an answer."""

    user_message_id: str
    reply_id: str | None = None
    backend_name: str | None = None
    text: str = ""
    meta: ReplyMeta = field(default_factory=ReplyMeta)
    error: str | None = None
    ttft_ms: float | None = None
    latency_ms: float | None = None
    # the backend that failed when the fallback backend produced this answer
    fallback_from: str | None = None
    cost_usd: float | None = None
    # None = complete; "partial" = cut off after some text (stored as shown, with the error)
    status: str | None = None
    # the conversation's language for this turn (as detected from the question)
    locale: str | None = None
    # the UI's run step of this turn (feedback points at it), stored with the answer
    run_step_id: str | None = None


class ChatService:
    """The one writer of conversation content; UI, CLI and evaluator all call it."""

    def __init__(self, sessions: sessionmaker[Session], pool: BackendPool, chat: ChatSettings):
        self._sessions = sessions
        self._pool = pool
        self._chat = chat
        # turns the database refused past the retry, written back when it answers again
        self.journal = Journal(Path(pool.settings.home) / JOURNAL_FILE)

    def replay_unsaved(self) -> int:
        """Write the turns kept while the database was down (blocking); how many were."""
        if not self.journal.path.exists():
            return 0

        def write(record: dict) -> None:
            with self._sessions.begin() as session:
                recovery.write_unsaved(session=session, record=record)

        return self.journal.replay(write)

    async def start_conversation(
        self, *, user_id: int, locale: str | None = None, conversation_id: str | None = None
    ) -> str:
        """Create a conversation and return its id."""
        return await asyncio.to_thread(
            self._start, user_id, locale or self._chat.default_locale, conversation_id
        )

    def _start(self, user_id: int, locale: str, conversation_id: str | None) -> str:
        with self._sessions.begin() as session:
            conversation = conversations.start(
                session=session, user_id=user_id, locale=locale, conversation_id=conversation_id
            )
            return conversation.id

    def reply(
        self,
        *,
        conversation_id: str,
        text: str,
        user_message_id: str | None = None,
        reply_id: str | None = None,
        backend: str | None = None,
        run_step_id: str | None = None,
    ) -> Reply:
        """Validate the question now (``InputError``); stream the answer by iterating the result.

        ``backend`` names the backend for this one turn (the evaluator); default: the active one.
        ``run_step_id``: the browser's run step, stored with the answer (feedback points at it).
        """
        question = clean_text(text, self._chat.max_message_chars)
        return Reply(
            self, conversation_id, question, user_message_id, reply_id, backend, run_step_id
        )

    # steps of one turn, run off the event loop ------------------------------------------------
    def _store_question(
        self, conversation_id: str, question: str, message_id: str, backend: str | None
    ) -> Opened:
        """Commit the user's message before any backend is called, in one transaction with
        reading which backend answers (a failure to find or build it is returned, to be the
        turn's answer) and the conversation the backend sees: only the question for a backend
        that reads no history."""
        with self._sessions.begin() as session:
            resolved: ResolvedBackend | None = None
            problem: Exception | None = None
            try:
                resolved = self._pool.resolve_in(session, backend)
            except DBAPIError:
                raise
            except Exception as exc:  # stored as the turn's error once the question is in
                problem = exc
            title, locale = store.title_and_locale(session=session, conversation_id=conversation_id)
            sure = True
            changes: dict[str, Any] = {} if title else {"title": question[:TITLE_CHARS]}
            if self._chat.detect_language:  # follow the language the customer writes in
                detected, sure = detect_sure(question, locale)
                if detected != locale:
                    locale = changes["locale"] = detected
            store.insert_message(
                session=session,
                values={
                    "id": message_id,
                    "conversation_id": conversation_id,
                    "role": "user",
                    "content": question,
                },
            )
            store.touch_conversation(session=session, conversation_id=conversation_id, **changes)
            history = resolved is None or resolved.backend.uses_history
            turns = self._turns(session, conversation_id) if history else (Turn("user", question),)
            view = Conversation(id=conversation_id, turns=turns, locale=locale, locale_sure=sure)
            return Opened(view, resolved, problem, history)

    def _history(self, view: Conversation) -> Conversation:
        """``view`` with the whole conversation (for a fallback that reads it)."""
        with self._sessions() as session:
            return replace(view, turns=self._turns(session, view.id))

    @staticmethod
    def _turns(session: Session, conversation_id: str) -> tuple[Turn, ...]:
        rows = store.conversation_turns(session=session, conversation_id=conversation_id)
        return tuple(Turn(role, content) for role, content in rows)  # type: ignore[arg-type]

    def _store_answer(
        self, conversation_id: str, fields: dict[str, Any], locale: str | None, checkpointed: bool
    ) -> str:
        """Store the assistant message with its provenance (or the error): the row written
        while it streamed is updated, else one is added."""
        with self._sessions.begin() as session:
            return answer_store.save_answer(  # a reply in another language: the chat follows
                session=session,
                conversation_id=conversation_id,
                fields=fields,
                checkpointed=checkpointed,
                locale=locale,
            )

    def _checkpoint(self, conversation_id: str, fields: dict[str, Any], first: bool) -> None:
        """Store the text of an answer still streaming (blocking)."""
        with self._sessions.begin() as session:
            if first:
                answer_store.checkpoint(
                    session=session, conversation_id=conversation_id, fields=fields
                )
            else:
                answer_store.update_checkpoint(
                    session=session, message_id=fields["id"], content=fields["content"]
                )


@dataclass(frozen=True)
class Opened:
    """A turn whose question is stored: what the backend sees and which backend answers."""

    view: Conversation
    resolved: ResolvedBackend | None
    problem: Exception | None  # finding or building the backend failed
    history: bool  # ``view`` holds the whole conversation, not just the question


def answer_fields(
    result: TurnResult, resolved: ResolvedBackend | None, detail: str | None
) -> dict[str, Any]:
    """The assistant message's columns: the answer (or error) and its provenance."""
    meta = result.meta
    return {
        "id": result.reply_id or str(uuid.uuid4()),
        "content": result.text if result.status else (result.error or result.text),
        "backend_name": resolved.name if resolved else None,
        "backend_config_hash": resolved.config_hash if resolved else None,
        "model": meta.model,
        "sources": [s.to_dict() for s in meta.sources],
        "index_version": meta.index_version,
        "input_tokens": meta.input_tokens,
        "output_tokens": meta.output_tokens,
        "ttft_ms": result.ttft_ms,
        "latency_ms": result.latency_ms,
        "handoff": meta.handoff,
        "error": detail,
        "cost_usd": result.cost_usd,
        "fallback_from": result.fallback_from,
        "details": meta.details or None,
        "status": result.status,
        "run_step_id": result.run_step_id,
    }


class Reply:
    """An answer being produced: iterate for text chunks, then read ``result``.

    A turn costs two transactions, each one thread hop: the question (with the backend and the
    conversation read), then the answer. An answer still streaming after ``checkpoint_s`` is
    also stored as it goes (status "streaming", one row, updated at most once per interval),
    so a killed server keeps what the user saw; the answer's end updates that row."""

    def __init__(
        self,
        service: ChatService,
        conversation_id: str,
        question: str,
        user_message_id: str | None,
        reply_id: str | None,
        backend: str | None = None,
        run_step_id: str | None = None,
    ):
        self._service = service
        self._backend = backend
        self._conversation_id = conversation_id
        self._question = question
        self._user_message_id = user_message_id
        self.result = TurnResult(
            user_message_id=user_message_id or "", reply_id=reply_id, run_step_id=run_step_id
        )
        self._answered_by: ResolvedBackend | None = None
        self._history = False  # the backend's view holds the whole conversation
        self._checkpointed = False  # the answer's row exists (written while it streamed)
        self._checkpointing: asyncio.Future[None] | None = None  # the checkpoint in flight
        self._next_checkpoint = 0.0

    def __aiter__(self) -> AsyncGenerator[str, None]:
        return self._kept()

    async def _kept(self) -> AsyncGenerator[str, None]:
        """The turn; when the reader stops early (Stop, a closed tab, a cancelled task, a
        shutdown) what was already shown is stored, marked "partial" (or "interrupted")."""
        self._chunks: list[str] = []
        self._resolved: ResolvedBackend | None = None
        self._open = False  # the question is stored and its answer is not yet
        async with contextlib.aclosing(self._run()) as turn:
            try:
                async for chunk in turn:
                    yield chunk
            finally:
                if self._open:
                    await asyncio.shield(self._cut())

    async def _cut(self) -> None:
        await self._settled()
        await asyncio.to_thread(self._store_cut)

    def _store_cut(self) -> None:
        """Store what the user saw of an answer that was cut off (blocking)."""
        result = self.result
        result.text = "".join(self._chunks)
        result.status = "partial" if result.text else "interrupted"
        result.error = result.error or "the answer was interrupted before it finished"
        result.reply_id = self._saved_answer(self._resolved, result.error)
        self._open = False

    def _saved_answer(self, resolved: ResolvedBackend | None, detail: str | None) -> str:
        """Store the answer (blocking); while the database is down, keep it in the journal."""
        service, result = self._service, self.result
        result.reply_id = result.reply_id or str(uuid.uuid4())
        answer = answer_fields(result, resolved, detail)
        args = (self._conversation_id, answer, result.meta.locale, self._checkpointed)
        try:
            return retrying(service._store_answer, *args)
        except Exception as exc:
            if not outage(exc):
                raise
            service.journal.add(self._unsaved("answer", exc, answer=answer))
            self._open = False  # the journal holds it now
            raise DatabaseUnavailable(UNSAVED) from exc

    def _saved_question(self) -> Opened:
        """Store the question (blocking); while the database is down, keep it in the journal."""
        self._user_message_id = self._user_message_id or str(uuid.uuid4())
        args = (self._conversation_id, self._question, self._user_message_id, self._backend)
        try:
            return retrying(self._service._store_question, *args)
        except Exception as exc:
            if not outage(exc):
                raise
            self._service.journal.add(self._unsaved("question", exc, question=self._question))
            raise DatabaseUnavailable(UNSAVED) from exc

    def _unsaved(self, kind: str, exc: Exception, **record: Any) -> dict[str, Any]:
        return {
            "kind": kind,
            "conversation_id": self._conversation_id,
            "question_id": self._user_message_id,
            "at": datetime.now(UTC).isoformat(),
            "error": describe(exc),
            **record,
        }

    async def _run(self) -> AsyncGenerator[str, None]:
        service, result = self._service, self.result
        opened = await asyncio.to_thread(self._saved_question)
        view, self._history = opened.view, opened.history
        result.user_message_id, result.locale = self._user_message_id or "", view.locale
        result.reply_id = result.reply_id or str(uuid.uuid4())
        self._open = True
        resolved: ResolvedBackend | None = None
        detail: str | None = None
        failure: BackendError | None = None
        chunks = self._chunks
        start = time.perf_counter()
        try:
            if opened.problem is not None:
                raise opened.problem
            resolved = opened.resolved
            assert resolved is not None  # either a backend or a problem
            result.backend_name, self._resolved = resolved.name, resolved
            async for chunk in self._relay(resolved, view, chunks, start):
                yield chunk
        except BackendError as exc:
            log.warning("backend %s failed: %s", result.backend_name, exc.detail)
            failure = exc
            result.error, detail = exc.user_message, exc.detail
        except Exception as exc:  # a bug or an unexpected upstream failure: never a traceback
            log.exception("turn failed in conversation %s", self._conversation_id)
            result.error = UNEXPECTED.get(view.locale, UNEXPECTED["en"])
            detail = f"{type(exc).__name__}: {exc}"
        if failure is not None and resolved is not None and not chunks:
            async for chunk in self._fall_back(resolved, failure, view, chunks, start):
                yield chunk
            if self._answered_by is not None:
                resolved, detail = self._answered_by, None
        result.latency_ms = (time.perf_counter() - start) * 1000
        result.text = "".join(chunks)
        if result.error is None:
            prices = service._pool.settings.llm.prices
            m = result.meta
            result.cost_usd = cost_usd(prices, m.model, m.input_tokens, m.output_tokens)
        elif chunks:  # failed after some text: keep what the user saw, with the error
            result.status = "partial"
        await self._settled()
        result.reply_id = await asyncio.to_thread(self._saved_answer, resolved, detail)
        self._open = False
        if service.journal.path.exists():  # the database answers again: write back the rest
            await asyncio.to_thread(service.replay_unsaved)

    async def _relay(
        self, resolved: ResolvedBackend, view: Conversation, chunks: list[str], start: float
    ) -> AsyncIterator[str]:
        """Stream ``resolved``'s answer into ``chunks`` in batches (fewer socket events),
        timing the first chunk and storing the text so far once it streams for long."""
        result, chat = self.result, self._service._chat
        stream = resolved.backend.stream(view, result.meta)
        if resolved.backend.may_hang:  # a remote model may hang: deadlines, then fallback
            stream = within_deadlines(
                stream,
                first_s=chat.first_token_timeout_s,
                idle_s=chat.idle_timeout_s,
                locale=view.locale,
            )
        async for chunk in batched(stream, chat.stream_batch_s):
            if result.ttft_ms is None:  # streaming starts; checkpoints once it lasts
                now = time.perf_counter()
                result.ttft_ms = (now - start) * 1000
                self._next_checkpoint = now + chat.checkpoint_s
            chunks.append(chunk)
            yield chunk  # shown: from here on it is kept
            if chat.checkpoint_s and time.perf_counter() >= self._next_checkpoint:
                self._store_so_far(resolved, chunks)

    def _store_so_far(self, resolved: ResolvedBackend, chunks: list[str]) -> None:
        """Start storing the text shown so far, beside the stream (one write at a time)."""
        if self._checkpointing is not None and not self._checkpointing.done():
            return  # the database is slow: the next chunk tries again
        self._next_checkpoint = time.perf_counter() + self._service._chat.checkpoint_s
        fields = {
            "id": self.result.reply_id,
            "content": "".join(chunks),
            "backend_name": resolved.name,
            "backend_config_hash": resolved.config_hash,
        }
        self._checkpointing = asyncio.ensure_future(self._write_checkpoint(fields))

    async def _write_checkpoint(self, fields: dict[str, Any]) -> None:
        try:
            await asyncio.to_thread(
                self._service._checkpoint, self._conversation_id, fields, not self._checkpointed
            )
            self._checkpointed = True
        except Exception as exc:  # only this checkpoint is lost: the answer's end stores it
            log.warning("could not store the answer streaming in %s: %s", fields["id"], exc)

    async def _settled(self) -> None:
        """Wait for the checkpoint in flight, so the answer's own store comes after it."""
        if self._checkpointing is not None:
            await asyncio.shield(self._checkpointing)

    async def _fall_back(
        self,
        failed: ResolvedBackend,
        failure: BackendError,
        view: Conversation,
        chunks: list[str],
        start: float,
    ) -> AsyncIterator[str]:
        """Answer with the fallback backend after ``failed`` gave nothing (its retries spent).

        The shown text starts with the failure's chat message, so the user knows; the stored
        message is the fallback's answer alone (a training target must never hold Afina's
        notice), naming the failed backend in ``fallback_from`` and ``details.fallback``,
        which keeps the notice for display.
        """
        result = self.result
        try:
            fallback = await asyncio.to_thread(self._service._pool.fallback_for, failed.name)
        except Exception:
            log.exception("fallback backend unavailable")
            return
        if fallback is None:
            return
        if fallback.backend.uses_history and not self._history:
            view = await asyncio.to_thread(self._service._history, view)
        note = FALLBACK_NOTE.get(view.locale, FALLBACK_NOTE["en"])
        notice = f"{failure.user_message}\n{note}\n\n"
        primary = result.meta
        result.meta = ReplyMeta()
        try:
            async for chunk in self._relay(fallback, view, chunks, start):
                if len(chunks) == 1:  # shown, never stored as the answer (nor trained on)
                    yield notice
                yield chunk
        except BackendError as exc:
            log.warning("fallback %s failed too: %s", fallback.name, exc.detail)
            result.meta = primary
            return
        result.meta.details["fallback"] = {
            "from": failed.name,
            "kind": failed.kind,
            "error": failure.detail,
            "retryable": failure.retryable,
            "notice": notice.strip(),  # shown above the answer; not part of its text
        }
        result.fallback_from, result.error = failed.name, None
        result.backend_name, self._answered_by = fallback.name, fallback
