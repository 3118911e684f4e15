"""What an evaluation asks: question sets (JSONL) checked against the knowledge base, or the
held-out chats of an export, replayed turn by turn."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from backends.retrieval.index import Entry
from chatbot.db import eval_store, training_queries
from chatbot.errors import InputError, NotFoundError

ROOT = Path(__file__).resolve().parents[2]
# The bundled held-out questions (never tuned on) and the out-of-scope set: tests/data/README.md
BUNDLED_QUESTIONS = (
    ROOT / "tests" / "data" / "heldout_questions.jsonl",
    ROOT / "tests" / "data" / "out_of_scope_questions.jsonl",
)
LINE_FORMAT = '{"text": "...", "locale": "en", "entry_id": "<KB entry id>"}'


@dataclass(frozen=True)
class Ask:
    """One user turn to send, and the answer it should get (None: not scored)."""

    text: str
    reference: str | None = None


@dataclass(frozen=True)
class EvalItem:
    """A question (one turn) or a held-out chat (several), with its label."""

    key: str
    locale: str
    in_scope: bool
    turns: tuple[Ask, ...]
    expected_entry: str | None = None


def _rows(path: Path) -> list[tuple[int, dict]]:
    """(line number, object) of a JSONL file; errors name the file, the line and the fix."""
    if not path.is_file():
        raise InputError(f"{path}: no such question file; pass a JSONL file with --questions")
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{number}: invalid JSON ({exc.msg})") from None
        if not isinstance(row, dict) or not str(row.get("text", "")).strip():
            raise InputError(f"{path}:{number}: each line must be an object like {LINE_FORMAT}")
        rows.append((number, row))
    if not rows:
        raise InputError(f"{path}: no questions; write one per line, like {LINE_FORMAT}")
    return rows


def answers_by_entry(entries: Iterable[Entry]) -> dict[tuple[str, str], str]:
    """(entry id, locale) -> the entry's answer; locale "" holds the first answer of each id."""
    answers: dict[tuple[str, str], str] = {}
    for entry in entries:
        answers.setdefault((entry.id, entry.locale or ""), entry.answer)
        answers.setdefault((entry.id, ""), entry.answer)
    return answers


def load_questions(
    paths: Sequence[Path], answers: dict[tuple[str, str], str], kb_name: str
) -> list[EvalItem]:
    """Items of the question files; labels must name entries of the knowledge base."""
    items: list[EvalItem] = []
    unknown: dict[str, str] = {}
    for path in paths:
        for number, row in _rows(Path(path)):
            locale = str(row.get("locale") or "en")
            entry = row.get("entry_id")
            in_scope = bool(row.get("in_scope", entry is not None))
            reference = None
            if entry is not None:
                entry = str(entry)
                reference = answers.get((entry, locale)) or answers.get((entry, ""))
                if reference is None:
                    unknown.setdefault(entry, f"{path}:{number}")
            key = f"{Path(path).stem}:{number}"
            ask = Ask(str(row["text"]).strip(), reference)
            items.append(EvalItem(key, locale, in_scope, (ask,), entry))
    if unknown:
        named = ", ".join(f"{e!r} ({where})" for e, where in list(unknown.items())[:5])
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        raise InputError(
            f"{len(unknown)} label(s) name no entry of the knowledge base {kb_name}: {named}{more}."
            " Fix the entry_id values, or point AFINA_RETRIEVAL_KB_PATH at the knowledge base"
            " the questions were written for (and run 'afina kb ingest')."
        )
    return items


def load_export_chats(*, session: Any, export_id: int, split: str) -> list[EvalItem]:
    """The chats of an export's ``split``, each user turn with its approved answer."""
    chats = eval_store.export_chats(session=session, export_id=export_id, split=split)
    if chats is None:
        raise NotFoundError(f"no export {export_id}; see the exports table or run 'afina export'")
    if not chats:
        raise InputError(
            f"export {export_id} has no {split!r} chats; export with a test split "
            "('afina export --out DIR --test 0.1 --pin-test') and pass its id"
        )
    items = []
    for chat in chats:
        turns = _replay_turns(chat.messages)
        if turns:
            items.append(EvalItem(f"chat:{chat.id}", chat.locale, True, turns))
    if not items:
        raise InputError(f"export {export_id}'s {split!r} chats have no user turns to replay")
    return items


def _replay_turns(messages: Sequence[training_queries.StoredMessage]) -> tuple[Ask, ...]:
    """User turns in order, each with the agent-approved answer that followed (if any)."""
    turns: list[Ask] = []
    for index, message in enumerate(messages):
        if message.role != "user":
            continue
        following = messages[index + 1] if index + 1 < len(messages) else None
        reference = None
        if following is not None and following.role == "assistant" and following.error is None:
            if following.correction is not None:
                reference = following.correction
            elif following.rating >= 0:  # not downvoted: the agent let it stand
                reference = following.content
        turns.append(Ask(message.content, reference))
    return tuple(turns)


def sample(items: list[EvalItem], limit: int | None, seed: int) -> list[EvalItem]:
    """A seeded subset of ``limit`` items keeping the in-/out-of-scope shares (all if None)."""
    if limit is None or limit >= len(items):
        return items
    rng = np.random.default_rng(seed)
    groups = [[i for i in items if i.in_scope], [i for i in items if not i.in_scope]]
    chosen: list[EvalItem] = []
    for group in groups:
        take = round(limit * len(group) / len(items))
        picks = rng.permutation(len(group))[:take]
        chosen.extend(group[int(p)] for p in sorted(picks))
    return chosen


def digest(items: Sequence[EvalItem]) -> str:
    """A short sha256 of the items (texts, labels, references): same digest, same question set."""
    payload = json.dumps(
        [
            [
                i.key,
                i.locale,
                i.in_scope,
                i.expected_entry,
                [[a.text, a.reference] for a in i.turns],
            ]
            for i in items
        ],
        ensure_ascii=False,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]
