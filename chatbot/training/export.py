"""Write stored conversations as OpenAI chat fine-tuning JSONL, streaming rows."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from sqlalchemy.orm import Session

from chatbot.db import store
from chatbot.db.models import Message


@dataclass(frozen=True)
class ExportReport:
    """How many conversations were read and how many examples written."""

    conversations: int
    examples: int


def example_messages(messages: Iterable[Message]) -> list[dict[str, str]]:
    """A training example's messages: turns that failed (and their question) are left out."""
    kept: list[dict[str, str]] = []
    for message in messages:
        if message.role == "assistant" and message.error is not None:
            if kept and kept[-1]["role"] == "user":
                kept.pop()  # the question that got no real answer
            continue
        kept.append({"role": message.role, "content": message.content})
    while kept and kept[-1]["role"] != "assistant":
        kept.pop()
    return kept


def export_jsonl(*, session: Session, out: TextIO) -> ExportReport:
    """One ``{"messages": [...]}`` line per conversation with at least one real answer."""
    conversations = examples = 0
    for _conversation, messages in store.iter_conversations(session=session):
        conversations += 1
        example = example_messages(messages)
        if any(m["role"] == "assistant" for m in example):
            out.write(json.dumps({"messages": example}, ensure_ascii=False) + "\n")
            examples += 1
    return ExportReport(conversations=conversations, examples=examples)


def export_file(*, session: Session, path: Path) -> ExportReport:
    """Export to ``path`` atomically (a failed export leaves no half file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    with tmp.open("w", encoding="utf-8") as out:
        report = export_jsonl(session=session, out=out)
    tmp.replace(path)
    return report
