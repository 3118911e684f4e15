"""Demo chats: realistic customer questions built from the knowledge base's own phrasings, asked
through ChatService, answered by the retrieval backend and rated the way an agent would.

Questions vary the entries' phrasings (greetings, politeness, casing, punctuation) and some
conversations ask a follow-up ("thanks, and ..."). Only the knowledge base is read: held-out test
questions are never used, so the chats are safe to train on. An answer whose first source is the
entry the question came from gets +1 from the demo agent; a wrong entry gets -1; a hand-over
gets no rating (an agent would take over).
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from backends.retrieval.index import Entry
from chatbot.db import demo_store, history, store

if TYPE_CHECKING:
    from chatbot.runtime import Runtime
    from chatbot.service import TurnResult

DEMO_USER = "demo"
FOLLOW_UP_SHARE = 0.4

# Ways customers open, soften and close a question (the empty strings keep many plain).
GREETINGS = {
    "en": [
        "",
        "",
        "",
        "hi, ",
        "Hi! ",
        "hello, ",
        "Hello Afina, ",
        "hey, ",
        "good morning, ",
        "quick question: ",
        "excuse me, ",
    ],
    "es": [
        "",
        "",
        "",
        "hola, ",
        "¡Hola! ",
        "buenas, ",
        "Hola Afina, ",
        "buenos días, ",
        "una pregunta: ",
        "perdona, ",
    ],
}
PLEASE = {"en": [" please", ", please"], "es": [", por favor"]}
THANKS = {
    "en": [" thanks", " thanks!", " thank you", " Thanks in advance."],
    "es": [" gracias", " ¡gracias!", " gracias de antemano", " Muchas gracias."],
}
FOLLOW_UPS = {
    "en": [
        "thanks, and {q}",
        "great, thanks. {Q}",
        "ok, one more thing: {q}",
        "thanks! also, {q}",
        "perfect. and {q}",
    ],
    "es": [
        "gracias, y {q}",
        "vale, gracias. {Q}",
        "genial, otra cosa: {q}",
        "¡gracias! también, {q}",
        "perfecto. y {q}",
    ],
}
_PRONOUN_I = re.compile(r"^I\b")


@dataclass(frozen=True)
class DemoTurn:
    """One customer message and the entry that should answer it."""

    text: str
    entry_id: str


@dataclass(frozen=True)
class DemoChat:
    """One demo conversation: its language and one or two turns."""

    locale: str
    turns: tuple[DemoTurn, ...]


@dataclass
class DemoReport:
    """What a demo run logged."""

    conversations: int = 0
    turns: int = 0
    approved: int = 0
    rejected: int = 0
    handovers: int = 0
    errors: int = 0


def faq_entries(entries: Sequence[Entry], locales: Sequence[str]) -> dict[str, list[Entry]]:
    """FAQ entries with question phrasings, by locale (articles have none to vary)."""
    by_locale: dict[str, list[Entry]] = {locale: [] for locale in locales}
    for entry in entries:
        if entry.kind == "query" and entry.texts and entry.locale in by_locale:
            by_locale[entry.locale].append(entry)
    return by_locale


def _lower_first(text: str) -> str:
    """``text`` with its first letter lowercased (after an opening ``¿``/``¡``; not "I")."""
    for i, char in enumerate(text):
        if char.isalpha():
            if _PRONOUN_I.match(text[i:]):
                return text
            return text[:i] + char.lower() + text[i + 1 :]
    return text


def _upper_first(text: str) -> str:
    """``text`` with its first letter uppercased."""
    for i, char in enumerate(text):
        if char.isalpha():
            return text[:i] + char.upper() + text[i + 1 :]
    return text


def vary(phrasing: str, locale: str, rng: random.Random) -> str:
    """A customer's way of asking ``phrasing``: greeting, casing, punctuation, politeness."""
    text = phrasing.strip()
    greeting = rng.choice(GREETINGS[locale])
    if greeting or rng.random() < 0.3:
        text = _lower_first(text)
    core, mark = text.rstrip("?!. "), text[len(text.rstrip("?!. ")) :].strip()
    extra = rng.random()
    if extra < 0.2 and mark.startswith("?"):
        core += rng.choice(PLEASE[locale])
    if rng.random() < 0.25:  # no punctuation at all
        core, mark = core.lstrip("¿¡"), ""
    text = greeting + core + mark
    if extra >= 0.7:
        text += ("" if mark else ",") + rng.choice(THANKS[locale])
    if rng.random() < 0.15:
        return text.lower()
    return _upper_first(text) if greeting else text


