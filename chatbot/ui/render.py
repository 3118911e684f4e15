"""How an answer looks in the browser: text, hand-over mark, sources and backend footer."""

from __future__ import annotations

import uuid
from typing import Any

from chatbot.ui.texts import t


def backend_label(name: str, kind: str, config: dict[str, Any] | None) -> str:
    """A backend as the admin's switch lists it: name, kind and model (when it has one)."""
    model = (config or {}).get("model")
    return f"{name} ({kind}, {model})" if model else f"{name} ({kind})"


def source_title(source: dict[str, Any], index: int) -> str:
    """The name a source gets in the chat (unique within the answer)."""
    title = str(source.get("title") or source.get("id") or "?").replace("\n", " ").strip()
    return f"{index + 1}. {title[:80]}"


def retrieval_summary(sources: list[dict[str, Any]], locale: str) -> str:
    """The knowledge-base search step's output: one line per source with its score."""
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
    notice: str | None = None,
) -> str:
    """The full answer shown in the chat (what is stored stays the plain answer); a partial
    answer keeps the text the user saw, followed by why it stopped."""
    if partial:
        note = error or t(locale, "partial")
        return f"{text}\n\n⚠️ *{note}*" if text else f"⚠️ {note}"
    if error:
        return f"⚠️ {error}"
    body = f"> 🧑‍💼 **{t(locale, 'handoff')}**\n>\n> {text}" if handoff else text
    if notice:  # Afina's own words (e.g. the fallback notice), set apart from the answer
        body = "".join(f"⚠️ *{line.strip()}*  \n" for line in notice.splitlines() if line.strip())
        body += "\n" + (f"> 🧑‍💼 **{t(locale, 'handoff')}**\n>\n> {text}" if handoff else text)
    footer = []
    if sources and not handoff:
        names = ", ".join(
            f"{source_title(s, i)} ({t(locale, 'score')} {float(s.get('score') or 0):.2f})"
            for i, s in enumerate(sources)
        )
        footer.append(f"{t(locale, 'sources')}: {names}")
    if backend:
        footer.append(f"{t(locale, 'answered_by')} `{backend}`")
    return body + ("\n\n---\n" + "  \n".join(f"*{line}*" for line in footer) if footer else "")


def derived_id(message_id: str, what: str) -> str:
    """A stable id for a step or element shown for a stored message."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"afina:{message_id}:{what}"))


CORRECTION_ELEMENT = "Correction"  # public/elements/Correction.jsx


def correction_props(
    *, message_id: str, answer: str, correction: str | None, locale: str
) -> dict[str, Any]:
    """The correction editor's props: the answer to pre-fill, the saved correction, labels."""
    keys = ("open", "edit", "save", "cancel", "heading", "prompt", "saved", "failed")
    texts = ("label", "edit", "save", "cancel", "heading", "prompt", "saved", "failed")
    return {
        "messageId": message_id,
        "answer": answer,
        "correction": correction,
        "labels": {k: t(locale, f"correct_{v}") for k, v in zip(keys, texts, strict=True)},
    }


def correction_element(
    message_id: str, thread_id: str, answer: str, correction: str | None, locale: str
) -> dict[str, Any]:
    """The correction editor under an answer as the browser receives it, live or on reload
    (the same element id both times).

    Sent as a plain element dict: ``cl.CustomElement.send`` would also write its props to a
    JSON file in the session's files folder, one file per answer, that nothing reads back."""
    props = correction_props(
        message_id=message_id, answer=answer, correction=correction, locale=locale
    )
    return {
        "id": derived_id(message_id, "correction"),
        "threadId": thread_id,
        "type": "custom",
        "name": CORRECTION_ELEMENT,
        "display": "inline",
        "forId": message_id,
        "mime": "application/json",
        "props": props,
    }


def fallback_notice(details: dict[str, Any] | None) -> str | None:
    """The notice shown above an answer from the fallback backend (kept out of its text)."""
    fallback = (details or {}).get("fallback")
    return fallback.get("notice") if isinstance(fallback, dict) else None
