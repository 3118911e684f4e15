"""An evaluation from start to finish: plan (items, backends), run, summarise — for CLI and web."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backends.retrieval.embedder import load_embedder
from chatbot.db import eval_store, finetune_store
from chatbot.evaluation import breakeven, metrics
from chatbot.evaluation.judge import PROMPT, Judge
from chatbot.evaluation.questions import (
    EvalItem,
    answers_by_entry,
    digest,
    load_export_chats,
    load_questions,
    sample,
)
from chatbot.evaluation.report import report_data
from chatbot.evaluation.runner import Outcome, Runner, backend_kinds
from chatbot.evaluation.scoring import Similarity
from chatbot.knowledge.loaders import load_path
from chatbot.pricing import price_of
from chatbot.runtime import Runtime
from chatbot.settings import Settings


@dataclass
class Plan:
    """What a run will ask and of whom."""

    items: list[EvalItem]
    backends: dict[str, str]
    source: dict[str, Any]
    params: dict[str, Any]


def plan(
    runtime: Runtime,
    *,
    backends: Sequence[str],
    questions: Sequence[Path] = (),
    export_id: int | None = None,
    split: str = "test",
    limit: int | None = None,
    judge: str | None = None,
    training_cost: float | None = None,
) -> Plan:
    """Check the backends and load the items (errors name the fix); nothing is stored yet."""
    settings = runtime.settings
    kinds = backend_kinds(runtime, [b.strip() for b in backends if b.strip()])
    if judge:
        backend_kinds(runtime, [judge])
    if export_id is not None:
        with runtime.sessions() as session:
            items = load_export_chats(session=session, export_id=export_id, split=split)
        source: dict[str, Any] = {"export_id": export_id, "split": split}
    else:
        answers = answers_by_entry(load_path(settings.kb_path))
        items = load_questions(list(questions), answers, str(settings.kb_path))
        source = {"questions": [Path(q).name for q in questions]}
    seed = settings.eval.seed
    items = sample(items, limit, seed)
    source.update(items=len(items), digest=digest(items), limit=limit, seed=seed)
    params = {
        "resamples": settings.eval.bootstrap_resamples,
        "seed": seed,
        "total": len(items) * len(kinds),
        "kinds": kinds,
        "training_cost_usd": training_cost,
        "monthly_volume": settings.eval.monthly_volume,
        "price_model": settings.eval.price_model,
        "judge": {"backend": judge, "prompt": PROMPT} if judge else None,
    }
    return Plan(items, kinds, source, params)


def start(runtime: Runtime, the_plan: Plan, created_by: int | None = None) -> int:
    """Store the run (status ``running``) and return its id."""
    with runtime.sessions.begin() as session:
        run = eval_store.add_run(
            session=session,
            source=the_plan.source,
            backends=list(the_plan.backends),
            params=the_plan.params,
            created_by=created_by,
        )
        return run.id


def similarity_for(settings: Settings) -> Similarity:
    """Answer-to-reference similarity with each language's retrieval embedder."""
    r = settings.retrieval

    def encoder(locale: str) -> Callable[[list[str]], Any]:
        spec = r.language_models.get(locale, r.model)
        return load_embedder(
            spec, allow_download=r.allow_download, model_cache=r.model_cache
        ).encode

    return Similarity(encoder)


async def execute(
    runtime: Runtime,
    run_id: int,
    the_plan: Plan,
    *,
    advance: Callable[[int], None] = lambda n: None,
    should_stop: Callable[[], bool] = lambda: False,
) -> Outcome:
    """Answer and score every item; the run stays ``running`` until ``finish``."""
    judge = the_plan.params.get("judge")
    runner = Runner(
        runtime,
        run_id,
        the_plan.items,
        the_plan.backends,
        runtime.settings.eval,
        similarity_for(runtime.settings),
        Judge(runtime.pool, judge["backend"]) if judge else None,
    )
    return await runner.run(advance, should_stop)


def finish(runtime: Runtime, run_id: int, status: str, reason: str | None = None) -> dict[str, Any]:
    """Summarise the stored results (metrics, break-even) and close the run with ``status``."""
    with runtime.sessions.begin() as session:
        run = eval_store.get_run(session=session, run_id=run_id)
        rows = eval_store.result_dicts(session=session, run_id=run_id)
        params = dict(run.params or {})
        summary = summarize(runtime.settings, rows, list(run.backends), params, session)
        eval_store.finish_run(
            session=session, run_id=run_id, status=status, summary=summary, error=reason
        )
        return summary


