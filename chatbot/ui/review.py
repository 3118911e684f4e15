"""The admin "Review" page: answers to look at, approve or reject corrections, exclude chats,
see what the next export would hold and download it. Admin-only on the server."""

from __future__ import annotations

import asyncio
from html import escape
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from chatbot import reviews
from chatbot.db import review_queries, store
from chatbot.errors import InputError, NotFoundError
from chatbot.ui import state
from chatbot.ui.admin import export_filters
from chatbot.ui.adminpage import Admin, page, parse_date, problem, require_admin

router = APIRouter(prefix="/admin/review", tags=["admin"])
TITLE = "Review"
FILTERS = ("since", "until", "backend", "locale", "agent", "rating")
RATINGS = ("not-negative", "positive", "any")


def _options(values: list[tuple[str, str]], chosen: str) -> str:
    return "".join(
        f"<option value='{escape(v)}'{' selected' if v == chosen else ''}>{escape(label)}</option>"
        for v, label in values
    )


def _filter_form(query: dict[str, str], backends: list, users: list) -> str:
    backend_opts = [("", "all backends")] + [(b.name, f"{b.name} ({b.kind})") for b in backends]
    agent_opts = [("", "all agents")] + [(u.username, u.username) for u in users]
    locale_opts = [("", "all languages"), ("en", "English"), ("es", "Spanish")]
    return (
        "<section><form method=get action='/admin/review' id=filters>"
        f"<label>From <input type=date name=since value='{escape(query['since'])}'></label>"
        f"<label>Before <input type=date name=until value='{escape(query['until'])}'></label>"
        f"<label>Backend <select name=backend>{_options(backend_opts, query['backend'])}"
        "</select></label>"
        f"<label>Language <select name=locale>{_options(locale_opts, query['locale'])}"
        "</select></label>"
        f"<label>Agent <select name=agent>{_options(agent_opts, query['agent'])}</select></label>"
        f"<label>Export rating <select name=rating>"
        f"{_options([(r, r) for r in RATINGS], query['rating'])}</select></label>"
        "<button type=submit>Apply filters</button></form></section>"
    )


def _export_section(query: dict[str, str], counts: reviews.ExportCounts) -> str:
    hidden = "".join(
        f"<input type=hidden name={name} value='{escape(value)}'>"
        for name, value in (
            ("since", query["since"]),
            ("until", query["until"]),
            ("backend", query["backend"]),
            ("locale", query["locale"]),
            ("user", query["agent"]),
            ("rating", query["rating"]),
        )
        if value
    )
    left = ", ".join(f"{n} {escape(r)}" for r, n in sorted(counts.left_out.items())) or "none"
    return (
        "<section id=export><h2>Next export</h2><p id=export-counts>With these filters the next "
        f"export holds <b>{counts.conversations}</b> conversations with <b>{counts.targets}</b> "
        f"training targets ({counts.corrected} of them corrected); {counts.held_back} answers "
        f"stay as context only (weight 0). Conversations left out: {left}.</p>"
        f"<form method=get action='/admin/export'>{hidden}"
        "<button type=submit id=download-export>Download the export (zip)</button></form>"
        "<p class=muted>The same filters as <code>afina export</code>; personal data is "
        "redacted.</p></section>"
    )


def _action(name: str, label: str, fields: dict[str, str], back: str, css: str = "") -> str:
    hidden = "".join(
        f"<input type=hidden name={k} value='{escape(v)}'>"
        for k, v in {**fields, "back": back}.items()
    )
    return (
        f"<form class=inline method=post action='/admin/review/{name}'>{hidden}"
        f"<button type=submit class='{css}'>{escape(label)}</button></form> "
    )


def _status(item: review_queries.ReviewItem) -> str:
    """The stored review of an answer, as the page shows it."""
    if item.review_status is None:
        return "<p class='review-status muted'>Not reviewed yet</p>"
    when = f" on {item.reviewed_at:%Y-%m-%d %H:%M}" if item.reviewed_at else ""
    who = f" by {escape(item.reviewed_by)}" if item.reviewed_by else ""
    return (
        f"<p class='review-status {escape(item.review_status)}'><b>"
        f"{escape(item.review_status.capitalize())}</b>{who}{when}</p>"
    )


