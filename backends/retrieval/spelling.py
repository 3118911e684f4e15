"""Spelling of casual questions, set right against the knowledge base's own words.

Customers write "envio" for "envío", "contrasena" for "contraseña", "reembolzo" for
"reembolso". The embedders see other tokens for those and score the right entry lower. Before
a question is encoded, each of its words that the knowledge base does not use is replaced:

- by the knowledge base's spelling when the two differ only in accents or case;
- else, for words of at least ``MIN_TYPO_CHARS`` letters, by the one knowledge-base word one
  edit away (pyspellchecker's candidates: a letter dropped, added, changed or two swapped),
  when there is exactly one; a word with several such neighbours is left as it is.

The vocabulary is the index's own text (its entries' phrasings and answers), so a correction
can only move a question towards words the knowledge base uses. Measured on the Spanish
development questions (tests/bench/casual.py: the same questions without accents, and with one
typo each) and short messages: top-1 93.2% -> 93.2% as written, 91.0% -> 92.5% without
accents, 77.4% -> 88.0% with a typo, short messages 82.8% -> 87.9%, regional development
questions 84.4% -> 85.9%. On English the same rule cost one development question (97.7% ->
96.9%), so it is on for Spanish only by default. A question takes ~0.5 ms to spell
(regional questions, one thread, against ~11 ms for the Spanish search).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable

from spellchecker import SpellChecker

MIN_TYPO_CHARS = 5
_WORD = re.compile(r"\w+")


def fold(text: str) -> str:
    """Lower case, without accents: how a word is written in a hurry."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


class Speller:
    """Corrects questions towards the words of one index's texts."""

    def __init__(self, texts: Iterable[str]):
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(_WORD.findall(text.lower()))
        self._spelling: dict[str, str] = {}  # folded word -> its most used written form
        for word, _ in counts.most_common():
            self._spelling.setdefault(fold(word), word)
        self._checker = SpellChecker(language=None, distance=1)
        self._checker.word_frequency.load_words(list(self._spelling))

    def correct(self, text: str) -> str:
        """``text`` with each word the vocabulary lacks spelled as the vocabulary does."""
        return _WORD.sub(lambda m: self._word(m.group(0)), text)

    def _word(self, word: str) -> str:
        """One word, corrected or as it was."""
        folded = fold(word)
        known = self._spelling.get(folded)
        if known is not None:
            return word if word.lower() == known else known
        if len(folded) < MIN_TYPO_CHARS or not folded.isalpha():
            return word
        # pyspellchecker answers the word itself when it knows nothing near it
        near = [c for c in self._checker.candidates(folded) or () if c in self._spelling]
        return self._spelling[near[0]] if len(near) == 1 else word
