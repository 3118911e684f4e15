"""The admin "Evaluations" page: past runs, each report, and a button that starts a new run.

Admin-only on the server (Chainlit's login cookie, role read from our users table); anyone else
gets a friendly 403 page. A run started here works in a background thread with its own runtime.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from html import escape
from pathlib import Path
from typing import Annotated

import chainlit.auth as chainlit_auth
from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from chatbot.db import eval_store, store
from chatbot.errors import AfinaError
from chatbot.evaluation import jobs
from chatbot.evaluation.questions import BUNDLED_QUESTIONS
from chatbot.evaluation.report import render_html
from chatbot.runtime import Runtime
from chatbot.settings import Settings
from chatbot.ui import state
from chatbot.ui.mount import PATH

log = logging.getLogger(__name__)
router = APIRouter(prefix="/admin/evaluations", tags=["admin"])
DEFAULT_LIMIT = 40
STYLE = """
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2330;
background:#f6f7fb}header{background:linear-gradient(120deg,#1f3b73,#3b6fd8);color:#fff;
padding:22px 20px}header h1{margin:0;font-size:24px}header a{color:#fff}main{max-width:1000px;
margin:0 auto;padding:16px}section{background:#fff;border:1px solid #e4e7ec;border-radius:12px;
padding:16px 20px;margin:16px 0}table{border-collapse:collapse;width:100%}th,td{padding:8px;
border-bottom:1px solid #e4e7ec;text-align:left}.scroll{overflow-x:auto}button{background:#3b6fd8;
color:#fff;border:0;border-radius:8px;padding:9px 16px;font:inherit;cursor:pointer}
label{margin-right:14px;white-space:nowrap}input[type=number]{width:90px;padding:4px}
.status-running{color:#b54708}.status-succeeded{color:#067647}.status-failed{color:#b42318}
.muted{color:#667085;font-size:14px}
"""


def _page(title: str, body: str, *, status: int = 200, refresh: bool = False) -> HTMLResponse:
    meta = "<meta http-equiv=refresh content=3>" if refresh else ""
    html = (
        f"<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport "
        f"content='width=device-width, initial-scale=1'>{meta}<title>{escape(title)}</title>"
        f"<style>{STYLE}</style></head><body><header><h1>{escape(title)}</h1><a href='{PATH}'>"
        f"back to the chat</a></header><main>{body}</main></body></html>"
    )
    return HTMLResponse(html, status_code=status)


def _refusal(status: int) -> HTMLResponse:
    if status == 401:
        text = f"Please <a href='{PATH}/login'>log in</a> as an administrator first."
    else:
        text = (
            "Evaluations are for administrators. Ask an admin if you need a comparison of the "
            f"backends, or <a href='{PATH}'>go back to the chat</a>."
        )
    return _page("Evaluations", f"<section><p>{text}</p></section>", status=status)


async def _admin(request: Request) -> str | HTMLResponse:
    """The admin's username, or the refusal page (401 without a login, 403 for non-admins)."""
    token = await chainlit_auth.reuseable_oauth(request)
    if not token:
        return _refusal(401)
    try:
        # looked up at call time: the host app installs its hardened check there (ui/guard.py)
        user = await chainlit_auth.authenticate_user(token)
    except HTTPException:
        return _refusal(401)
    with state.runtime().sessions() as session:
        record = store.get_user(session=session, username=user.identifier)
        if record is None or record.disabled or record.role != "admin":
            return _refusal(403)
        return record.username


@router.get("", response_class=HTMLResponse)
async def evaluations(request: Request) -> Response:
    """Past runs with their progress and reports, and the form that starts one."""
    admin = await _admin(request)
    if isinstance(admin, HTMLResponse):
        return admin
    runs, names, running = await asyncio.to_thread(_listing)
    files = ", ".join(p.name for p in _question_files(state.runtime().settings))
    rows = "".join(
        f"<tr><td>{r['id']}</td><td>{r['created']}</td><td class=status-{r['status']}>"
        f"{r['status']}</td><td>{escape(', '.join(r['backends']))}</td><td>{r['progress']}</td>"
        f"<td><a href='/admin/evaluations/{r['id']}'>report</a></td></tr>"
        for r in runs
    )
    boxes = "".join(
        f"<label><input type=checkbox name=backends value='{escape(n)}' checked> {escape(n)}"
        "</label>"
        for n in names
    )
    body = (
        "<section><h2>Run an evaluation</h2><form method=post action='/admin/evaluations'>"
        f"<p>{boxes}</p><p><label>Questions <input type=number name=limit min=2 "
        f"value={DEFAULT_LIMIT}></label><span class=muted>a seeded subset of {escape(files)} "
        "(AFINA_EVAL_QUESTIONS)</span></p><button type=submit>"
        "Run evaluation</button></form>"
        "</section><section><h2>Past runs</h2><div class=scroll><table><thead><tr><th>Run</th>"
        "<th>Started</th><th>Status</th><th>Backends</th><th>Answers</th><th></th></tr></thead>"
        f"<tbody>{rows or '<tr><td colspan=6>No runs yet.</td></tr>'}</tbody></table></div>"
        "</section>"
    )
    return _page("Evaluations", body, refresh=running)


def _question_files(settings: Settings) -> list[Path]:
    """The question set the button evaluates."""
    return settings.eval.question_files() or list(BUNDLED_QUESTIONS)


def _listing() -> tuple[list[dict], list[str], bool]:
    with state.runtime().sessions() as session:
        runs = []
        for run in eval_store.list_runs(session=session, limit=50):
            done = eval_store.count_results(session=session, run_id=run.id)
            runs.append(
                {
                    "id": run.id,
                    "created": run.created_at.strftime("%Y-%m-%d %H:%M"),
                    "status": run.status,
                    "backends": list(run.backends),
                    "progress": f"{done} / {(run.params or {}).get('total', '?')}",
                }
            )
        names = [b.name for b in store.list_backends(session=session)]
    return runs, names, any(r["status"] == "running" for r in runs)


@router.post("")
async def start_evaluation(
    request: Request,
    backends: Annotated[list[str] | None, Form()] = None,
    limit: Annotated[int, Form(ge=2)] = DEFAULT_LIMIT,
) -> Response:
    """Plan the run now (bad input answers 400), answer it in a background thread."""
    admin = await _admin(request)
    if isinstance(admin, HTMLResponse):
        return admin
    runtime = state.runtime()
    try:
        plan = await asyncio.to_thread(
            jobs.plan,
            runtime,
            backends=backends or [],
            questions=_question_files(runtime.settings),
            limit=limit,
        )
        user_id = await asyncio.to_thread(_user_id, runtime, admin)
        run_id = await asyncio.to_thread(jobs.start, runtime, plan, user_id)
    except AfinaError as exc:
        body = f"<section><p>{escape(str(exc))}</p><a href='/admin/evaluations'>back</a></section>"
        return _page("Evaluations", body, status=400)
    thread = threading.Thread(
        target=_run_in_background, args=(runtime.settings, run_id, plan), daemon=True
    )
    thread.start()
    return RedirectResponse("/admin/evaluations", status_code=303)


def _user_id(runtime: Runtime, username: str) -> int | None:
    with runtime.sessions() as session:
        user = store.get_user(session=session, username=username)
        return user.id if user else None


def _run_in_background(settings: Settings, run_id: int, plan: jobs.Plan) -> None:
    """Answer the run with its own runtime (engine and backends never cross event loops)."""
    runtime = Runtime.open(settings, upgrade=False)

    async def main() -> jobs.Outcome:
        try:
            return await jobs.execute(runtime, run_id, plan)
        finally:
            await runtime.pool.aclose()

    try:
        outcome = asyncio.run(main())
        jobs.finish(runtime, run_id, outcome.status, outcome.reason)
    except Exception as exc:
        log.exception("evaluation run %s failed", run_id)
        jobs.finish(runtime, run_id, "failed", f"{type(exc).__name__}: {exc}")
    finally:
        runtime.engine.dispose()


@router.get("/{run_id}", response_class=HTMLResponse)
async def evaluation_report(request: Request, run_id: int) -> Response:
    """The run's report (while it runs: its progress)."""
    admin = await _admin(request)
    if isinstance(admin, HTMLResponse):
        return admin
    try:
        html, running = await asyncio.to_thread(_report, run_id)
    except AfinaError as exc:
        return _page("Evaluations", f"<section><p>{escape(str(exc))}</p></section>", status=404)
    if running:
        return _page(f"Evaluation #{run_id}", html, refresh=True)
    return HTMLResponse(html)


def _report(run_id: int) -> tuple[str, bool]:
    with state.runtime().sessions() as session:
        run = eval_store.get_run(session=session, run_id=run_id)
        if run.status == "running" or run.summary is None:
            done = eval_store.count_results(session=session, run_id=run_id)
            total = (run.params or {}).get("total", "?")
            text = f"<section><p>Running: {done} of {total} answers so far.</p></section>"
            return text, run.status == "running"
        data, rows = jobs.load_report(session, run_id)
    return render_html(data, rows), False
