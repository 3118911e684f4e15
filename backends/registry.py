"""Backend kinds by name, and ``build(kind, config)`` to make one."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

from backends.base import Backend

Factory = Callable[[Mapping[str, Any]], Backend]


def _retrieval(config: Mapping[str, Any]) -> Backend:
    from backends.retrieval.backend import RetrievalBackend

    return RetrievalBackend.from_config(config)


KINDS: dict[str, Factory] = {"retrieval": _retrieval}


def build(kind: str, config: Mapping[str, Any]) -> Backend:
    """Make a backend of ``kind`` from its config; unknown kinds name the known ones."""
    try:
        factory = KINDS[kind]
    except KeyError:
        known = ", ".join(sorted(KINDS))
        raise ValueError(f"unknown backend kind {kind!r}; known kinds: {known}") from None
    return factory(config)


def config_hash(kind: str, config: Mapping[str, Any]) -> str:
    """A short stable hash of a backend's kind and config, stored with each reply."""
    blob = json.dumps({"kind": kind, "config": config}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]
