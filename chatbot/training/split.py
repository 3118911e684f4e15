"""Leak-safe splits: by conversation, fixed by a seed, pins kept, near-duplicates on one side.

A conversation's split depends only on its id and the seed (a hash), so adding chats later
does not reshuffle earlier ones. A conversation pinned to a split stays there. A training
conversation whose user side is a near-duplicate (cosine >= threshold with the retrieval
embedder) of a held-out one moves to that held-out split, so the model is never evaluated on
what it was trained on; likewise validation moves to test.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

SPLITS = ("train", "validation", "test")
HELD_OUT = ("validation", "test")
T = TypeVar("T")


@dataclass(frozen=True)
class SplitPlan:
    """Fractions of conversations per held-out split and the seed."""

    validation: float = 0.1
    test: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not (
            0 <= self.validation < 1 and 0 <= self.test < 1 and self.validation + self.test < 1
        ):
            raise ValueError(
                "split fractions must be in [0, 1) and leave some training data "
                f"(validation {self.validation}, test {self.test})"
            )


def unit_hash(conversation_id: str, seed: int) -> float:
    """A stable number in [0, 1) for a conversation and seed."""
    digest = hashlib.sha256(f"{seed}:{conversation_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign(conversation_id: str, pinned: str | None, plan: SplitPlan) -> str:
    """The split of one conversation: its pin if any, else by hash."""
    if pinned in SPLITS:
        return pinned
    u = unit_hash(conversation_id, plan.seed)
    if u < plan.test:
        return "test"
    if u < plan.test + plan.validation:
        return "validation"
    return "train"


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Lists of at most ``size`` items."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


class NearDuplicates:
    """Held-out conversations' embeddings; finds which held-out split a text duplicates."""

    def __init__(self, encode: Callable[[list[str]], Any], threshold: float, batch: int = 64):
        self.encode = encode
        self.threshold = threshold
        self.batch = batch
        self.vectors: dict[str, np.ndarray] = {}

    def _embed(self, texts: list[str]) -> np.ndarray:
        vectors = np.asarray(self.encode(texts), dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-12)

    def add(self, split: str, texts: list[str]) -> list[bool]:
        """Add texts of a held-out split; True where one duplicates a text of a *later* split.

        Call with ``test`` first, then ``validation``: a validation text that duplicates a test
        one is reported (and should move to test) instead of being added.
        """
        moved: list[bool] = []
        for chunk in batched(texts, self.batch):
            vectors = self._embed(chunk)
            hits = self.match(vectors, ("test",)) if split == "validation" else [None] * len(chunk)
            keep = np.array([hit is None for hit in hits], dtype=bool)
            self._stack(split, vectors[keep])
            moved.extend(hit is not None for hit in hits)
        return moved

    def _stack(self, split: str, vectors: np.ndarray) -> None:
        old = self.vectors.get(split)
        self.vectors[split] = vectors if old is None else np.vstack([old, vectors])

    def match(self, vectors: np.ndarray, splits: tuple[str, ...] = HELD_OUT) -> list[str | None]:
        """For each row, the held-out split it near-duplicates (test wins over validation)."""
        found: list[str | None] = [None] * len(vectors)
        for split in splits:  # test last, so it wins
            held = self.vectors.get(split)
            if held is None or not len(held) or not len(vectors):
                continue
            best = (vectors @ held.T).max(axis=1)
            for i in np.nonzero(best >= self.threshold)[0]:
                found[int(i)] = split
        return found

    def classify(self, texts: list[str]) -> list[str | None]:
        """For each training text, the held-out split it near-duplicates, if any."""
        if not self.vectors:
            return [None] * len(texts)
        found: list[str | None] = []
        for chunk in batched(texts, self.batch):
            found.extend(self.match(self._embed(chunk)))
        return found


class ExactDuplicates:
    """The same interface as ``NearDuplicates`` for identical texts only (no embedder needed)."""

    def __init__(self) -> None:
        self.seen: dict[str, set[bytes]] = {split: set() for split in HELD_OUT}

    @staticmethod
    def _key(text: str) -> bytes:
        return hashlib.blake2b(" ".join(text.lower().split()).encode(), digest_size=12).digest()

    def add(self, split: str, texts: list[str]) -> list[bool]:
        """Add held-out texts (test first); True where a validation text repeats a test one."""
        moved = []
        for text in texts:
            key = self._key(text)
            dup = split == "validation" and key in self.seen["test"]
            if not dup:
                self.seen[split].add(key)
            moved.append(dup)
        return moved

    def classify(self, texts: list[str]) -> list[str | None]:
        """For each training text, the held-out split holding the same text, if any."""
        out: list[str | None] = []
        for text in texts:
            key = self._key(text)
            out.append(next((s for s in ("test", "validation") if key in self.seen[s]), None))
        return out
