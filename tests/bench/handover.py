"""Calibrated hand-overs: each language's hand-over score chosen on a development split for a
target out-of-scope recall, and what it costs in-scope, on a test split never chosen on.

Development: ``bilingual_questions.jsonl`` + half of ``out_of_scope_questions.jsonl`` (by a fixed
seed, per language). Test: ``heldout_questions.jsonl`` (only ever reported on) + the other half.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from backends.retrieval.backend import RetrievalBackend
from backends.retrieval.handover import Point, point
from backends.retrieval.index_set import Routes
from chatbot.knowledge.calibrate import GroupReport, calibrate, load_questions, score, split
from chatbot.knowledge.ingest import ingest
from chatbot.settings import BUNDLED_KB

DATA = Path(__file__).resolve().parents[1] / "data"
SEED = 12
TARGET = 0.95


def sets() -> tuple[list, list]:
    """(dev, test) questions: the out-of-scope set halved per language by ``SEED``."""
    oos_dev, oos_test = split(load_questions([DATA / "out_of_scope_questions.jsonl"]), 0.5, SEED)
    dev = load_questions([DATA / "bilingual_questions.jsonl"]) + oos_dev
    test = load_questions([DATA / "heldout_questions.jsonl"]) + oos_test
    return dev, test


def _point(p: Point | None) -> str:
    """One point's figures."""
    if p is None:
        return "n/a"
    return (
        f"out-of-scope handed over {p.oos_recall:6.1%}, in-scope answered right "
        f"{p.answered_right:6.1%} (handed over {p.handed_over:5.1%})"
    )


def print_report(label: str, r: GroupReport) -> None:
    """The chosen score, the configured one, and the curve on the test split."""
    print(
        f"\n{label} {r.group}: dev {r.dev_counts[0]} in-scope + {r.dev_counts[1]} out-of-scope, "
        f"test {r.test_counts[0]} + {r.test_counts[1]}"
    )
    print(f"  configured {r.configured:.3f}: test {_point(r.test_configured)}")
    print(f"  calibrated {r.threshold:.3f}, lead weight {r.margin_weight} (dev {_point(r.dev)})")
    print(f"             test {_point(r.test)}")
    print("  curve (threshold on the confidence -> test out-of-scope handed over, test in-scope")
    print("  answered right):")
    for dev, test in r.curve:
        if test is not None and 0.0 < test.oos_recall and test.answered_right > 0.05:
            print(f"    {dev.threshold:.2f} -> {test.oos_recall:6.1%}  {test.answered_right:6.1%}")


def run_index(label: str, index_dir: Path, routes: Routes) -> list[GroupReport]:
    """Calibrate one built index set and print its figures."""
    backend = RetrievalBackend(index_dir, routes=routes, calibrated=False)
    dev, test = sets()
    reports = calibrate(backend, dev, test, TARGET)
    for r in reports:
        print_report(label, r)
    regional(backend, reports)
    return reports


def regional(backend: RetrievalBackend, reports: list[GroupReport]) -> None:
    """The Spanish calibration on the regional set (tests/data/regional_es; never chosen on)."""
    folder = DATA / "regional_es"
    files = [folder / "questions.jsonl", folder / "out_of_scope.jsonl"]
    es = next((r for r in reports if r.group == "es"), None)
    if es is None or not all(f.exists() for f in files):
        return
    scored = score(backend, load_questions(files)).get("es", [])
    inside, outside = sum(s.in_scope for s in scored), sum(not s.in_scope for s in scored)
    print(f"  regional Spanish ({inside} in-scope + {outside} out-of-scope, never chosen on):")
    print(f"    configured {es.configured:.3f}: {_point(point(es.configured, scored))}")
    calibrated = point(es.threshold, scored, es.margin_weight)
    print(f"    calibrated {es.threshold:.3f}: {_point(calibrated)}")


def run(quick: bool, tuned_en: str | None = None) -> None:
    """The default embedders (and a tuned English one, given its folder) on the bundled KB."""
    print(f"calibrated hand-overs: target out-of-scope recall {TARGET:.0%}, split seed {SEED}")
    print(f"load average {os.getloadavg()[0]:.2f} (2 vCPUs)")
    choices = {"default": Routes()}
    if tuned_en:
        name = Path(tuned_en).name
        for label, spec in ((name, tuned_en), (f"{name} on ONNX int8", f"onnx:{tuned_en}")):
            choices[f"tuned English ({label})"] = Routes(
                language_models={**Routes().language_models, "en": spec}
            )
    for label, routes in choices.items():
        with tempfile.TemporaryDirectory() as tmp:
            ingest(BUNDLED_KB, index_dir=Path(tmp) / "index", routes=routes, hnsw_min_rows=50_000)
            run_index(label, Path(tmp) / "index", routes)
