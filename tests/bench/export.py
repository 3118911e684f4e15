"""Export wall time and peak RSS over N stored messages, on SQLite and PostgreSQL.

``python -m tests.bench.run --only export [--export-messages N]``. The database is filled
with Core bulk inserts (8 messages per conversation, some feedback, corrections and personal
data), then the export runs in a child process so its peak RSS is its own. RSS is also
sampled while conversations stream, to show memory stays flat as the export proceeds.
Every message is stored with its personal-data spans, as detection on store leaves them (the
export applies them and finds nothing left to detect). Near-duplicate detection uses exact
matching here (embedding every chat is a separate cost:
about 200 conversations/s with MiniLM on one thread).
"""

from __future__ import annotations

import json
import os
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, insert, text

from chatbot.db import migrate
from chatbot.db.models import Conversation, Correction, Feedback, Message, User
from chatbot.db.session import make_engine, make_sessionmaker
from chatbot.settings import PiiSettings, TrainingSettings
from chatbot.training.export import ExportOptions, run_export
from chatbot.training.pii.spans import VERSION

PER_CONVERSATION = 8
_PII = [
    ("EMAIL", re.compile(r"ana\d+@example\.com")),
    ("CARD", re.compile(r"4111 1111 1111 1111")),
    ("PHONE", re.compile(r"\+34 612 345 \d{4}")),
]
QUESTIONS = [
    "How much does shipping cost to {n}?",
    "My order {n} has not arrived, can you check?",
    "I want to return item {n}, what do I do?",
    "Can I pay order {n} in instalments?",
    "Please send the invoice for {n} to ana{n}@example.com",
    "Refund order {n} to card 4111 1111 1111 1111, call +34 612 345 {m}",
]
ANSWERS = [
    "Shipping is free on orders over 50 euros; otherwise it costs 4.95 (ref {n}).",
    "I checked order {n}: the courier will deliver it tomorrow before 14:00.",
    "Start a return for {n} from Orders within 30 days; the label is free.",
    "Yes, orders over 100 euros can be paid in three instalments ({n}).",
]


def _checked(content: str) -> dict:
    """Spans as the background detector stores them (every message checked on store)."""
    spans = [
        {"start": m.start(), "end": m.end(), "type": kind, "score": 1.0, "source": "model"}
        for kind, pattern in _PII
        for m in pattern.finditer(content)
    ]
    return {"pii_spans": spans, "pii_version": VERSION}


