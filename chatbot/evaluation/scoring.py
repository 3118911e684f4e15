"""Scores of one answer: right entry, similarity to the reference, share of its key facts."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np

from backends.retrieval.spelling import fold

# Numbers (prices, days, percentages, order numbers): "4.95", "4,95", "30", "1.200"
_NUMBER = re.compile(r"(?<![\w.,])\d+(?:[.,]\d+)*(?![\w])")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_URL = re.compile(
    r"(?:https?://|www\.)[^\s)>\]\"']+|\b[\w-]+(?:\.[\w-]+)*\.(?:com|es|org|net|io)\b"
)
_WORD = re.compile(r"[^\W\d_][\w'-]*", re.UNICODE)
WEEKDAYS_MONTHS = frozenset(
    "monday tuesday wednesday thursday friday saturday sunday lunes martes miercoles jueves "
    "viernes sabado domingo january february march april may june july august september "
    "october november december enero febrero marzo abril mayo junio julio agosto septiembre "
    "octubre noviembre diciembre".split()
)
# Capitalised words that start sentences or are too common to be a name worth checking.
_COMMON = frozenset(
    "i you we our your the a an if it its this that and or but you'll we'll we're you're "
    "el la los las un una si tu tus te nuestro nuestra y o pero es en de del al para con por "
    "my mi account cuenta orders pedidos not no eur usd gbp mxn".split()
)


def _number(token: str) -> str:
    """A number in one form: "4,95" and "4.95" are the same price; "1.200" stays as written."""
    if re.fullmatch(r"\d+[.,]\d{1,2}", token):
        return token.replace(",", ".")
    return token


def key_facts(reference: str) -> set[str]:
    """Facts a correct answer must carry: numbers, emails, URLs, weekdays/months, names."""
    facts = {f"n:{_number(t)}" for t in _NUMBER.findall(reference)}
    facts |= {f"s:{m.lower().rstrip('.')}" for m in _EMAIL.findall(reference)}
    facts |= {f"s:{m.lower().rstrip('.')}" for m in _URL.findall(reference) if "@" not in m}
    for sentence in re.split(r"(?<=[.!?:])\s+|\n+", reference):
        words = list(_WORD.finditer(sentence))
        for index, match in enumerate(words):
            word = match.group(0)
            folded = fold(word)
            if folded in WEEKDAYS_MONTHS:
                facts.add(f"w:{folded}")
            elif index > 0 and word[0].isupper() and folded not in _COMMON and len(word) > 1:
                facts.add(f"w:{folded}")  # a name mid-sentence: PayPal, Klarna, Nubo
    return facts


def _present(fact: str, answer_numbers: set[str], folded_answer: str) -> bool:
    kind, value = fact.split(":", 1)
    if kind == "n":
        return value in answer_numbers
    if kind == "w":
        return re.search(rf"(?<!\w){re.escape(value)}(?!\w)", folded_answer) is not None
    return value in folded_answer


def fact_share(reference: str | None, answer: str | None) -> float | None:
    """Share of the reference's key facts found in the answer; None when it has none."""
    if not reference or answer is None:
        return None
    facts = key_facts(reference)
    if not facts:
        return None
    numbers = {_number(t) for t in _NUMBER.findall(answer)}
    folded = fold(answer)
    return sum(_present(f, numbers, folded) for f in facts) / len(facts)


def right_entry(
    expected: str | None, sources: list[dict[str, Any]] | None, handoff: bool
) -> bool | None:
    """Whether the answer is the expected entry's (first cited source, no hand-over).

    None for unlabelled questions and for backends that cite no sources (plain generation).
    """
    if not expected or not sources:
        return None
    return not handoff and sources[0].get("id") == expected


Encode = Callable[[list[str]], np.ndarray]


class Similarity:
    """Cosine similarity of an answer to its reference with the retrieval embedder per language."""

    def __init__(self, encoder_for: Callable[[str], Encode]):
        self._encoder_for = encoder_for
        self._encoders: dict[str, Encode] = {}

    def __call__(self, answer: str | None, reference: str | None, locale: str) -> float | None:
        """Cosine in [-1, 1]; None without an answer or a reference."""
        if not answer or not answer.strip() or not reference:
            return None
        if locale not in self._encoders:
            self._encoders[locale] = self._encoder_for(locale)
        vectors = np.asarray(self._encoders[locale]([answer, reference]), dtype=np.float64)
        norms = np.linalg.norm(vectors, axis=1)
        if not np.all(norms > 0):
            return None
        return float(vectors[0] @ vectors[1] / (norms[0] * norms[1]))
