"""After a load run: is every question sent stored, with the answer its session was shown?"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import Row, select

from chatbot.db.models import Message
from chatbot.db.session import make_engine, make_sessionmaker
from tests.load.session import Turn

COLUMNS = (Message.id, Message.conversation_id, Message.role, Message.status)


@dataclass
class Stored:
    """What the database holds for the turns of a run."""

    questions_sent: int = 0
    questions_stored: int = 0
    answers_shown: int = 0
    answers_stored: int = 0  # the shown answers stored under the id the session saw
    lost: int = 0
    lost_stored: int = 0  # questions whose turn was lost, stored anyway
    lost_status: Counter = field(default_factory=Counter)  # their status once stored
    conversations: int = 0
    missing: list[str] = field(default_factory=list)  # what is wrong, one line each

    @property
    def complete(self) -> bool:
        """Every answered question stored, with the answer shown."""
        return not self.missing


def check(database_url: str, turns: list[Turn]) -> Stored:
    """Look up each turn's question and answer by the ids the sessions used and saw."""
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)
    stored = Stored(questions_sent=len(turns))
    ids = [t.question_id for t in turns] + [t.answer_id for t in turns if t.answer_id]
    rows: dict[str, Row] = {}
    try:
        with sessions() as session:
            for start in range(0, len(ids), 500):
                query = select(*COLUMNS).where(Message.id.in_(ids[start : start + 500]))
                rows.update({m.id: m for m in session.execute(query)})
            by_conversation = Counter(m.conversation_id for m in rows.values() if m.role == "user")
    finally:
        engine.dispose()
    stored.conversations = len(by_conversation)
    for turn in turns:
        question = rows.get(turn.question_id)
        if question is not None and question.role == "user":
            stored.questions_stored += 1
        elif not turn.lost:  # a lost turn's question may have died with its server
            stored.missing.append(f"question not stored: {turn.question_id} {turn.question!r}")
        if turn.lost:
            stored.lost += 1
            if question is not None:
                stored.lost_stored += 1
                stored.lost_status[question.status or "no status"] += 1
            continue
        stored.answers_shown += 1
        answer = rows.get(turn.answer_id or "")
        if (
            answer is not None
            and answer.role == "assistant"
            and question is not None
            and answer.conversation_id == question.conversation_id
        ):
            stored.answers_stored += 1
        else:
            stored.missing.append(f"answer shown but not stored: {turn.answer_id}")
    return stored
