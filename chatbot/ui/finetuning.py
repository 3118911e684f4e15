"""The admin "Fine-tuning" page: exports with a start form, jobs, one job's progress and cancel.

Admin-only on the server (``adminpage.require_admin``). A job started here trains in a background
thread with its own runtime, one at a time; the job row is the progress the pages show.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import Counter
from html import escape
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from chatbot.db import finetune_store
from chatbot.db.training_queries import export_splits, list_exports
from chatbot.errors import AfinaError
from chatbot.runtime import Runtime
from chatbot.settings import Settings
from chatbot.training.finetune import local, runner
from chatbot.ui import state
from chatbot.ui.adminpage import Admin, page, problem, require_admin

log = logging.getLogger(__name__)
router = APIRouter(prefix="/admin/finetune", tags=["admin"])
TITLE = "Fine-tuning"
BASE = "/admin/finetune"
ACTIVE = ("queued", "running")
REFRESH_S = "3"
_busy = threading.Lock()  # one local job at a time: training takes the server's CPUs
STYLE = (
    "<style>.export{border-top:1px solid #e4e7ec;padding:10px 0}.export h3{margin:0 0 4px;"
    "font-size:16px}.loss{width:100%;max-width:680px;height:auto;background:#fbfcfe;"
    "border:1px solid #e4e7ec;border-radius:8px}.status-running,.status-queued{color:#b54708}"
    ".status-succeeded{color:#067647}.status-failed,.status-cancelled{color:#b42318}"
    "input[type=number]{width:80px}code{word-break:break-all;font-size:13px}"
    ".legend span{margin-right:14px}.facts th{width:11em}"
    "@media(max-width:600px){.wide{display:none}.facts th{width:auto}}</style>"
)


def _refreshing(response: HTMLResponse, active: bool) -> HTMLResponse:
    """Reload the page every few seconds while a job is queued or running."""
    if active:
        response.headers["Refresh"] = REFRESH_S
    return response


def _last(metrics: list[dict[str, Any]], key: str) -> str:
    values = [m[key] for m in metrics if m.get(key) is not None]
    return f"{values[-1]:.3f}" if values else "-"


def _status(job: Any) -> str:
    asked = " (cancel requested)" if job.cancel_requested and job.status in ACTIVE else ""
    return f"<span class=status-{job.status}>{job.status}</span>{asked}"


@router.get("", response_class=HTMLResponse)
async def finetune_page(request: Request) -> Response:
    """Exports with a "Fine-tune locally" form each, and the jobs."""
    admin = await require_admin(request, TITLE)
    if not isinstance(admin, Admin):
        return admin
    body, active = await asyncio.to_thread(_listing, state.runtime().settings)
    return _refreshing(page(TITLE, STYLE + body), active)


def _start_form(export_id: int, settings: Settings) -> str:
    f = settings.finetune
    methods = "".join(
        f"<option{' selected' if m == f.method else ''}>{m}</option>" for m in local.METHODS
    )
    return (
        f"<form id=start-{export_id} method=post action='{BASE}'>"
        f"<input type=hidden name=export_id value={export_id}>"
        f"<label>Method <select name=method>{methods}</select></label>"
        f"<label>Epochs <input type=number name=epochs min=1 max=100 value={f.epochs}></label>"
        "<label>Max steps <input type=number name=max_steps min=1 placeholder=all></label>"
        "<label>Max minutes <input type=number name=max_minutes min=0.1 step=any "
        f"value={f.max_minutes:g}></label> <button type=submit>Fine-tune locally</button></form>"
    )


def _export_block(export: Any, settings: Settings) -> str:
    counts = export.counts or {}
    examples = ", ".join(f"{n} {s}" for s, n in sorted((counts.get("examples") or {}).items()))
    chats = sum((counts.get("conversations") or {}).values())
    files = " ".join(
        f"<code>{escape(name)} {escape(str(sha))[:12]}…</code>"
        for name, sha in sorted(export.files.items())
    )
    form = (
        _start_form(export.id, settings)
        if export.format == "chat"
        else f"<p class=muted>{escape(export.format)} data: the local trainer needs chat data.</p>"
    )
    return (
        f"<div class=export><h3>Export #{export.id}</h3><p class=muted>"
        f"{export.created_at:%Y-%m-%d %H:%M} · {escape(export.format)} · {chats} chats · "
        f"examples: {escape(examples or 'none')}</p><p>{files or 'no files'}</p>{form}</div>"
    )


def _job_row(job: Any) -> str:
    metrics = list(job.metrics)
    return (
        f"<tr><td><a href='{BASE}/{job.id}'>#{job.id}</a></td><td>{_status(job)}</td>"
        f"<td class=wide>{escape(job.provider)}</td><td class=wide>{escape(job.base_model)}</td>"
        f"<td class=wide>{job.export_id or '-'}</td><td>{escape(job.backend_name or '-')}</td>"
        f"<td class=wide>{job.created_at:%Y-%m-%d %H:%M}</td>"
        f"<td>{_last(metrics, 'train_loss')} / {_last(metrics, 'val_loss')}</td></tr>"
    )


def _listing(settings: Settings) -> tuple[str, bool]:
    with state.runtime().sessions() as session:
        exports = "".join(_export_block(e, settings) for e in list_exports(session=session))
        jobs = finetune_store.list_jobs(session=session, limit=50)
        rows = "".join(_job_row(j) for j in jobs)
        active = any(j.status in ACTIVE for j in jobs)
    body = (
        "<section><h2>Jobs</h2><div class=scroll><table><thead><tr><th>Job</th><th>Status</th>"
        "<th class=wide>Provider</th><th class=wide>Base model</th><th class=wide>Export</th>"
        "<th>Backend</th><th class=wide>Created</th>"
        "<th>Train / val loss</th></tr></thead>"
        f"<tbody>{rows or '<tr><td colspan=8>No jobs yet.</td></tr>'}</tbody></table></div>"
        "</section><section><h2>Exports</h2><p class=muted>Fine-tune the bundled SmolLM2 on the "
        "CPU from an export (<code>afina export --out FOLDER</code> makes one); the result is "
        "registered as a backend. Other settings come from AFINA_FINETUNE_*.</p>"
        f"{exports or '<p>No exports yet.</p>'}</section>"
    )
    return body, active


def _config(settings: Settings, method: str, epochs: int, max_steps: int | None, minutes: float):
    """The job's hyperparameters: the form's, the rest from ``AFINA_FINETUNE_*``."""
    local.check_method(method)
    f = settings.finetune
    return local.LocalConfig(
        method=method,
        epochs=epochs,
        max_steps=max_steps,
        max_minutes=minutes,
        learning_rate=f.lora_learning_rate if method == "lora" else f.full_learning_rate,
        lora_rank=f.lora_rank,
        lora_alpha=f.lora_alpha,
        batch_size=f.batch_size,
        max_seq_tokens=f.max_seq_tokens,
    )


@router.post("")
async def start_job(
    request: Request,
    export_id: Annotated[int, Form()],
    method: Annotated[str, Form()] = "lora",
    epochs: Annotated[int, Form(ge=1, le=100)] = 1,
    max_steps: Annotated[int | None, Form(ge=1)] = None,
    max_minutes: Annotated[float, Form(gt=0, le=10_000)] = 30.0,
) -> Response:
    """Check the export and record the job (errors answer 400), train in a background thread."""
    admin = await require_admin(request, TITLE)
    if not isinstance(admin, Admin):
        return admin
    if not _busy.acquire(blocking=False):
        return problem(
            TITLE, "A fine-tuning job is already training; wait for it or cancel it.", 409
        )
    runtime = state.runtime()
    try:
        config = _config(runtime.settings, method, epochs, max_steps, max_minutes)
        job_id, files = await asyncio.to_thread(
            runner.create_job, runtime.sessions, runtime.settings, export_id=export_id,
            provider="local", base_model=runner.check_local_model("smollm2"),
            method=config.method, hyperparameters=config.as_dict(), created_by=admin.username,
        )  # fmt: skip
    except AfinaError as exc:
        _busy.release()
        return problem(TITLE, str(exc))
    threading.Thread(
        target=_train,
        args=(runtime.settings, job_id, files),
        daemon=True,
        name=f"finetune-{job_id}",
    ).start()
    return RedirectResponse(f"{BASE}/{job_id}", status_code=303)


def _train(settings: Settings, job_id: int, files: runner.ExportFiles) -> None:
    """Run the job with its own runtime; the runner records success, failure or cancel."""
    runtime = Runtime.open(settings, upgrade=False)
    try:
        runner.run_local_job(runtime.sessions, settings, job_id, files)
    except local.Cancelled:
        log.info("fine-tuning job %s cancelled", job_id)
    except Exception:
        log.exception("fine-tuning job %s failed", job_id)
    finally:
        runtime.engine.dispose()
        _busy.release()


@router.get("/{job_id}", response_class=HTMLResponse)
async def job_page(request: Request, job_id: int) -> Response:
    """One job: status, hyperparameters, lineage, loss curve, events, cancel."""
    admin = await require_admin(request, TITLE)
    if not isinstance(admin, Admin):
        return admin
    try:
        body, active = await asyncio.to_thread(_job_details, job_id)
    except AfinaError as exc:
        return problem(TITLE, str(exc), 404)
    return _refreshing(page(f"Fine-tuning job #{job_id}", STYLE + body), active)


def _table(rows: list[tuple[str, str]]) -> str:
    cells = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    return f"<div class=scroll><table class=facts>{cells}</table></div>"


def _job_details(job_id: int) -> tuple[str, bool]:
    with state.runtime().sessions() as session:
        job = finetune_store.get_job(session=session, job_id=job_id)
        splits = Counter(
            export_splits(session=session, export_id=job.export_id).values()
            if job.export_id
            else ()
        )
        step = max((m.get("step", 0) for m in job.metrics), default=0)
        progress = f"step {step}, {job.trained_tokens or 0} tokens, {job.train_seconds or 0:.0f} s"
        facts = [
            ("Status", f"<span id=status>{_status(job)}</span>"),
            ("Provider", escape(f"{job.provider}, {job.method}")),
            ("Base model", escape(job.base_model)),
            ("Created", f"{job.created_at:%Y-%m-%d %H:%M:%S}"),
            ("Started", f"{job.started_at or '-'}"[:19]),
            ("Finished", f"{job.finished_at or '-'}"[:19]),
            ("Backend", f"<span id=backend>{escape(job.backend_name or '-')}</span>"),
            ("Artefact", f"<code>{escape(job.artefact_path or job.remote_model_id or '-')}</code>"),
            ("Progress", progress),
        ]
        if job.error:
            facts.append(("Error", f"<span class=error>{escape(job.error)}</span>"))
        hyper = [(escape(k), escape(str(v))) for k, v in sorted(job.hyperparameters.items())]
        lineage = [("Export", f"#{job.export_id or '-'}")]
        lineage += [(escape(n), f"<code>{escape(s)}</code>") for n, s in job.export_files.items()]
        lineage += [("Chats", escape(", ".join(f"{n} in {s}" for s, n in sorted(splits.items()))))]
        events = "".join(
            f"<tr><td>{escape(e['at'][:19].replace('T', ' '))}</td><td>{escape(e['level'])}</td>"
            f"<td>{escape(e['message'])}</td></tr>"
            for e in job.events
        )
        active, metrics = job.status in ACTIVE, list(job.metrics)
    cancel = (
        f"<form method=post action='{BASE}/{job_id}/cancel'><button id=cancel type=submit "
        "class=danger>Cancel job</button></form>"
        if active
        else ""
    )
    body = (
        f"<p><a href='{BASE}'>All jobs and exports</a></p><section><h2>Job</h2>{_table(facts)}"
        f"{cancel}</section><section><h2>Loss</h2>{loss_svg(metrics)}</section>"
        f"<section><h2>Hyperparameters</h2>{_table(hyper)}</section>"
        f"<section><h2>Lineage</h2>{_table(lineage)}</section><section><h2>Events</h2>"
        f"<div class=scroll><table><tbody>{events}</tbody></table></div></section>"
    )
    return body, active


def loss_svg(metrics: list[dict[str, Any]], width: int = 480, height: int = 220) -> str:
    """The loss curve as an inline SVG: train loss per logged step, validation per epoch."""
    train = [(m["step"], m["train_loss"]) for m in metrics if "val_loss" not in m]
    val = [(m["step"], m["val_loss"]) for m in metrics if m.get("val_loss") is not None]
    if not train and not val:
        return "<p class=muted>No loss recorded yet.</p>"
    steps = [s for s, _ in train + val]
    losses = [v for _, v in train + val]
    x0, x1, y0, y1, pad = min(steps), max(steps), min(losses), max(losses), 44

    def xy(step: float, loss: float) -> str:
        x = pad + (step - x0) / ((x1 - x0) or 1) * (width - 2 * pad)
        y = height - pad - (loss - y0) / ((y1 - y0) or 1) * (height - 2 * pad)
        return f"{x:.1f},{y:.1f}"

    def series(points: list[tuple[float, float]], colour: str, name: str) -> str:
        coords = [xy(s, v) for s, v in points]
        dots = "".join(
            f"<circle cx={c.split(',')[0]} cy={c.split(',')[1]} r=3 fill='{colour}'/>"
            for c in coords
        )
        line = f"<polyline class={name} fill=none stroke='{colour}' stroke-width=2 points='"
        return f"{line}{' '.join(coords)}'/>{dots}" if points else ""

    axis = (
        f"<line x1={pad} y1={height - pad} x2={width - pad} y2={height - pad} stroke='#98a2b3'/>"
        f"<line x1={pad} y1={pad} x2={pad} y2={height - pad} stroke='#98a2b3'/>"
        f"<text x={pad - 6} y={pad + 4} text-anchor=end>{y1:.2f}</text>"
        f"<text x={pad - 6} y={height - pad + 4} text-anchor=end>{y0:.2f}</text>"
        f"<text x={pad} y={height - pad + 18}>step {x0}</text>"
        f"<text x={width - pad} y={height - pad + 18} text-anchor=end>step {x1}</text>"
    )
    return (
        f"<svg class=loss viewBox='0 0 {width} {height}' role=img font-size=15 "
        f"aria-label='Loss by step'>{axis}{series(train, '#3b6fd8', 'train')}"
        f"{series(val, '#d9480f', 'val')}</svg><p class='legend muted'><span style='color:#3b6fd8'>"
        f"● train loss {_last(metrics, 'train_loss')}</span><span style='color:#d9480f'>"
        f"● validation loss {_last(metrics, 'val_loss')}</span></p>"
    )


@router.post("/{job_id}/cancel")
async def cancel_job(request: Request, job_id: int) -> Response:
    """Ask the job to stop after its current step (a queued one is cancelled at once)."""
    admin = await require_admin(request, TITLE)
    if not isinstance(admin, Admin):
        return admin
    try:
        await asyncio.to_thread(_cancel, job_id)
    except AfinaError as exc:
        return problem(TITLE, str(exc))
    return RedirectResponse(f"{BASE}/{job_id}", status_code=303)


def _cancel(job_id: int) -> None:
    with state.runtime().sessions.begin() as session:
        job = finetune_store.request_cancel(session=session, job_id=job_id)
        if job.status == "queued":
            finetune_store.set_status(session=session, job=job, status="cancelled")
            finetune_store.add_event(session=session, job=job, message="cancelled from the web app")
