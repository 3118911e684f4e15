"""Spanish tuning data: on a cross-lingual index (entries with other-language aliases), each
phrasing is also paired with one other-language phrasing of its entry; English is unchanged."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from backends.retrieval.index import Entry
from chatbot.knowledge.tuning.data import build_data


def encode(texts: list[str]) -> np.ndarray:
    """Any normalized rows: no chats, so the pairs do not depend on the model."""
    rows = np.ones((len(texts), 4), dtype=np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def spanish() -> list[Entry]:
    return [
        Entry("points", "", "Tus puntos...", ("mis puntos", "saldo de puntos"), locale="es"),
        Entry("parcel", "", "Tu paquete...", ("mi paquete", "dónde va mi envío"), locale="es"),
        Entry("refund", "", "Tu reembolso...", ("mi reembolso", "devolución"), locale="es"),
    ]


def pairs(entries: list[Entry]) -> set[tuple[str, str]]:
    data = build_data(
        entries, [], encode, validation_fraction=0.0, correction_min_similarity=0.8, seed=0
    )
    return {(p.anchor, p.positive) for p in data.train}


def test_spanish_phrasings_are_also_paired_with_an_english_phrasing():
    english = {"points": ("my points",), "parcel": ("my parcel",), "refund": ("my refund",)}
    crossed = [replace(e, aliases=english[e.id]) for e in spanish()]
    found = pairs(crossed)
    assert ("mis puntos", "my points") in found and ("devolución", "my refund") in found
    assert not any(p.startswith("Tu") for _, p in found)  # answers are not positives
    assert found - pairs(spanish()) == {(t, english[e.id][0]) for e in crossed for t in e.texts}
