"""What a remote fine-tuning job reads and records: its export files, loss points, price, name."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatbot.db import training_queries
from chatbot.errors import InputError
from chatbot.settings import TrainingSettings
from chatbot.training.finetune.platforms import base_of
from chatbot.training.lineage import sha256_file

if TYPE_CHECKING:  # typing only: SQLAlchemy stays inside chatbot/db at run time
    from sqlalchemy.orm import Session

    from chatbot.db.models import FinetuneJob


def export_files(session: Session, job: FinetuneJob) -> dict[str, Path]:
    """The job's train (and validation) files, checked against the sha256 recorded for them.

    ``job.export_files`` maps each file (a path, or a name the export's report gives the path
    of) to its sha256; a missing or changed file is an ``InputError``.
    """
    recorded = _recorded_paths(session, job.export_id)
    found: dict[str, Path] = {}
    for key, sha in (job.export_files or {}).items():
        path = Path(key)
        if not path.is_file():
            path = recorded.get(path.name, path)
        if not path.is_file():
            raise InputError(
                f"export file {key} is not where export {job.export_id} wrote it: export "
                "again and start a new job"
            )
        if sha and sha256_file(path) != sha:
            raise InputError(
                f"{path} changed since the job was created (sha256 differs): export again "
                "and start a new job"
            )
        split = path.stem.split(".")[0]
        if split in ("train", "validation"):
            found[split] = path
    if "train" not in found:
        raise InputError(
            f"job {job.id} names no train.jsonl among its export files: start it from an "
            "export made with 'afina export --out FOLDER'"
        )
    return found


def _recorded_paths(session: Session, export_id: int | None) -> dict[str, Path]:
    """File name -> path of each file an export wrote (from its report)."""
    export = None
    if export_id is not None:
        export = training_queries.get_export(session=session, export_id=export_id)
    files = ((export.report or {}).get("files") or []) if export is not None else []
    return {Path(f["path"]).name: Path(f["path"]) for f in files if f.get("path")}


def loss_point(data: Any) -> dict[str, Any] | None:
    """Step and losses from an event's (or checkpoint's) ``data``; None when it has no loss."""
    if not isinstance(data, dict) or not any(k in data for k in ("train_loss", "valid_loss")):
        return None
    names = {
        "step": "step",
        "total_steps": "total_steps",
        "train_loss": "train_loss",
        "valid_loss": "val_loss",
        "full_valid_loss": "full_val_loss",
        "train_mean_token_accuracy": "train_accuracy",
        "valid_mean_token_accuracy": "val_accuracy",
    }
    point = {ours: data[theirs] for theirs, ours in names.items() if data.get(theirs) is not None}
    if "step" in point:
        point["step"] = int(point["step"])
    return point


def training_price(training: TrainingSettings, model: str) -> float:
    """USD per 1M training tokens of ``model``: the longest listed prefix, else the default."""
    base = base_of(model)
    matches = [p for p in training.model_prices if base == p or base.startswith(p + "-")]
    if not matches:
        return training.price_per_million_tokens
    return training.model_prices[max(matches, key=len)]


def backend_name_for(model: str) -> str:
    """A backend name for a fine-tuned model id: safe characters, at most 64 of them."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", model).strip("-.") or "finetuned"
    if len(name) > 64:
        name = f"{name[:55]}-{hashlib.sha256(model.encode()).hexdigest()[:8]}"
    return name
