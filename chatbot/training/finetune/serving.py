"""Which local LoRA fine-tunes `afina llm serve` loads, checked against their jobs' sha256."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from chatbot.db import finetune_store as jobs
from chatbot.db import store
from chatbot.training.finetune.gguf_files import sha256_file

if TYPE_CHECKING:  # typing only: SQLAlchemy stays inside chatbot/db at run time
    from sqlalchemy.orm import Session


@dataclass(frozen=True)
class Adapter:
    """A registered fine-tuned backend's LoRA adapter file."""

    backend: str
    path: Path


def local_adapters(*, session: Session) -> tuple[list[Adapter], list[str]]:
    """Adapters of registered ``finetuned`` backends, in name order, and warnings for bad ones.

    An adapter is served only when its file exists and matches the sha256 its job recorded.
    """
    good, problems = [], []
    for record in store.list_backends(session=session):
        adapter = (record.config or {}).get("adapter") if record.kind == "finetuned" else None
        if not adapter:
            continue
        path, job = Path(adapter), jobs.job_for_backend(session=session, backend_name=record.name)
        if not path.is_file():
            problems.append(f"{record.name}: adapter {path} is missing; fine-tune again")
        elif job is not None and job.artefact_sha256 and sha256_file(path) != job.artefact_sha256:
            problems.append(
                f"{record.name}: adapter {path} does not match the sha256 job {job.id} recorded "
                "(corrupt or replaced); fine-tune again with `afina finetune start`"
            )
        else:
            good.append(Adapter(record.name, path))
    return good, problems


def assign(*, session: Session, served: list[Adapter], base_url: str | None) -> None:
    """Point each served backend at the server and its adapter id; unserved ones lose theirs."""
    ids = {a.backend: i for i, a in enumerate(served)}
    for record in store.list_backends(session=session):
        config = dict(record.config or {})
        if record.kind != "finetuned" or not config.get("adapter"):
            continue
        config.pop("lora_id", None)
        if record.name in ids and base_url:
            config.update(lora_id=ids[record.name], base_url=base_url)
        if config != record.config:
            store.put_backend(session=session, name=record.name, kind=record.kind, config=config)