def summarize(
    settings: Settings,
    rows: list[dict[str, Any]],
    backends: list[str],
    params: dict[str, Any],
    session: Any,
) -> dict[str, Any]:
    """Per-backend metrics and the break-even of each fine-tuned backend."""
    per_backend = metrics.summarize(
        rows,
        backends,
        resamples=int(params.get("resamples", 1000)),
        seed=int(params.get("seed", 0)),
    )
    for name, kind in (params.get("kinds") or {}).items():
        if name in per_backend and kind:
            per_backend[name]["kind"] = kind
    price_model = str(params.get("price_model") or "")
    reference = price_of(settings.llm.prices, price_model) if price_model else None
    for entry in per_backend.values():
        usd = breakeven.per_answer_usd(entry["metrics"], reference)
        measured = entry["metrics"]["cost_per_1000"]["value"]
        if usd is None and entry["metrics"]["input_tokens"]["value"] is None:
            at_price = measured  # no tokens (retrieval): its measured cost is the cost
        else:
            at_price = None if usd is None else usd * 1000
        entry["cost_per_1000_at_price_model"] = at_price
    return {
        "backends": per_backend,
        "breakeven": _break_evens(settings, per_backend, params, session),
    }


def _break_evens(
    settings: Settings, per_backend: dict[str, Any], params: dict[str, Any], session: Any
) -> list[dict[str, Any]]:
    kinds = {n: b["kind"] for n, b in per_backend.items()}
    models = {n: (b["provenance"]["model"] or [None])[0] for n, b in per_backend.items()}
    jobs = {}
    for name, kind in kinds.items():
        if kind == "finetuned":
            job = finetune_store.job_for_backend(session=session, backend_name=name)
            jobs[name] = _job_dict(job) if job is not None else None
            if job is not None and job.base_model:
                models[name] = job.base_model  # pair it with the few-shot on its base
    found = []
    price_model = str(params.get("price_model") or "")
    for ft, fs in breakeven.pairs(kinds, models):
        cost = breakeven.training_cost(
            jobs.get(ft),
            given_usd=params.get("training_cost_usd"),
            price_per_million_tokens=settings.training.price_per_million_tokens,
            cpu_hour_usd=settings.eval.cpu_hour_usd,
        )
        ft_m, fs_m = per_backend[ft]["metrics"], per_backend[fs]["metrics"]
        ft_model = (per_backend[ft]["provenance"]["model"] or [None])[0]
        fs_model = (per_backend[fs]["provenance"]["model"] or [None])[0]
        ft_price, fs_price, basis = breakeven.answer_prices(
            settings.llm.prices, ft_model, fs_model, price_model
        )
        ft_usd = breakeven.per_answer_usd(ft_m, ft_price)
        fs_usd = breakeven.per_answer_usd(fs_m, fs_price)
        found.append(
            breakeven.break_even(
                finetuned=ft,
                fewshot=fs,
                ft_usd=ft_usd,
                fs_usd=fs_usd,
                ft_tokens=ft_m["input_tokens"]["value"],
                fs_tokens=fs_m["input_tokens"]["value"],
                price_basis=basis,
                cost=cost,
            ).to_dict()
        )
    return found


def _job_dict(job: Any) -> dict[str, Any]:
    keys = ("provider", "base_model", "trained_tokens", "train_seconds", "cost_usd")
    return {k: getattr(job, k) for k in keys} | {"hyperparameters": dict(job.hyperparameters or {})}


def load_report(session: Any, run_id: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The report data of run ``run_id`` and its result rows."""
    run = eval_store.get_run(session=session, run_id=run_id)
    rows = eval_store.result_dicts(session=session, run_id=run_id)
    columns = ("id", "status", "created_at", "finished_at", "error", "source", "backends",
               "params", "summary")  # fmt: skip
    record = {k: getattr(run, k) for k in columns}
    for key in ("created_at", "finished_at"):
        record[key] = record[key].isoformat() if record[key] else None
    return report_data(record, rows), rows
