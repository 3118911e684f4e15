"""An optional LLM judge: any registered backend grades an answer against the reference, 1-5."""

from __future__ import annotations

import logging
import re

from backends.base import BackendError, Conversation, ReplyMeta, Turn
from chatbot.backend_pool import BackendPool

log = logging.getLogger(__name__)
PROMPT = (
    "You grade a customer-support answer against the reference answer.\n"
    "Question: {question}\n"
    "Reference answer: {reference}\n"
    "Answer to grade: {answer}\n"
    "Does the answer give the same facts as the reference? Reply with one digit from 1 "
    "(wrong or unrelated) to 5 (same facts, nothing wrong), and nothing else."
)
_DIGIT = re.compile(r"[1-5]")


def parse_grade(text: str) -> float | None:
    """The first digit 1-5 of the judge's reply as a score in [0, 1]; None when there is none."""
    found = _DIGIT.search(text)
    return None if found is None else (int(found.group(0)) - 1) / 4


class Judge:
    """Grades answers with the backend ``name`` (called directly: no conversation is stored)."""

    def __init__(self, pool: BackendPool, name: str, prompt: str = PROMPT):
        self.name = name
        self.prompt = prompt
        self._pool = pool

    async def score(self, question: str, reference: str, answer: str) -> float | None:
        """The grade in [0, 1], or None when the judge failed or gave no digit."""
        import asyncio

        text = self.prompt.format(question=question, reference=reference, answer=answer)
        conversation = Conversation(id="judge", turns=(Turn("user", text),))
        try:
            resolved = await asyncio.to_thread(self._pool.resolve, self.name)
            chunks = [c async for c in resolved.backend.stream(conversation, ReplyMeta())]
        except BackendError as exc:
            log.warning("judge %s failed: %s", self.name, exc.detail)
            return None
        return parse_grade("".join(chunks))
