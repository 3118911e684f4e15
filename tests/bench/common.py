"""Shared bench helpers: percentiles, Banking77, a timing printer."""

from __future__ import annotations

import csv
import statistics
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BANKING77 = ROOT / "tests" / "data" / "banking77"  # CC BY 4.0, see its README.md


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def summary(values_ms: list[float]) -> str:
    """p50/p95 (and mean) of a list of milliseconds."""
    return (
        f"p50 {pct(values_ms, 50):7.2f} ms  p95 {pct(values_ms, 95):7.2f} ms  "
        f"mean {statistics.fmean(values_ms):7.2f} ms  (n={len(values_ms)})"
    )


def time_ms(fn: Callable[[], object]) -> float:
    """Wall time of one call in milliseconds."""
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def banking77(split: str) -> list[tuple[str, str]]:
    """(text, intent) rows of Banking77 ``train`` or ``test``."""
    path = BANKING77 / f"{split}.csv"
    if not path.exists():
        raise SystemExit(f"Banking77 not found at {path} (tests/data/banking77 in the repository)")
    with path.open(encoding="utf-8") as f:
        return [(row["text"], row["category"]) for row in csv.DictReader(f)]
