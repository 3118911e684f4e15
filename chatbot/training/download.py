"""Exports for the web app: build one into a temporary folder and hand back a zip to download."""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatbot.settings import PiiSettings, TrainingSettings
from chatbot.training.export import ExportOptions, ExportResult, run_export

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker


def export_zip(
    *,
    sessions: sessionmaker[Session],
    training: TrainingSettings,
    created_by: str,
    encode_factory: Callable[[], Callable[[list[str]], Any]] | None = None,
    pii: PiiSettings | None = None,
    **overrides: Any,
) -> tuple[Path, ExportResult]:
    """Run an export (blocking: call it off the event loop) and zip its files and report.

    Returns the zip's path (in a fresh temporary folder the caller deletes with
    ``shutil.rmtree(path.parent)`` once the response is sent) and the export's result.
    With ``pii`` settings, stored messages never checked for personal data are detected
    first. ``overrides`` are ``ExportOptions`` fields
    (e.g. ``filters=ExportFilters(rating="positive")``).
    """
    workdir = Path(tempfile.mkdtemp(prefix="afina-download-"))
    try:
        options = ExportOptions.from_settings(training, **overrides)
        result = run_export(
            sessions=sessions,
            out=workdir / "export",
            options=options,
            encode_factory=encode_factory,
            created_by=created_by,
            pii=pii,
        )
        archive = workdir / f"afina-export-{result.export_id}.zip"
        with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for path in sorted((workdir / "export").iterdir()):
                zf.write(path, arcname=path.name)
        shutil.rmtree(workdir / "export")
        return archive, result
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
