"""Read FAQ files (CSV, JSONL) and articles (Markdown/text) into knowledge-base entries."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable
from pathlib import Path

from backends.retrieval.index import Entry
from chatbot.errors import InputError

FAQ_SUFFIXES = {".csv", ".jsonl"}
ARTICLE_SUFFIXES = {".md", ".markdown", ".txt"}
LOCALES = {"en", "es"}
MAX_SECTION_CHARS = 1500
_HEADING = re.compile(r"^(#{1,3})\s+(.+?)\s*#*\s*$")


def load_path(path: Path) -> list[Entry]:
    """All entries under ``path`` (file or folder); ``InputError`` names file and line."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    files = [path] if path.is_file() else sorted(_knowledge_files(path))
    if not files:
        raise InputError(f"{path}: no .csv, .jsonl, .md or .txt files to ingest")
    entries: list[Entry] = []
    for file in files:
        entries.extend(load_file(file))
    _check_unique(entries)
    return entries


def load_file(path: Path) -> list[Entry]:
    """Entries of one file, chosen by its suffix."""
    suffix = path.suffix.lower()
    text = _read_utf8(path)
    if suffix == ".jsonl":
        return _faq_entries(path, _jsonl_rows(path, text))
    if suffix == ".csv":
        return _faq_entries(path, _csv_rows(path, text))
    if suffix in ARTICLE_SUFFIXES:
        return _article_entries(path, text)
    raise InputError(f"{path}: unsupported file type {suffix!r}; use .csv, .jsonl, .md or .txt")


def _knowledge_files(folder: Path) -> Iterable[Path]:
    """Knowledge files under ``folder``, skipping hidden files and READMEs."""
    for file in folder.rglob("*"):
        name = file.name.lower()
        if not file.is_file() or name.startswith(".") or name.startswith("readme"):
            continue
        if file.suffix.lower() in FAQ_SUFFIXES | ARTICLE_SUFFIXES:
            yield file


