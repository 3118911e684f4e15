"""Demo chat scripts: varied questions from the KB's own phrasings, rated like an agent would."""

from __future__ import annotations

import random
import re
from collections import Counter

from backends.base import ReplyMeta, Source
from chatbot.knowledge.loaders import load_path
from chatbot.service import TurnResult
from chatbot.settings import BUNDLED_KB
from chatbot.training.demo import demo_script, rating, vary

ENTRIES = load_path(BUNDLED_KB)


def words(text: str) -> str:
    return re.sub(r"[^\w ]", "", text.lower()).strip()


def test_demo_script_is_fixed_by_its_seed_and_varies_with_it():
    one = demo_script(ENTRIES, count=30, seed=1, locales=("en", "es"))
    assert one == demo_script(ENTRIES, count=30, seed=1, locales=("en", "es"))
    assert one != demo_script(ENTRIES, count=30, seed=2, locales=("en", "es"))


def test_demo_script_asks_every_entry_once_per_language_before_repeating():
    faq = {(e.locale, e.id) for e in ENTRIES if e.kind == "query" and e.texts}
    chats = demo_script(ENTRIES, count=len(faq), seed=5, locales=("en", "es"))
    first = Counter((c.locale, c.turns[0].entry_id) for c in chats)
    assert set(first) == faq and set(first.values()) == {1}


def test_demo_script_follow_ups_and_locales():
    chats = demo_script(ENTRIES, count=200, seed=0, locales=("es",))
    assert {c.locale for c in chats} == {"es"}
    two = [c for c in chats if len(c.turns) == 2]
    assert 0.25 < len(two) / len(chats) < 0.55
    assert all(c.turns[0].entry_id != c.turns[1].entry_id for c in two)
    openers = (
        "gracias, y",
        "vale, gracias.",
        "genial, otra cosa:",
        "¡gracias! también,",
        "perfecto",
    )
    assert all(c.turns[1].text.startswith(openers) for c in two)


def test_vary_keeps_the_question_and_changes_its_surface():
    rng = random.Random(3)
    phrasing = "How much is shipping?"
    variants = {vary(phrasing, "en", rng) for _ in range(60)}
    assert len(variants) > 10
    assert all(words("how much is shipping") in words(v) for v in variants)
    assert any(v.lower().startswith(("hi", "hello", "hey", "good morning")) for v in variants)


def test_rating_approves_the_right_entry_only():
    def result(source_id: str | None, *, handoff: bool = False, error: str | None = None):
        sources = [Source(source_id, "t", 0.9, "s")] if source_id else []
        meta = ReplyMeta(sources=sources, handoff=handoff)
        return TurnResult(user_message_id="u", meta=meta, error=error)

    assert rating(result("track-order"), "track-order") == 1
    assert rating(result("shipping-cost"), "track-order") == -1
    assert rating(result("track-order", handoff=True), "track-order") is None
    assert rating(result(None, error="service down"), "track-order") is None