def seed(url: str, messages: int, batch: int = 20_000) -> int:
    """Fill a migrated database with ``messages`` messages; returns the conversation count."""
    engine = make_engine(url)
    migrate.upgrade(engine)
    rng = random.Random(0)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    n_conv = max(1, messages // PER_CONVERSATION)
    with engine.begin() as conn:
        user_id = conn.execute(
            insert(User).values(username="bench", role="admin")
        ).inserted_primary_key[0]
    rows: dict[type, list[dict]] = {Conversation: [], Message: [], Feedback: [], Correction: []}
    for c in range(n_conv):
        cid = str(uuid.UUID(int=rng.getrandbits(128)))
        at = start + timedelta(seconds=c)
        rows[Conversation].append(
            {"id": cid, "user_id": user_id, "created_at": at, "updated_at": at}
        )
        for t in range(PER_CONVERSATION):
            n, m = rng.randrange(10**6), rng.randrange(1000, 9999)
            role = "user" if t % 2 == 0 else "assistant"
            template = rng.choice(QUESTIONS if role == "user" else ANSWERS)
            mid = str(uuid.UUID(int=rng.getrandbits(128)))
            extra = {"backend_name": "faq"} if role == "assistant" else {}
            at_t = at + timedelta(milliseconds=t)
            content = template.format(n=n, m=m)
            rows[Message].append(
                {"id": mid, "conversation_id": cid, "role": role, "created_at": at_t,
                 "content": content, **extra, **_checked(content)}
            )  # fmt: skip
            if role == "assistant" and rng.random() < 0.1:
                rows[Feedback].append({"message_id": mid, "user_id": user_id, "value": 1})
            elif role == "assistant" and rng.random() < 0.02:
                rows[Correction].append(
                    {"message_id": mid, "user_id": user_id, "content": f"Fixed {n}.",
                     **_checked("")}
                )  # fmt: skip
        if len(rows[Message]) >= batch or c == n_conv - 1:
            with engine.begin() as conn:
                for model, chunk in rows.items():
                    if chunk:
                        conn.execute(insert(model), chunk)
            rows = {model: [] for model in rows}
    engine.dispose()
    return n_conv


def _rss_mb(field: str = "VmRSS") -> float:
    """This process's resident set size in MiB: now (VmRSS) or its peak (VmHWM).

    The peak is read here, not from getrusage: on Linux ``ru_maxrss`` keeps the parent's
    peak across exec, so a child started by a big benchmark process would report that.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return 0.0


def child(url: str, out: str, total: int) -> None:
    """Run one export and print its figures as JSON (runs in a fresh process)."""
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    samples: dict[str, float] = {}
    seen = 0
    marks = {max(1, total * p // 100): f"{p}%" for p in (10, 50, 100)}

    def progress(n: int) -> None:  # called once per batch of conversations read
        nonlocal seen
        for mark, label in marks.items():
            if seen < mark <= seen + n:
                samples[label] = round(_rss_mb(), 1)
        seen += n

    options = ExportOptions.from_settings(TrainingSettings(), near_duplicates=False)
    start = time.perf_counter()
    result = run_export(
        sessions=sessions, out=Path(out), options=options, progress=progress, pii=PiiSettings()
    )
    wall = time.perf_counter() - start
    own = resource.getrusage(resource.RUSAGE_SELF)
    workers = resource.getrusage(resource.RUSAGE_CHILDREN)  # staging worker processes
    examples = sum(result.report["counts"]["examples"].values())
    print(
        json.dumps(
            {
                "wall_s": wall,
                "peak_rss_mb": _rss_mb("VmHWM"),
                "rss_while_reading": samples,
                "examples": examples,
                "cpu_s": own.ru_utime + own.ru_stime,
                "workers_cpu_s": workers.ru_utime + workers.ru_stime,
                # the largest worker's peak (at least this process's size when it started one)
                "workers_peak_rss_mb": workers.ru_maxrss / 1024,
                "load": round(os.getloadavg()[0], 1),
            }
        )
    )


def measure(label: str, url: str, messages: int) -> None:
    """Seed, export in a child process, print the figures."""
    start = time.perf_counter()
    n_conv = seed(url, messages)
    seeded = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as out:
        done = subprocess.run(
            [sys.executable, "-m", "tests.bench.export", "--child", url, out, str(n_conv)],
            capture_output=True,
            text=True,
            check=False,
        )
    if done.returncode != 0:
        raise SystemExit(f"export child failed on {label}:\n{done.stderr}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    per_s = messages / figures["wall_s"]
    print(
        f"export {label:<10} {messages:,} messages / {n_conv:,} chats (seeded in {seeded:.0f} s): "
        f"{figures['wall_s']:.1f} s ({per_s:,.0f} messages/s), {figures['examples']:,} examples, "
        f"peak RSS {figures['peak_rss_mb']:.0f} MiB, "
        f"RSS while reading {figures['rss_while_reading']}; CPU {figures['cpu_s']:.0f} s"
        + (
            f" + {figures['workers_cpu_s']:.0f} s in worker processes (peak RSS "
            f"{figures['workers_peak_rss_mb']:.0f} MiB each at most)"
            if figures["workers_cpu_s"]
            else " (no worker processes)"
        )
        + f"; load average {figures['load']} on {os.cpu_count()} CPUs"
    )


def run(messages: int, postgres_admin: str) -> None:
    """Print export figures on SQLite and PostgreSQL."""
    name = f"afina_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(postgres_admin, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            measure("sqlite", f"sqlite:///{tmp}/bench.db", messages)
        pg = admin.url.set(database=name).render_as_string(hide_password=False)
        measure("postgresql", pg, messages)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))
        admin.dispose()


if __name__ == "__main__" and sys.argv[1:2] == ["--child"]:
    child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