def follow_up(phrasing: str, locale: str, rng: random.Random) -> str:
    """A second question after an answer: "thanks, and ..." with the phrasing."""
    template = rng.choice(FOLLOW_UPS[locale])
    text = phrasing.strip()
    return template.format(q=_lower_first(text), Q=_upper_first(text))


def demo_script(
    entries: Sequence[Entry], *, count: int, seed: int, locales: Sequence[str]
) -> list[DemoChat]:
    """``count`` conversations over ``locales`` in turn, each entry asked about evenly."""
    rng = random.Random(seed)
    by_locale = {k: v for k, v in faq_entries(entries, locales).items() if v}
    if not by_locale:
        return []
    decks: dict[str, list[Entry]] = {locale: [] for locale in by_locale}
    chats = []
    for i in range(count):
        locale = list(by_locale)[i % len(by_locale)]
        deck = decks[locale]
        if not deck:  # every entry once, in a new order, before any repeats
            deck.extend(rng.sample(by_locale[locale], len(by_locale[locale])))
        entry = deck.pop()
        turns = [DemoTurn(vary(rng.choice(entry.texts), locale, rng), entry.id)]
        others = [e for e in by_locale[locale] if e.id != entry.id]
        if others and rng.random() < FOLLOW_UP_SHARE:
            same = [e for e in others if e.category and e.category == entry.category]
            second = rng.choice(same or others)
            turns.append(DemoTurn(follow_up(rng.choice(second.texts), locale, rng), second.id))
        chats.append(DemoChat(locale, tuple(turns)))
    return chats


def rating(result: TurnResult, entry_id: str) -> int | None:
    """An agent's rating: +1 for the right entry's answer, -1 for a wrong one, none otherwise."""
    if result.error or result.meta.handoff or not result.meta.sources:
        return None
    return 1 if result.meta.sources[0].id == entry_id else -1


async def log_demo_chats(
    runtime: Runtime,
    chats: Sequence[DemoChat],
    *,
    backend: str = "faq",
    user: str = DEMO_USER,
    progress: Callable[[int], None] = lambda n: None,
) -> DemoReport:
    """Ask each chat's questions through the service with ``backend``; store the ratings."""
    user_id = await asyncio.to_thread(_demo_user, runtime, user)
    report = DemoReport()
    for chat in chats:
        conversation = await asyncio.to_thread(_new_conversation, runtime, user_id, chat.locale)
        ratings: list[tuple[str, int]] = []
        for turn in chat.turns:
            reply = runtime.service.reply(
                conversation_id=conversation, text=turn.text, backend=backend
            )
            async for _chunk in reply:
                pass
            result = reply.result
            report.turns += 1
            value = rating(result, turn.entry_id)
            if result.error:
                report.errors += 1
            elif value is None:
                report.handovers += 1
            elif result.reply_id:
                ratings.append((result.reply_id, value))
                report.approved += value > 0
                report.rejected += value < 0
        await asyncio.to_thread(_rate, runtime, user_id, ratings)
        report.conversations += 1
        progress(1)
    return report


def _demo_user(runtime: Runtime, username: str) -> int:
    """The demo agent that owns the chats and rates the answers."""
    with runtime.sessions.begin() as session:
        return store.ensure_user(session=session, username=username, role="agent").id


def _new_conversation(runtime: Runtime, user_id: int, locale: str) -> str:
    """A new conversation tagged as demo data."""
    with runtime.sessions.begin() as session:
        return demo_store.add_demo_conversation(session=session, user_id=user_id, locale=locale)


def _rate(runtime: Runtime, user_id: int, ratings: list[tuple[str, int]]) -> None:
    """Store one conversation's ratings in one transaction."""
    if not ratings:
        return
    with runtime.sessions.begin() as session:
        for message_id, value in ratings:
            history.upsert_feedback(
                session=session, message_id=message_id, user_id=user_id, value=value, comment=None
            )


def existing_demo_chats(runtime: Runtime) -> int:
    """How many demo conversations are stored already."""
    with runtime.sessions() as session:
        return demo_store.count_demo_conversations(session=session)


def delete_demo_chats(runtime: Runtime) -> int:
    """Delete all demo conversations; how many went."""
    with runtime.sessions.begin() as session:
        return demo_store.delete_demo_conversations(session=session)
