"""Which local fine-tunes `afina llm serve` loads, checked against their jobs' sha256.

LoRA adapters all go on one second server, switched on per request (``lora_id``); a full
fine-tune (a whole model GGUF) gets a server of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from chatbot.db import finetune_store as jobs
from chatbot.db import store
from chatbot.training.lineage import sha256_file

if TYPE_CHECKING:  # typing only: SQLAlchemy stays inside chatbot/db at run time
    from sqlalchemy.orm import Session

FILE_KEYS = ("adapter", "model_file")


@dataclass(frozen=True)
class Artefact:
    """A registered fine-tuned backend's GGUF: a LoRA adapter or a whole model."""

    backend: str
    path: Path
    kind: str  # "adapter" | "model_file"


def local_artefacts(*, session: Session) -> tuple[list[Artefact], list[str]]:
    """Artefacts of registered ``finetuned`` backends, in name order, and warnings for bad ones.

    One is served only when its file exists and matches the sha256 its job recorded.
    """
    good, problems = [], []
    for record in store.list_backends(session=session):
        config = (record.config or {}) if record.kind == "finetuned" else {}
        kind = next((k for k in FILE_KEYS if config.get(k)), None)
        if kind is None:
            continue
        path = Path(config[kind])
        job = jobs.job_for_backend(session=session, backend_name=record.name)
        if not path.is_file():
            problems.append(f"{record.name}: {path} is missing; fine-tune again")
        elif job is not None and job.artefact_sha256 and sha256_file(path) != job.artefact_sha256:
            problems.append(
                f"{record.name}: {path} does not match the sha256 job {job.id} recorded "
                "(corrupt or replaced); fine-tune again with `afina finetune start`"
            )
        else:
            good.append(Artefact(record.name, path, kind))
    return good, problems


def assign(*, session: Session, served: dict[str, tuple[str, int | None]]) -> None:
    """Point served backends at ``{name: (base_url, lora id or None)}``; others lose theirs."""
    for record in store.list_backends(session=session):
        config = dict(record.config or {})
        if record.kind != "finetuned" or not any(config.get(k) for k in FILE_KEYS):
            continue
        config.pop("lora_id", None)
        config.pop("served", None)
        if record.name in served:
            base_url, lora_id = served[record.name]
            config["base_url"] = base_url
            if config.get("adapter"):
                config["lora_id"] = lora_id
            else:
                config["served"] = True
        if config != record.config:
            store.put_backend(session=session, name=record.name, kind=record.kind, config=config)
