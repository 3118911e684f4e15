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


def _fewshot(config: Mapping[str, Any]) -> Backend:
    from backends.fewshot import FewShotBackend

    return FewShotBackend.from_config(config)


def _finetuned(config: Mapping[str, Any]) -> Backend:
    from backends.finetuned import FineTunedBackend

    return FineTunedBackend.from_config(config)


KINDS: dict[str, Factory] = {
    "retrieval": _retrieval,
    "fewshot": _fewshot,
    "finetuned": _finetuned,
}
# Config keys filled in by the caller at build time and never stored (e.g. the API key's value).
SECRET_KEYS = frozenset({"api_key"})


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
    public = {k: v for k, v in config.items() if k not in SECRET_KEYS}
    blob = json.dumps({"kind": kind, "config": public}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]
