"""Which language a customer wrote in (py3langid, offline), among the languages Afina speaks."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

SUPPORTED = ("en", "es")
# Below this probability (short or mixed messages: "ok", "PayPal?") the caller's fallback wins.
MIN_CONFIDENCE = 0.9


@lru_cache(maxsize=4)
def _identifier(languages: tuple[str, ...]):  # py3langid has no type hints
    """A py3langid identifier restricted to ``languages`` (loaded once)."""
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    identifier.set_languages(list(languages))
    return identifier


def detect(text: str, languages: Sequence[str] = SUPPORTED) -> tuple[str, float]:
    """The most likely of ``languages`` for ``text`` and its probability."""
    language, probability = _identifier(tuple(languages)).classify(text)
    return str(language), float(probability)


def detect_or(text: str, fallback: str, languages: Sequence[str] = SUPPORTED) -> str:
    """The language of ``text`` when detection is confident, else ``fallback``."""
    return detect_sure(text, fallback, languages)[0]


def detect_sure(text: str, fallback: str, languages: Sequence[str] = SUPPORTED) -> tuple[str, bool]:
    """``(language, True)`` when detection is confident, else ``(fallback, False)``."""
    language, probability = detect(text, languages)
    return (language, True) if probability >= MIN_CONFIDENCE else (fallback, False)
