"""Per-backend figures of an evaluation, each with a seeded 95% bootstrap confidence interval."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

Stat = dict[str, float | int | None]


def bootstrap(
    values: Sequence[float],
    statistic: Callable[[np.ndarray], float] = np.mean,
    *,
    resamples: int = 1000,
    seed: int = 0,
) -> Stat:
    """``{"value", "lo", "hi", "n"}``: the statistic and its 95% percentile-bootstrap interval."""
    data = np.asarray([v for v in values if v is not None], dtype=np.float64)
    if data.size == 0:
        return {"value": None, "lo": None, "hi": None, "n": 0}
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, data.size, size=(resamples, data.size))
    stats = np.apply_along_axis(statistic, 1, data[picks])
    lo, hi = np.percentile(stats, [2.5, 97.5])
    return {"value": float(statistic(data)), "lo": float(lo), "hi": float(hi), "n": int(data.size)}


def p50(values: np.ndarray) -> float:
    """The median."""
    return float(np.percentile(values, 50))


def p95(values: np.ndarray) -> float:
    """The 95th percentile."""
    return float(np.percentile(values, 95))


def _column(rows: Sequence[dict[str, Any]], key: str) -> list[float]:
    return [float(r[key]) for r in rows if r.get(key) is not None]


def _flags(rows: Sequence[dict[str, Any]], key: str) -> list[float]:
    return [1.0 if r.get(key) else 0.0 for r in rows]


def backend_metrics(rows: Sequence[dict[str, Any]], *, resamples: int, seed: int) -> dict[str, Any]:
    """Quality, hand-overs, latency, tokens, cost, errors of one backend's answers."""

    def ci(values: Sequence[float], statistic: Callable[[np.ndarray], float] = np.mean) -> Stat:
        return bootstrap(values, statistic, resamples=resamples, seed=seed)

    answered = [r for r in rows if not r.get("error")]
    in_scope = [r for r in answered if r.get("in_scope")]
    out_scope = [r for r in answered if not r.get("in_scope")]
    costs = _column(answered, "cost_usd")
    return {
        "answers": len(rows),
        "answered": len(answered),
        "in_scope": len(in_scope),
        "out_of_scope": len(out_scope),
        "right_entry": ci(_flags([r for r in in_scope if r.get("correct") is not None], "correct")),
        "similarity": ci(_column(in_scope, "similarity")),
        "key_facts": ci(_column(in_scope, "key_facts")),
        "judge": ci(_column(answered, "judge_score")),
        "handoff_in_scope": ci(_flags(in_scope, "handoff")),
        "handoff_out_of_scope": ci(_flags(out_scope, "handoff")),
        "ttft_p50": ci(_column(answered, "ttft_ms"), p50),
        "ttft_p95": ci(_column(answered, "ttft_ms"), p95),
        "latency_p50": ci(_column(answered, "latency_ms"), p50),
        "latency_p95": ci(_column(answered, "latency_ms"), p95),
        "input_tokens": ci(_column(answered, "input_tokens")),
        "output_tokens": ci(_column(answered, "output_tokens")),
        # measured (messages.cost_usd from the price table); None when no answer was priced
        "cost_per_1000": ci([c * 1000 for c in costs]) if costs else ci([]),
        "priced_answers": len(costs),
        "errors": sum(1 for r in rows if r.get("error")),
        "fallbacks": sum(1 for r in rows if r.get("fallback_from")),
        "error_rate": ci(_flags(rows, "error")),
    }


def provenance(rows: Sequence[dict[str, Any]]) -> dict[str, list[str]]:
    """The distinct models, config hashes, index versions and example sets of the answers."""
    keys = ("model", "backend_config_hash", "index_version", "example_set")
    return {k: sorted({str(r[k]) for r in rows if r.get(k)}) for k in keys}


def quality(metrics: dict[str, Any]) -> float | None:
    """The headline quality of a backend: mean similarity of in-scope answers to the reference."""
    value = metrics["similarity"]["value"]
    return None if value is None else float(value)


def worst(rows: Sequence[dict[str, Any]], n: int = 5) -> list[dict[str, Any]]:
    """The ``n`` in-scope answers least like their reference (errors first)."""
    scored = [r for r in rows if r.get("in_scope") and (r.get("reference") or r.get("error"))]

    def badness(row: dict[str, Any]) -> tuple[int, float]:
        if row.get("error"):
            return (0, 0.0)
        return (1, row["similarity"] if row.get("similarity") is not None else 1.0)

    return sorted(scored, key=badness)[:n]


def summarize(
    results: Sequence[dict[str, Any]], backends: Sequence[str], *, resamples: int, seed: int
) -> dict[str, Any]:
    """Every backend's metrics, provenance and worst answers, in the run's backend order."""
    summary: dict[str, Any] = {}
    for name in backends:
        rows = [r for r in results if r["backend_name"] == name]
        metrics = backend_metrics(rows, resamples=resamples, seed=seed)
        kinds = {str(r["details"].get("kind")) for r in rows if r.get("details", {}).get("kind")}
        summary[name] = {
            "kind": sorted(kinds)[0] if kinds else None,
            "metrics": metrics,
            "quality": quality(metrics),
            "provenance": provenance(rows),
            "stopped": next(
                (r["error"] for r in rows if str(r.get("error", "")).startswith("skipped")), None
            ),
        }
    return summary