def _read_utf8(path: Path) -> str:
    """The file's text; a non-UTF-8 file is an error naming the line."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError(f"{path}:{line}: not UTF-8 text; save the file as UTF-8") from None


def _jsonl_rows(path: Path, text: str) -> Iterable[tuple[int, dict]]:
    """(line number, object) for each non-blank JSONL line."""
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{number}: invalid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise InputError(f"{path}:{number}: each line must be a JSON object")
        questions = row.get("questions", row.get("question"))
        if isinstance(questions, str):
            questions = [questions]
        row["questions"] = questions
        yield number, row


def _csv_rows(path: Path, text: str) -> Iterable[tuple[int, dict]]:
    """(line number, row) for each CSV row; columns id, question, answer[, category, locale]."""
    reader = csv.DictReader(io.StringIO(text, newline=""))
    missing = {"id", "question", "answer"} - set(reader.fieldnames or [])
    if missing:
        raise InputError(f"{path}:1: missing CSV column(s): {', '.join(sorted(missing))}")
    try:
        for row in reader:
            if None in row:
                raise InputError(f"{path}:{reader.line_num}: more fields than the header has")
            row = dict(row)
            row["questions"] = [row.pop("question")]
            yield reader.line_num, row
    except csv.Error as exc:
        raise InputError(f"{path}:{reader.line_num}: malformed CSV ({exc})") from None


def _faq_entries(path: Path, rows: Iterable[tuple[int, dict]]) -> list[Entry]:
    """Merge rows into entries: rows sharing an id (and locale) are phrasings of one entry."""
    merged: dict[tuple[str, str | None], dict] = {}
    for number, row in rows:
        where = f"{path}:{number}"
        entry_id = _text(row.get("id"), where, "id")
        questions = row.get("questions")
        if not isinstance(questions, list) or not questions:
            raise InputError(f"{where}: 'questions' must be a non-empty list of strings")
        phrasings = [_text(q, where, "question") for q in questions]
        locale = _locale(row.get("locale"), where)
        answer = (row.get("answer") or "").strip() if isinstance(row.get("answer"), str) else None
        if answer is None:
            raise InputError(f"{where}: 'answer' must be a string")
        slot = merged.setdefault(
            (entry_id, locale),
            {"answer": "", "questions": [], "category": None, "line": number},
        )
        if answer and slot["answer"] and answer != slot["answer"]:
            raise InputError(f"{where}: entry {entry_id!r} already has a different answer")
        slot["answer"] = slot["answer"] or answer
        slot["category"] = slot["category"] or (row.get("category") or None)
        slot["questions"].extend(q for q in phrasings if q not in slot["questions"])
    entries = []
    for (entry_id, locale), slot in merged.items():
        if not slot["answer"]:
            raise InputError(f"{path}:{slot['line']}: entry {entry_id!r} has no answer")
        entries.append(
            Entry(
                id=entry_id,
                title=slot["questions"][0],
                answer=slot["answer"],
                texts=tuple(slot["questions"]),
                kind="query",
                locale=locale,
                category=slot["category"],
                origin=f"{path.name}:{slot['line']}",
            )
        )
    return entries


def _article_entries(path: Path, text: str) -> list[Entry]:
    """One entry per heading section of an article (long sections split by paragraph)."""
    locale = path.parent.name if path.parent.name in LOCALES else None
    doc_title = path.stem.replace("-", " ").replace("_", " ").capitalize()
    sections: list[tuple[str, int, list[str]]] = []
    heading, start, body = "", 1, list[str]()
    for number, line in enumerate(text.splitlines(), start=1):
        match = _HEADING.match(line)
        if match:
            if match.group(1) == "#" and not sections and not "".join(body).strip():
                doc_title = match.group(2)
                continue
            sections.append((heading, start, body))
            heading, start, body = match.group(2), number, []
        else:
            body.append(line)
    sections.append((heading, start, body))
    entries = []
    for heading, first_line, lines in sections:
        content = "\n".join(lines).strip()
        if not content:
            continue
        for part_no, part in enumerate(_split(content)):
            suffix = f"-{part_no + 1}" if part_no else ""
            title = f"{doc_title} › {heading}" if heading else doc_title
            entries.append(
                Entry(
                    id=f"{path.stem}#{_slug(heading) or 'intro'}{suffix}",
                    title=title,
                    answer=part,
                    texts=(f"{title}\n{part}",),
                    kind="passage",
                    locale=locale,
                    origin=f"{path.name}:{first_line}",
                )
            )
    return entries


def _split(content: str) -> list[str]:
    """Split a long section at paragraph breaks into parts of at most ~MAX_SECTION_CHARS."""
    parts, current = [], ""
    for paragraph in re.split(r"\n\s*\n", content):
        if current and len(current) + len(paragraph) > MAX_SECTION_CHARS:
            parts.append(current)
            current = ""
        current = f"{current}\n\n{paragraph}" if current else paragraph
    parts.append(current)
    return parts


def _text(value: object, where: str, field: str) -> str:
    """A required non-empty string field."""
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"{where}: '{field}' must be a non-empty string")
    return value.strip()


def _locale(value: object, where: str) -> str | None:
    """An optional locale code such as 'en' or 'es'."""
    if value in (None, ""):
        return None
    if not isinstance(value, str) or not re.fullmatch(r"[a-z]{2}(-[A-Za-z]{2})?", value):
        raise InputError(f"{where}: 'locale' must be a language code such as 'en' or 'es'")
    return value.split("-")[0]


def _slug(text: str) -> str:
    """A lowercase kebab-case slug of a heading."""
    return re.sub(r"[^\w]+", "-", text.lower()).strip("-")


def _check_unique(entries: list[Entry]) -> None:
    """Two files must not define the same entry id for the same locale."""
    seen: dict[tuple[str, str | None], str] = {}
    for e in entries:
        key = (e.id, e.locale)
        if key in seen:
            raise InputError(
                f"{e.origin}: entry id {e.id!r} is already defined at {seen[key]}; "
                "ids must be unique"
            )
        seen[key] = e.origin
