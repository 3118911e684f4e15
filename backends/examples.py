"""Versioned few-shot example sets: load from a JSON file, pick the examples for a question."""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from backends.retrieval.embedder import Embedder

BUNDLED_EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "fewshot" / "nubo_store.json"


@dataclass(frozen=True)
class Example:
    """One example exchange: a customer question and the answer we want."""

    id: str
    user: str
    assistant: str
    locale: str = "en"


@dataclass(frozen=True)
class ExampleSet:
    """A named, versioned list of examples; ``digest`` pins the exact file content."""

    name: str
    version: str
    examples: tuple[Example, ...]
    system_prompt: str = ""
    digest: str = ""

    @classmethod
    def load(cls, path: Path) -> ExampleSet:
        """Read an example-set file; a missing or malformed file is a ``ValueError`` naming it."""
        try:
            raw = Path(path).read_bytes()
            doc = json.loads(raw)
            examples = tuple(
                Example(
                    id=str(e.get("id") or f"ex{i}"),
                    user=e["user"],
                    assistant=e["assistant"],
                    locale=e.get("locale", "en"),
                )
                for i, e in enumerate(doc["examples"])
            )
            return cls(
                name=str(doc["name"]),
                version=str(doc["version"]),
                examples=examples,
                system_prompt=str(doc.get("system_prompt", "")),
                digest=hashlib.sha256(raw).hexdigest()[:12],
            )
        except OSError as exc:
            raise ValueError(f"cannot read example set {path}: {exc.strerror}") from exc
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(
                f"example set {path} is malformed ({exc!r}): it needs name, version and "
                "examples [{user, assistant, locale}] (see data/fewshot/README.md)"
            ) from exc

    def provenance(self) -> dict[str, Any]:
        """What an answer records about the set it was prompted with."""
        return {"name": self.name, "version": self.version, "digest": self.digest}


class ExampleSelector:
    """Picks k examples in the chat's locale (all locales if it has none): first k, or nearest."""

    def __init__(self, examples: ExampleSet, *, k: int | None = None, embedder: Any = None):
        self.examples = examples
        self.k = k
        self._embedder: Embedder | None = embedder
        self._vectors: np.ndarray | None = None
        self._lock = threading.Lock()

    @property
    def nearest(self) -> bool:
        """Whether selection is by similarity (an embedder or factory was given)."""
        return self._embedder is not None

    def _encoded(self) -> tuple[Embedder, np.ndarray]:
        """The embedder and the example questions' vectors (built once; blocking)."""
        with self._lock:
            if callable(self._embedder) and not hasattr(self._embedder, "encode"):
                self._embedder = self._embedder()  # a factory: load the model on first use
            embedder = self._embedder
            assert embedder is not None
            if self._vectors is None:
                texts = [e.user for e in self.examples.examples]
                self._vectors = embedder.encode(texts, kind="query")
            return embedder, self._vectors

    def select(self, question: str, locale: str) -> list[Example]:
        """Examples to show, most useful first (blocking when selecting by similarity)."""
        everything = list(self.examples.examples)
        local = [i for i, e in enumerate(everything) if e.locale == locale]
        rows = local or list(range(len(everything)))
        if self.nearest:
            embedder, vectors = self._encoded()
            query = embedder.encode([question], kind="query")[0]
            scores = vectors[rows] @ query
            rows = [rows[i] for i in np.argsort(-scores, kind="stable")]
        return [everything[i] for i in rows[: self.k or len(rows)]]
