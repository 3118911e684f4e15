"""Detected personal-data spans: the stored shape, overlap merging, and applying them to text."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from chatbot.training.redact import Redactor

# Detector version stored with the spans: raise it when recognizers change, and the backfill
# detects every message again (spans an admin marked are kept). 2: Spanish sign-offs,
# relatives, honorifics, agents' names, brand deny-list, more address shapes, context phones.
VERSION = 2
ADMIN = "admin"
MODEL = "model"
_SPACE = re.compile(r"\s+")
# values compared case- and space-insensitively, so "12345678z" and "12345678 Z" share a number
_COMPACT = frozenset(
    {"IBAN", "CARD", "PHONE", "ES_NIF", "ES_NIE", "US_SSN", "AR_CUIT", "MX_CURP", "MX_RFC"}
)


@dataclass(frozen=True, order=True)
class Span:
    """Characters ``start:end`` of a text hold personal data of ``type``."""

    start: int
    end: int
    type: str
    score: float = 1.0
    source: str = MODEL

    def to_json(self) -> dict[str, Any]:
        """The form kept in ``messages.pii_spans``."""
        return {
            "start": self.start,
            "end": self.end,
            "type": self.type,
            "score": round(self.score, 3),
            "source": self.source,
        }

    @classmethod
    def from_json(cls, item: dict[str, Any]) -> Span:
        """A span read back from the database."""
        return cls(
            int(item["start"]),
            int(item["end"]),
            str(item["type"]),
            float(item.get("score", 1.0)),
            str(item.get("source", MODEL)),
        )


def merge(spans: Iterable[Span]) -> list[Span]:
    """Overlapping spans joined into one; it takes the type of the strongest part.

    An admin's span wins over a detected one; otherwise the higher score, then the longer span.
    """
    out: list[Span] = []
    for span in sorted(spans):
        if out and span.start < out[-1].end:
            last = out[-1]
            strongest = max(last, span, key=_strength)
            out[-1] = Span(
                last.start,
                max(last.end, span.end),
                strongest.type,
                strongest.score,
                strongest.source,
            )
        else:
            out.append(span)
    return out


def _strength(span: Span) -> tuple[bool, float, int]:
    return (span.source == ADMIN, span.score, span.end - span.start)


def value_key(kind: str, value: str) -> str:
    """How a value is compared within a conversation (same key -> same placeholder)."""
    if kind in _COMPACT:
        return re.sub(r"[^0-9A-Za-z]", "", value).upper()
    return _SPACE.sub(" ", value).strip().casefold()


def apply(text: str, spans: Iterable[Span], redactor: Redactor) -> str:
    """``text`` with each span replaced by its conversation-stable placeholder."""
    parts: list[str] = []
    at = 0
    for span in merge(s for s in spans if 0 <= s.start < s.end <= len(text)):
        parts.append(text[at : span.start])
        parts.append(
            redactor.placeholder(span.type, value_key(span.type, text[span.start : span.end]))
        )
        at = span.end
    parts.append(text[at:])
    return "".join(parts)


def find_text(text: str, needle: str) -> list[Span]:
    """Admin spans for every occurrence of ``needle`` in ``text`` (case-insensitive)."""
    if not needle.strip():
        return []
    pattern = re.compile(re.escape(needle.strip()), re.IGNORECASE)
    return [Span(m.start(), m.end(), "PII", 1.0, ADMIN) for m in pattern.finditer(text)]
