"""Local fine-tune vs few-shot SmolLM2: the demo loop end to end, scored on held-out questions.

1. A fresh home: ``afina demo chats`` (KB phrasings, answered by retrieval, rated by the demo
   agent), ``afina export --rating positive``, ``afina finetune start --provider local`` under a
   time budget — the real commands, as a user runs them.
2. Both models served as `afina llm serve` serves them (base server for few-shot; the LoRA on
   the fine-tunes' server), same GGUF, one thread each, temperature 0.
3. On a sample of ``tests/data/heldout_questions.jsonl`` (never trained on, never tuned on):
   similarity of the answer to the entry's reference answer (retrieval embedder of the
   language), share of its key facts (prices, days, names), prompt tokens, TTFT, total time;
   means with 95% bootstrap intervals, and the paired difference fine-tuned minus few-shot.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from backends import llm_server
from backends.base import BackendError, Conversation, ReplyMeta, Turn
from backends.fewshot import FewShotBackend
from backends.finetuned import FineTunedBackend
from chatbot.db import finetune_store as jobs
from chatbot.db import store
from chatbot.evaluation.jobs import similarity_for
from chatbot.evaluation.metrics import bootstrap
from chatbot.evaluation.scoring import fact_share
from chatbot.runtime import Runtime
from chatbot.settings import Settings
from tests.bench.common import ROOT

HELDOUT = ROOT / "tests" / "data" / "heldout_questions.jsonl"
KB = ROOT / "data" / "kb"
MAX_TOKENS = 96


def afina(*args: str, home: Path, timeout: float = 3600) -> str:
    """Run an ``afina`` command in ``home``; its output (stop the bench if it fails)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AFINA_")}
    env["AFINA_HOME"] = str(home)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "chatbot.cli.main", *args],
        capture_output=True, text=True, env=env, cwd=home.parent, timeout=timeout,
    )  # fmt: skip
    print(f"  afina {' '.join(args[:2])}: {time.perf_counter() - started:.0f} s", flush=True)
    if done.returncode != 0:
        raise SystemExit(f"afina {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return done.stdout + done.stderr


def references() -> dict[tuple[str, str], str]:
    """(locale, entry id) -> the entry's answer."""
    found = {}
    for locale in ("en", "es"):
        for line in (KB / f"faq_{locale}.jsonl").read_text(encoding="utf-8").splitlines():
            if line.strip():
                entry = json.loads(line)
                found[(locale, entry["id"])] = entry["answer"]
    return found


def sample(per_locale: int, seed: int = 0) -> list[dict[str, Any]]:
    """``per_locale`` held-out questions per language, fixed by ``seed``."""
    rows = [json.loads(x) for x in HELDOUT.read_text(encoding="utf-8").splitlines() if x.strip()]
    rng = random.Random(seed)
    picked = []
    for locale in ("en", "es"):
        mine = [r for r in rows if r["locale"] == locale]
        picked += rng.sample(mine, min(per_locale, len(mine)))
    return picked


def train(home: Path, chats: int, minutes: float) -> dict[str, Any]:
    """Demo chats -> export -> local fine-tune; the job row and its backend's config."""
    afina("demo", "chats", "--count", str(chats), "--seed", "0", home=home)
    afina("export", "--out", "exp", "--rating", "positive", "--validation", "0.1",
          "--no-near-duplicates", home=home)  # fmt: skip
    # batch 4: under a CPU time budget more, smaller steps learn more than fewer, larger ones
    afina("finetune", "start", "--export", "1", "--provider", "local", "--batch-size", "4",
          "--max-minutes", str(minutes), home=home)  # fmt: skip
    rt = Runtime.open(Settings(home=home))
    try:
        with rt.sessions() as session:
            job = jobs.get_job(session=session, job_id=1)
            config = dict(store.get_backend(session=session, name=job.backend_name).config)
            keys = ("trained_tokens", "train_seconds", "metrics", "hyperparameters", "events")
            row = {c: getattr(job, c) for c in keys}
    finally:
        rt.engine.dispose()
    return {**row, "config": config}


async def answer(backend: Any, question: dict[str, Any]) -> dict[str, Any]:
    """One answer with TTFT, total time and prompt tokens."""
    meta, parts = ReplyMeta(), []
    conversation = Conversation("b", (Turn("user", question["text"]),), locale=question["locale"])
    start, first, error = time.perf_counter(), None, None
    try:
        async for chunk in backend.stream(conversation, meta):
            first = first or time.perf_counter()
            parts.append(chunk)
    except BackendError as exc:  # counted, scored as no answer
        error = exc.detail
    end = time.perf_counter()
    return {
        "error": error,
        "text": "".join(parts),
        "ttft_ms": ((first or end) - start) * 1000,
        "total_ms": (end - start) * 1000,
        "prompt_tokens": meta.input_tokens,
    }


async def compare(backends: dict[str, Any], questions: list[dict[str, Any]]) -> list[dict]:
    """Every question to every backend, alternating the order per question."""
    rows = []
    names = list(backends)
    for i, question in enumerate(questions):
        for name in names[i % 2 :] + names[: i % 2]:
            rows.append({**question, "backend": name, **await answer(backends[name], question)})
    for backend in backends.values():
        await backend.aclose()
    return rows


def _ci(stat: dict[str, Any], scale: float = 1.0, digits: int = 3) -> str:
    """``value [lo, hi]``."""
    if stat["value"] is None:
        return "-"
    v, lo, hi = (stat[k] * scale for k in ("value", "lo", "hi"))
    return f"{v:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def report(rows: list[dict[str, Any]], names: list[str]) -> None:
    """Per language and backend: means with 95% bootstrap intervals; paired differences."""
    print("Held-out answers (mean [95% bootstrap CI]):")
    print(f"  {'lang':4} {'backend':11} {'similarity':>22} {'key facts %':>22} "
          f"{'prompt tok':>22} {'TTFT ms':>22} {'total ms':>24}")  # fmt: skip
    for locale in ("en", "es"):
        by = {n: [r for r in rows if r["locale"] == locale and r["backend"] == n] for n in names}
        for name in names:
            mine = by[name]
            print(
                f"  {locale:4} {name:11} {_ci(bootstrap([r['similarity'] for r in mine])):>22} "
                f"{_ci(bootstrap([r['facts'] for r in mine]), 100, 1):>22} "
                f"{_ci(bootstrap([r['prompt_tokens'] for r in mine]), 1, 0):>22} "
                f"{_ci(bootstrap([r['ttft_ms'] for r in mine]), 1, 0):>22} "
                f"{_ci(bootstrap([r['total_ms'] for r in mine]), 1, 0):>24}"
            )
        errors = {n: sum(1 for r in by[n] if r["error"]) for n in names}
        print(f"  {locale:4} failed answers: {errors}")
        pairs = zip(by[names[1]], by[names[0]], strict=True)
        diff = [(a["similarity"] or 0) - (b["similarity"] or 0) for a, b in pairs]
        print(f"  {locale:4} similarity fine-tuned minus few-shot: {_ci(bootstrap(diff))}")


def run(quick: bool) -> None:
    """Train, serve both, answer, score, print."""
    chats, minutes, per_locale = (60, 2.0, 8) if quick else (200, 8.0, 20)
    print(f"Fine-tune bench: {chats} demo chats, {minutes:g} min budget, "
          f"{per_locale} held-out questions per language")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "var"
        job = train(home, chats, minutes)
        adapter = Path(job["config"]["adapter"])
        vals = [m["val_loss"] for m in job["metrics"] if m.get("val_loss") is not None]
        print(f"  trained {job['train_seconds']:.0f} s on {job['trained_tokens']} tokens, "
              f"adapter {adapter.stat().st_size / 1e6:.1f} MB, val loss per epoch {vals}, "
              f"{job['hyperparameters']}")  # fmt: skip
        questions = sample(per_locale)
        with (
            llm_server.start(port=0) as base,
            llm_server.start(port=0, adapters=[adapter]) as tuned,
        ):
            common = {"model": "smollm2", "max_tokens": MAX_TOKENS, "temperature": 0.0,
                      "timeout_s": 120, "max_retries": 2}  # fmt: skip
            ft_config = {**common, **job["config"], "base_url": tuned.base_url, "lora_id": 0}
            backends = {
                "few-shot": FewShotBackend.from_config({**common, "base_url": base.base_url}),
                "fine-tuned": FineTunedBackend.from_config(ft_config),
            }
            rows = asyncio.run(compare(backends, questions))
    refs, similarity = references(), similarity_for(Settings())
    for row in rows:
        reference = refs[(row["locale"], row["entry_id"])]
        row["similarity"] = similarity(row["text"], reference, row["locale"])
        row["facts"] = fact_share(reference, row["text"])
    report(rows, list(backends))
