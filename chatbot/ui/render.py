"""How an answer looks in the browser: text, hand-over mark, sources and backend footer."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from chatbot.ui.texts import t


def source_title(source: dict[str, Any], index: int) -> str:
    """The name a source gets in the chat (unique within the answer)."""
    title = str(source.get("title") or source.get("id") or "?").replace("\n", " ").strip()
    return f"{index + 1}. {title[:80]}"


def source_text(source: dict[str, Any], locale: str) -> str:
    """A source's side panel: title, score and snippet."""
    score = float(source.get("score") or 0.0)
    return (
        f"**{source.get('title') or source.get('id')}**  \n"
        f"{t(locale, 'score')}: {score:.2f} · `{source.get('id')}`\n\n"
        f"{source.get('snippet') or ''}"
    )


def source_url(text: str) -> str:
    """A source's side panel as a data: URL: Chainlit keeps no file per answer for it (files
    under its .files folder would pile up, and stay after a crash)."""
    return "data:text/plain;charset=utf-8," + quote(text)


def retrieval_summary(sources: list[dict[str, Any]], locale: str) -> str:
    """The retrieval step's output: one line per source with its score."""
    if not sources:
        return t(locale, "no_sources")
    return "\n".join(
        f"- {float(s.get('score') or 0):.2f} — {source_title(s, i)}" for i, s in enumerate(sources)
    )


def answer_markdown(
    *,
    text: str,
    locale: str,
    backend: str | None,
    sources: list[dict[str, Any]],
    handoff: bool,
    error: str | None = None,
    partial: bool = False,
) -> str:
    """The full answer shown in the chat (what is stored stays the plain answer); a partial
    answer keeps the text the user saw, followed by why it stopped."""
    if partial:
        note = error or t(locale, "partial")
        return f"{text}\n\n⚠️ *{note}*" if text else f"⚠️ {note}"
    if error:
        return f"⚠️ {error}"
    body = f"> 🧑‍💼 **{t(locale, 'handoff')}**\n>\n> {text}" if handoff else text
    footer = []
    if sources and not handoff:
        names = ", ".join(source_title(s, i) for i, s in enumerate(sources))
        footer.append(f"{t(locale, 'sources')}: {names}")
    if backend:
        footer.append(f"{t(locale, 'answered_by')} `{backend}`")
    return body + ("\n\n---\n" + "  \n".join(f"*{line}*" for line in footer) if footer else "")
