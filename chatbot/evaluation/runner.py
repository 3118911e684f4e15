"""Run an evaluation: every item through ChatService with each named backend, scored and stored.

Items go one at a time to every backend in turn (so a cancelled or time-limited run still compares
the backends on the same items). Each question is the first turn of a new conversation owned by
the evaluation user and tagged ``origin="eval"``; a held-out chat is replayed turn by turn.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from chatbot.db import eval_store, store
from chatbot.errors import InputError
from chatbot.evaluation.judge import Judge
from chatbot.evaluation.questions import Ask, EvalItem
from chatbot.evaluation.scoring import Similarity, fact_share, right_entry
from chatbot.runtime import Runtime
from chatbot.service import TurnResult
from chatbot.settings import EvalSettings

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    """How a run ended: ``succeeded`` or ``cancelled`` (with the reason)."""

    status: str = "succeeded"
    reason: str | None = None
    answers: int = 0


@dataclass
class _BackendState:
    kind: str
    failures_in_a_row: int = 0
    stopped: str | None = None


@dataclass
class Runner:
    """Answers ``items`` with ``backends`` for run ``run_id``; results stored as they come."""

    runtime: Runtime
    run_id: int
    items: list[EvalItem]
    backends: dict[str, str]  # name -> kind
    settings: EvalSettings
    similarity: Similarity
    judge: Judge | None = None
    _states: dict[str, _BackendState] = field(default_factory=dict)

    async def run(
        self,
        advance: Callable[[int], None] = lambda n: None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> Outcome:
        """Answer everything unless stopped (``should_stop`` or the time budget); never raises
        for a failing backend (its answers record the error)."""
        self._states = {name: _BackendState(kind) for name, kind in self.backends.items()}
        user_id = await asyncio.to_thread(self._eval_user)
        deadline = time.monotonic() + self.settings.time_budget_min * 60
        await self._warm_up(user_id)
        outcome = Outcome()
        for item in self.items:
            if should_stop():
                return Outcome("cancelled", "stopped by the user", outcome.answers)
            if time.monotonic() > deadline:
                reason = f"time budget of {self.settings.time_budget_min:g} min reached"
                return Outcome(
                    "cancelled", reason + " (AFINA_EVAL_TIME_BUDGET_MIN)", outcome.answers
                )
            for name in self.backends:
                outcome.answers += await self._item(user_id, item, name)
                advance(1)
        return outcome

    async def _warm_up(self, user_id: int) -> None:
        """One unscored turn per backend and language first, so loading models is not timed."""
        firsts: dict[str, str] = {}
        for item in self.items:
            firsts.setdefault(item.locale, item.turns[0].text)
        for name in self.backends:
            for locale, text in firsts.items():
                conversation = await asyncio.to_thread(self._conversation, user_id, locale)
                await self._answer(conversation, text, name)

    def _eval_user(self) -> int:
        with self.runtime.sessions.begin() as session:
            return eval_store.eval_user_id(session=session, username=self.settings.user)

    def _conversation(self, user_id: int, locale: str) -> str:
        with self.runtime.sessions.begin() as session:
            return eval_store.add_eval_conversation(session=session, user_id=user_id, locale=locale)

    async def _item(self, user_id: int, item: EvalItem, name: str) -> int:
        """One item with one backend (all its turns); the number of answers stored."""
        state = self._states[name]
        if state.stopped:
            for index, ask in enumerate(item.turns):
                await asyncio.to_thread(self._store, item, index, ask, name, None, state.stopped)
            return len(item.turns)
        conversation = await asyncio.to_thread(self._conversation, user_id, item.locale)
        for index, ask in enumerate(item.turns):
            result = await self._answer(conversation, ask.text, name)
            failed = result.error is not None or result.fallback_from is not None
            state.failures_in_a_row = state.failures_in_a_row + 1 if failed else 0
            if state.failures_in_a_row >= self.settings.fail_streak:
                cause = result.error or result.meta.details.get("fallback", {}).get("error")
                state.stopped = (
                    f"skipped: {name} failed {state.failures_in_a_row} answers in a row "
                    f"(AFINA_EVAL_FAIL_STREAK); last error: {cause}"
                )
                log.warning("%s", state.stopped)
            judged = await self._judge(ask, result, item)
            await asyncio.to_thread(self._store, item, index, ask, name, result, None, judged)
        return len(item.turns)

    async def _answer(self, conversation: str, text: str, name: str) -> TurnResult:
        """The turn through ChatService with backend ``name``; bad input becomes the error."""
        try:
            reply = self.runtime.service.reply(
                conversation_id=conversation, text=text, backend=name
            )
        except Exception as exc:  # e.g. a question over the length limit
            return TurnResult(user_message_id="", backend_name=name, error=str(exc))
        async for _chunk in reply:
            pass
        return reply.result

    async def _judge(self, ask: Ask, result: TurnResult, item: EvalItem) -> float | None:
        if self.judge is None or result.error or not ask.reference or not item.in_scope:
            return None
        return await self.judge.score(ask.text, ask.reference, result.text)

    def _store(
        self,
        item: EvalItem,
        index: int,
        ask: Ask,
        name: str,
        result: TurnResult | None,
        skipped: str | None,
        judged: float | None = None,
    ) -> None:
        """Score the answer and store it with the provenance of its message."""
        key = item.key if len(item.turns) == 1 else f"{item.key}:{index}"
        fields: dict[str, Any] = {
            "backend_name": name,
            "item_key": key[:128],
            "question": ask.text,
            "language": item.locale,
            "in_scope": item.in_scope,
            "expected_entry": item.expected_entry,
            "reference": ask.reference,
            "details": {"kind": self.backends[name], "turn": index},
        }
        if result is None:
            fields["error"] = skipped
        else:
            fields.update(self._scores(item, ask, result), judge_score=judged)
        with self.runtime.sessions.begin() as session:
            if result is not None and result.reply_id:
                message = eval_store.answer_message(session=session, message_id=result.reply_id)
                if message is not None:
                    fields.update(_provenance(message, fields["details"]))
            eval_store.add_result(session=session, run_id=self.run_id, **fields)

    def _scores(self, item: EvalItem, ask: Ask, result: TurnResult) -> dict[str, Any]:
        meta = result.meta
        sources = [s.to_dict() for s in meta.sources]
        answered = result.error is None
        return {
            "answer": result.error or result.text,
            "conversation_id": None,
            "message_id": result.reply_id,
            "handoff": bool(meta.handoff) and answered,
            "error": result.error,
            "fallback_from": result.fallback_from,
            "correct": right_entry(item.expected_entry, sources, meta.handoff)
            if answered
            else None,
            "similarity": self.similarity(result.text, ask.reference, item.locale)
            if answered
            else None,
            "key_facts": fact_share(ask.reference, result.text) if answered else None,
            "ttft_ms": result.ttft_ms,
            "latency_ms": result.latency_ms,
            "input_tokens": meta.input_tokens,
            "output_tokens": meta.output_tokens,
            "cost_usd": result.cost_usd,
            "model": meta.model,
            "index_version": meta.index_version,
        }


def _provenance(message: Any, details: dict[str, Any]) -> dict[str, Any]:
    """Config hash, example set, sources and conversation of the stored answer."""
    extra = dict(message.details or {})
    example_set = extra.get("example_set")
    label = None
    if isinstance(example_set, dict):
        label = (
            f"{example_set.get('name')}@{example_set.get('version')}#{example_set.get('digest')}"
        )
    sources = [s.get("id") for s in (message.sources or []) if isinstance(s, dict)]
    merged = {**details, "sources": sources}
    if "fallback" in extra:
        merged["fallback"] = extra["fallback"]
    return {
        "conversation_id": message.conversation_id,
        "backend_config_hash": message.backend_config_hash,
        "example_set": label[:128] if label else None,
        "details": merged,
    }


def backend_kinds(runtime: Runtime, names: list[str]) -> dict[str, str]:
    """name -> kind of each named backend; an unknown name lists the registered ones."""
    if not names:
        raise InputError(
            "name at least one backend: --backends faq,local-fewshot (see 'afina backends list')"
        )
    with runtime.sessions() as session:
        return {name: store.get_backend(session=session, name=name).kind for name in names}
