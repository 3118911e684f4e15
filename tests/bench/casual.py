"""Casual spelling: the development questions as written, without accents, and with one typo
each, and the short messages, answered with the spelling step (backends/retrieval/spelling.py)
off and on.

The casual sets are made from the development questions by a fixed rule (lower case, accents
and opening marks dropped; then one word of 5+ letters gets a letter dropped, doubled, or
swapped with the next, seeded), so they measure robustness without anyone writing new
questions, and the spelling step was chosen on them and on the development set alone."""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

import numpy as np

from backends.retrieval.backend import RetrievalBackend
from backends.retrieval.index_set import Routes
from backends.retrieval.spelling import fold
from chatbot.knowledge.ingest import ingest
from chatbot.settings import BUNDLED_KB
from tests.bench.languages import ask, questions

SEED = 7


def plain(text: str) -> str:
    """Lower case, no accents, no opening marks."""
    return "".join(c for c in fold(text) if c not in "¿¡")


def typo(text: str, rng: random.Random) -> str:
    """One word of 5+ letters with a letter dropped, doubled or swapped with the next."""
    words = text.split()
    long_words = [i for i, w in enumerate(words) if len(w) >= 5]
    if not long_words:
        return text
    i = rng.choice(long_words)
    w, j = words[i], rng.randrange(1, len(words[i]) - 1)
    edit = rng.choice(["drop", "swap", "double"])
    if edit == "drop":
        w = w[:j] + w[j + 1 :]
    elif edit == "swap":
        w = w[:j] + w[j + 1] + w[j] + w[j + 2 :]
    else:
        w = w[:j] + w[j] + w[j:]
    words[i] = w
    return " ".join(words)


def casual_sets(language: str) -> dict[str, list[dict]]:
    """The development questions of ``language``: as written, plain, plain with a typo; the
    short messages of tests/data/short_questions.jsonl; for Spanish, the regional development
    questions (tests/data/regional_es_dev)."""
    dev = [q for q in questions("bilingual_questions.jsonl") if q["locale"] == language]
    rng = random.Random(SEED)
    return {
        "as written": dev,
        "no accents": [dict(q, text=plain(q["text"])) for q in dev],
        "one typo": [dict(q, text=typo(plain(q["text"]), rng)) for q in dev],
        "short": [q for q in questions("short_questions.jsonl") if q["locale"] == language],
        **(
            {"regional dev": questions("regional_es_dev/questions.jsonl")}
            if language == "es"
            else {}
        ),
    }


def run() -> None:
    """Top-1 on each casual set per language, spelling off and on (default embedders)."""
    print("\nCasual spelling (development questions; top-1, spelling step off -> on)")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "index"
        ingest(BUNDLED_KB, index_dir=root, routes=Routes(), hnsw_min_rows=50_000)
        for language in ("en", "es"):
            backends = [
                RetrievalBackend(root, spelling_languages=languages)
                for languages in ((), (language,))
            ]
            for name, rows in casual_sets(language).items():
                off, on = (np.mean([ask(b, q).right for q in rows]) for b in backends)
                print(f"  {language} {name:<12} {off:6.1%} -> {on:6.1%}  (n={len(rows)})")
