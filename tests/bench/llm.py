"""LLM backends on the local server: Afina's overhead on TTFT/total, and prompt tokens per answer.

1. Time to first token and total time of the same prompt three ways: a direct ``openai`` SDK
   call, the ``finetuned`` backend alone, and a full ChatService turn (SQLite, provenance
   stored). The prompt is identical, so the model's work is the same; llama.cpp's prompt cache
   is warmed first and the order rotates per question, so no path gets a colder cache.
2. Prompt tokens per answer (server-reported usage) of the few-shot configuration against the
   fine-tuned one on the same questions: the saving fine-tuning promises.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import openai

from backends import llm_server
from backends.base import Conversation, ReplyMeta, Turn
from backends.fewshot import FewShotBackend
from backends.finetuned import FineTunedBackend
from backends.prompting import build_prompt
from chatbot.backend_pool import ACTIVE_BACKEND
from chatbot.db import store
from chatbot.runtime import Runtime
from chatbot.settings import Settings
from tests.bench.common import pct, summary

QUESTIONS = [
    "How much does shipping cost?",
    "Where is my order?",
    "How long do I have to return something?",
    "I forgot my password, what do I do?",
    "Can I cancel my order?",
    "Which payment methods do you accept?",
    "When will I get my refund?",
    "My parcel arrived damaged, what now?",
]
MAX_TOKENS = 32
Timed = tuple[float, float]  # (ttft ms, total ms)


async def timed(chunks: AsyncIterator[object]) -> Timed:
    """TTFT and total time of consuming ``chunks``."""
    start = time.perf_counter()
    first = None
    async for _ in chunks:
        if first is None:
            first = time.perf_counter()
    end = time.perf_counter()
    return ((first or end) - start) * 1000, (end - start) * 1000


async def direct_chunks(client: openai.AsyncOpenAI, model: str, messages: list) -> AsyncIterator:
    """Text chunks of a bare SDK streaming call (the baseline)."""
    stream = await client.chat.completions.create(
        model=model,
        messages=messages,
        max_tokens=MAX_TOKENS,
        temperature=0.0,
        stream=True,
        stream_options={"include_usage": True},
    )
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            yield chunk.choices[0].delta.content


def config(server: llm_server.LocalServer, **extra) -> dict:
    """A backend config for the bench server."""
    base = {"base_url": server.base_url, "model": server.model, "max_retries": 0}
    return {**base, "max_tokens": MAX_TOKENS, "temperature": 0.0, **extra}


async def overhead(server: llm_server.LocalServer, questions: list[str], home: Path) -> None:
    """Print TTFT/total of direct SDK vs backend vs ChatService for identical prompts."""
    rt = Runtime.open(Settings(home=home))
    with rt.sessions.begin() as session:
        store.put_backend(session=session, name="ft", kind="finetuned", config=config(server))
        store.set_setting(session=session, key=ACTIVE_BACKEND, value="ft")
        user = store.ensure_user(session=session, username="bench")
    backend = FineTunedBackend.from_config(config(server))
    client = openai.AsyncOpenAI(base_url=server.base_url, api_key="none", max_retries=0)
    warm = await rt.service.start_conversation(user_id=user.id)  # first-use costs, untimed
    await timed(aiter(rt.service.reply(conversation_id=warm, text=questions[0])))
    results: dict[str, list[Timed]] = {"direct SDK": [], "backend": [], "ChatService": []}
    for i, question in enumerate(questions):
        view = Conversation("bench", (Turn("user", question),))
        o = backend.options
        messages = build_prompt(
            system=o.system_prompt, turns=view.turns, budget=o.prompt_budget, locale="en"
        ).messages
        await timed(direct_chunks(client, server.model, messages))  # warm the prompt cache
        names = list(results)
        for name in names[i % 3 :] + names[: i % 3]:
            if name == "direct SDK":
                chunks: AsyncIterator = direct_chunks(client, server.model, messages)
            elif name == "backend":
                chunks = backend.stream(view, ReplyMeta())
            else:  # a new conversation each time, so the prompt is the same one question
                conversation = await rt.service.start_conversation(user_id=user.id)
                chunks = aiter(rt.service.reply(conversation_id=conversation, text=question))
            results[name].append(await timed(chunks))
    await client.close()
    await backend.aclose()
    await rt.aclose()
    print(f"LLM overhead ({len(questions)} questions, <= {MAX_TOKENS} answer tokens, 1 thread;")
    print("  total varies with answer length, TTFT is the cleaner comparison):")
    for name, rows in results.items():
        print(f"  {name:12} TTFT {summary([r[0] for r in rows])}")
        print(f"  {'':12} total {summary([r[1] for r in rows])}")
    for key, idx in (("TTFT", 0), ("total", 1)):
        base = pct([r[idx] for r in results["direct SDK"]], 50)
        for name in ("backend", "ChatService"):
            extra = pct([r[idx] for r in results[name]], 50) - base
            print(f"  Afina {name} adds {extra:+7.2f} ms to p50 {key}")


async def prompt_tokens(server: llm_server.LocalServer, questions: list[str]) -> None:
    """Print prompt tokens per answer, few-shot vs fine-tuned configuration."""
    backends = {
        "few-shot (k=4)": FewShotBackend.from_config(config(server, k=4)),
        "few-shot (all 10)": FewShotBackend.from_config(config(server, k=50)),
        "fine-tuned": FineTunedBackend.from_config(config(server)),
    }
    print(f"Prompt tokens per answer ({len(questions)} questions; server count / o200k estimate):")
    for name, backend in backends.items():
        server_counts, estimates = [], []
        for question in questions:
            meta = ReplyMeta()
            async for _ in backend.stream(Conversation("b", (Turn("user", question),)), meta):
                pass
            server_counts.append(meta.input_tokens or 0)
            estimates.append(meta.details["prompt_tokens_o200k"])
        await backend.aclose()
        print(
            f"  {name:18} mean {statistics.fmean(server_counts):7.1f} "
            f"/ {statistics.fmean(estimates):7.1f} tokens"
        )


def run(quick: bool) -> None:
    """Start the local server and print both groups of figures."""
    questions = QUESTIONS[:3] if quick else QUESTIONS
    with llm_server.start(port=0) as server, tempfile.TemporaryDirectory() as home:
        asyncio.run(overhead(server, questions, Path(home)))
        asyncio.run(prompt_tokens(server, questions))