def _row(item: review_queries.ReviewItem, back: str) -> str:
    message = {"message_id": item.message_id}
    actions = ""
    if item.review_status != "approved":
        actions += _action("approve", "Approve", message, back)
    if item.review_status != "rejected":
        what = "correction" if item.correction is not None else "answer"
        actions += _action("reject", f"Reject {what}", message, back, "danger")
    chat = {"conversation_id": item.conversation_id}
    actions += (
        _action("include", "Include chat", chat, back, "secondary")
        if item.excluded
        else _action("exclude", "Exclude chat from training", chat, back, "secondary")
    )
    tags = "".join(f"<span class=tag>{escape(r)}</span>" for r in item.reasons)
    if item.excluded:
        tags += "<span class=tag>excluded</span>"
    correction = (
        f"<div class=cell><b>Correction:</b> {escape(item.correction)}</div>"
        if item.correction is not None
        else ""
    )
    return (
        f"<tr data-message='{escape(item.message_id)}'><td>{item.created_at:%Y-%m-%d %H:%M}"
        f"<br>{escape(item.agent)} · {escape(item.locale)}<br>{escape(item.backend or '')}"
        f"<br>{tags}{_status(item)}</td><td class=cell>{escape(item.question)}</td>"
        "<td><div class=cell>"
        f"{escape(item.answer)}</div>{correction}</td><td>{actions}</td></tr>"
    )


def _listing(query: dict[str, str]) -> tuple[list, list, list, reviews.ExportCounts]:
    since, until = parse_date(query["since"], "since"), parse_date(query["until"], "until")
    filters = export_filters(
        rating=query["rating"] or "not-negative",
        since=query["since"],
        until=query["until"],
        backend=query["backend"],
        locale=query["locale"],
        user=query["agent"],
    )
    with state.runtime().sessions() as session:
        items = review_queries.review_items(
            session=session,
            since=since,
            until=until,
            backend=query["backend"] or None,
            locale=query["locale"] or None,
            agent=query["agent"] or None,
        )
        backends = store.list_backends(session=session)
        users = store.list_users(session=session)
        counts = reviews.export_counts(session=session, filters=filters)
    return items, backends, users, counts


@router.get("", response_class=HTMLResponse)
async def review(request: Request) -> Response:
    """Answers to review with their actions, the filters, and the export counts and button."""
    admin = await require_admin(request, TITLE)
    if isinstance(admin, HTMLResponse):
        return admin
    query = {name: request.query_params.get(name, "") for name in FILTERS}
    query["rating"] = query["rating"] or "not-negative"
    try:
        items, backends, users, counts = await asyncio.to_thread(_listing, query)
    except InputError as exc:
        return problem(TITLE, str(exc))
    back = "/admin/review?" + urlencode({k: v for k, v in query.items() if v})
    rows = "".join(_row(item, back) for item in items) or (
        "<tr><td colspan=4 class=muted>Nothing to review with these filters.</td></tr>"
    )
    done = request.query_params.get("done")
    note = f"<p class=ok role=status>{escape(done)}</p>" if done else ""
    body = (
        f"{note}{_filter_form(query, backends, users)}{_export_section(query, counts)}"
        "<section><h2>Answers to review</h2><p class=muted>Downvoted, corrected, handed over "
        "or answered by the fallback backend, and those reviewed; newest first. <b>Approve</b> "
        "makes the answer (or its newest correction) a training target, whatever its ratings; "
        "<b>Reject</b> keeps both out of training. A new correction asks for a new review.</p>"
        "<div class=scroll><table class=stack id=review>"
        "<tr><th>Answer</th><th>Question</th><th>Answer / correction</th><th>Actions</th></tr>"
        f"{rows}</table></div></section>"
    )
    return page(TITLE, body)


ACTIONS = {
    "approve": "Approved for training.",
    "reject": "Rejected for training.",
    "exclude": "Conversation excluded from training.",
    "include": "Conversation included in training again.",
}


@router.post("/{action}", response_model=None)
async def act(
    request: Request,
    action: str,
    message_id: Annotated[str, Form()] = "",
    conversation_id: Annotated[str, Form()] = "",
    back: Annotated[str, Form()] = "/admin/review",
) -> Response:
    """Approve, reject, exclude or include; then back to the same filtered page."""
    admin = await require_admin(request, TITLE)
    if isinstance(admin, HTMLResponse):
        return admin
    if action not in ACTIONS:
        return problem(TITLE, f"unknown action {action!r}", status=404)
    try:
        await asyncio.to_thread(_apply, admin, action, message_id, conversation_id)
    except NotFoundError as exc:
        return problem(TITLE, str(exc), status=404)
    target = back if back.startswith("/admin/review") else "/admin/review"
    glue = "&" if "?" in target else "?"
    return RedirectResponse(f"{target}{glue}{urlencode({'done': ACTIONS[action]})}", 303)


def _apply(admin: Admin, action: str, message_id: str, conversation_id: str) -> None:
    with state.runtime().sessions.begin() as session:
        if action == "approve":
            reviews.approve(session=session, message_id=message_id, admin_id=admin.id)
        elif action == "reject":
            reviews.reject(session=session, message_id=message_id, admin_id=admin.id)
        else:
            reviews.exclude(
                session=session, conversation_id=conversation_id, excluded=action == "exclude"
            )
