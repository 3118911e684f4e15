"""`afina eval` on real backends: retrieval over the small KB and few-shot on the local llama.cpp
server, answered through ChatService, scored, stored, summarised and reported."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from backends import llm_server
from chatbot.db import eval_store, history, store, training_queries
from chatbot.db.models import Conversation, EvalResult
from chatbot.errors import NotFoundError
from chatbot.evaluation import jobs
from chatbot.evaluation.report import write_report
from chatbot.runtime import Runtime
from chatbot.settings import Settings
from chatbot.training.filters import ExportFilters
from tests.conftest import ROOT, SMALL_KB
from tests.integration.conftest import llm_config

pytestmark = pytest.mark.integration
QUESTIONS = ROOT / "tests" / "data" / "eval_small_questions.jsonl"
IN_SCOPE, OUT_OF_SCOPE = 4, 2


def open_runtime(home: Path, index_dir: Path, url: str = "", **backends: dict) -> Runtime:
    """A runtime (SQLite unless ``url``), the small KB, ``faq`` over its index, ``backends``."""
    settings = Settings(
        home=home,
        database={"url": url},
        retrieval={"kb_path": str(SMALL_KB)},
        eval={"bootstrap_resamples": 200, "fail_streak": 2},
    )
    rt = Runtime.open(settings)
    with rt.sessions.begin() as session:
        store.put_backend(
            session=session, name="faq", kind="retrieval", config={"index_dir": str(index_dir)}
        )
        for name, config in backends.items():
            config = dict(config)
            store.put_backend(session=session, name=name, kind=config.pop("kind"), config=config)
    return rt


async def evaluate(rt: Runtime, backends: list[str], **options) -> tuple[int, jobs.Outcome]:
    """Plan, run and finish an evaluation of the small question set."""
    plan = jobs.plan(rt, backends=backends, questions=[QUESTIONS], **options)
    run_id = jobs.start(rt, plan)
    outcome = await jobs.execute(rt, run_id, plan)
    await rt.pool.aclose()
    jobs.finish(rt, run_id, outcome.status, outcome.reason)
    return run_id, outcome


@dataclass
class Evaluated:
    runtime: Runtime
    run_id: int
    summary: dict
    rows: list[dict]


@pytest.fixture(scope="module")
def evaluated(
    tmp_path_factory: pytest.TempPathFactory, small_index_dir: Path, llm: llm_server.LocalServer
) -> Iterator[Evaluated]:
    """One run of faq and local-fewshot (judged by local-fewshot) shared by the tests below."""
    home = tmp_path_factory.mktemp("eval") / "var"
    rt = open_runtime(
        home, small_index_dir, **{"local-fewshot": {"kind": "fewshot", **llm_config(llm, k=2)}}
    )
    run_id, _ = asyncio.run(evaluate(rt, ["faq", "local-fewshot"], judge="local-fewshot"))
    with rt.sessions() as session:
        run = eval_store.get_run(session=session, run_id=run_id)
        summary, rows = run.summary, eval_store.result_dicts(session=session, run_id=run_id)
    yield Evaluated(rt, run_id, summary, rows)
    rt.engine.dispose()


def of(rows: list[dict], backend: str) -> list[dict]:
    return [r for r in rows if r["backend_name"] == backend]


def test_every_question_is_answered_by_each_backend_with_provenance(evaluated: Evaluated):
    faq, fewshot = of(evaluated.rows, "faq"), of(evaluated.rows, "local-fewshot")
    assert len(faq) == len(fewshot) == IN_SCOPE + OUT_OF_SCOPE
    assert all(r["error"] is None and r["message_id"] and r["backend_config_hash"] for r in faq)
    assert all(r["index_version"] and r["model"] for r in faq)
    assert all(r["model"] == "smollm2" and r["input_tokens"] > 0 for r in fewshot)
    assert all(r["example_set"] and "#" in r["example_set"] for r in fewshot)
    with evaluated.runtime.sessions() as session:
        run = eval_store.get_run(session=session, run_id=evaluated.run_id)
        assert run.status == "succeeded" and run.source["items"] == 6
        assert "Reply with one digit" in run.params["judge"]["prompt"]


def test_retrieval_finds_the_entries_and_hands_over_out_of_scope(evaluated: Evaluated):
    faq = evaluated.summary["backends"]["faq"]["metrics"]
    assert faq["right_entry"]["value"] == 1.0 and faq["right_entry"]["n"] == IN_SCOPE
    assert faq["similarity"]["value"] == pytest.approx(1.0, abs=1e-4)
    assert faq["handoff_in_scope"]["value"] == 0.0
    assert faq["handoff_out_of_scope"]["value"] == 1.0


def test_few_shot_answers_are_scored_against_the_reference(evaluated: Evaluated):
    backend = evaluated.summary["backends"]["local-fewshot"]
    m = backend["metrics"]
    assert backend["kind"] == "fewshot"
    assert -1.0 <= m["similarity"]["lo"] <= m["similarity"]["value"] <= m["similarity"]["hi"] < 1
    assert m["right_entry"]["value"] is None  # cites no sources
    assert m["input_tokens"]["value"] > 100 and 0 < m["output_tokens"]["value"] <= 16
    assert m["latency_p50"]["value"] <= m["latency_p95"]["value"]
    assert m["cost_per_1000"]["value"] == 0.0  # smollm2 is free in the price table
    assert backend["cost_per_1000_at_price_model"] > 0  # the same tokens at gpt-4o-mini prices
    judged = [r["judge_score"] for r in of(evaluated.rows, "local-fewshot") if r["in_scope"]]
    assert all(s is None or 0.0 <= s <= 1.0 for s in judged)
    assert evaluated.summary["breakeven"] == []  # no fine-tuned backend in this run


def test_eval_turns_are_never_exported_nor_in_a_history(evaluated: Evaluated):
    ids = {r["conversation_id"] for r in evaluated.rows}
    with evaluated.runtime.sessions.begin() as session:
        tagged = session.scalars(select(Conversation).where(Conversation.id.in_(ids))).all()
        assert len(tagged) == len(ids) and all(c.origin == "eval" for c in tagged)
        for conversation in tagged:  # even if someone cleared the flag, origin keeps them out
            conversation.exclude_from_training = False
    with evaluated.runtime.sessions() as session:
        conditions = ExportFilters(rating="any").sql()
        exported = training_queries.iter_training_conversations(
            session=session, conditions=conditions
        )
        assert not ids & {c.id for c in exported}
        owner = tagged[0].user_id
        listed, _ = history.list_conversations(session=session, user_id=owner, limit=1000)
        assert listed == []


def test_report_is_html_json_and_markdown(evaluated: Evaluated, tmp_path: Path):
    with evaluated.runtime.sessions() as session:
        data, rows = jobs.load_report(session, evaluated.run_id)
    html, data_file, markdown = write_report(data, rows, tmp_path / "report.html")
    page = html.read_text()
    assert page.count("<svg") >= 4 and "local-fewshot" in page
    assert 'src="http' not in page and "href='http" not in page and 'href="http' not in page
    saved = json.loads(data_file.read_text())
    assert set(saved["summary"]) == {"faq", "local-fewshot"} and saved["worst"]["faq"]
    assert "| faq |" in markdown.read_text()


async def test_a_failing_backend_is_reported_and_the_others_still_run(
    tmp_path: Path, small_index_dir: Path, database_url: str
):
    """On SQLite, PostgreSQL and MariaDB: results, summary and provenance round-trip."""
    broken = {"kind": "retrieval", "index_dir": str(tmp_path / "no-such-index")}
    rt = open_runtime(tmp_path / "var", small_index_dir, database_url, broken=broken)
    try:
        run_id, outcome = await evaluate(rt, ["broken", "faq"])
        assert outcome.status == "succeeded"
        with rt.sessions() as session:
            summary = eval_store.get_run(session=session, run_id=run_id).summary["backends"]
            rows = eval_store.result_dicts(session=session, run_id=run_id)
        # the first two were answered by the fallback (faq), the rest skipped
        assert summary["broken"]["metrics"]["fallbacks"] == 2
        assert summary["broken"]["metrics"]["errors"] == 4
        assert "failed 2 answers in a row" in summary["broken"]["stopped"]
        assert "no knowledge-base index" in summary["broken"]["stopped"]
        assert of(rows, "broken")[0]["fallback_from"] == "broken"
        assert summary["faq"]["metrics"]["errors"] == 0
        assert summary["faq"]["metrics"]["right_entry"]["value"] == 1.0
    finally:
        rt.engine.dispose()


async def test_a_stopped_run_is_cancelled_with_what_it_answered(
    tmp_path: Path, small_index_dir: Path
):
    rt = open_runtime(tmp_path / "var", small_index_dir)
    try:
        plan = jobs.plan(rt, backends=["faq"], questions=[QUESTIONS])
        run_id = jobs.start(rt, plan)
        asked: list[int] = []
        outcome = await jobs.execute(
            rt, run_id, plan, advance=asked.append, should_stop=lambda: len(asked) >= 2
        )
        jobs.finish(rt, run_id, outcome.status, outcome.reason)
        with rt.sessions() as session:
            run = eval_store.get_run(session=session, run_id=run_id)
            assert run.status == "cancelled" and run.error == "stopped by the user"
            assert eval_store.count_results(session=session, run_id=run_id) == 2
            assert run.summary["backends"]["faq"]["metrics"]["answers"] == 2
    finally:
        rt.engine.dispose()


async def test_unknown_backends_are_named_with_the_registered_ones(
    tmp_path: Path, small_index_dir: Path
):
    rt = open_runtime(tmp_path / "var", small_index_dir)
    try:
        with pytest.raises(NotFoundError, match="no backend named 'nope'; registered: faq"):
            jobs.plan(rt, backends=["faq", "nope"], questions=[QUESTIONS])
        with pytest.raises(NotFoundError, match="'judge-x'"):
            jobs.plan(rt, backends=["faq"], questions=[QUESTIONS], judge="judge-x")
    finally:
        rt.engine.dispose()


async def test_held_out_chats_of_an_export_are_replayed_against_the_approved_answer(
    tmp_path: Path, small_index_dir: Path
):
    rt = open_runtime(tmp_path / "var", small_index_dir)
    better = "Shipping costs 4.95 EUR, and it is free over 50 EUR."
    try:
        with rt.sessions.begin() as session:
            agent = store.ensure_user(session=session, username="agent1")
        chat = await rt.service.start_conversation(user_id=agent.id)
        for question in ("how much is delivery?", "and how do I reset my password?"):
            async for _ in rt.service.reply(conversation_id=chat, text=question):
                pass
        with rt.sessions.begin() as session:
            first_answer = store.conversation_messages(session=session, conversation_id=chat)[1]
            history.add_correction(
                session=session, message_id=first_answer.id, user_id=agent.id, content=better
            )
            export_id = training_queries.add_export(
                session=session, created_by=None, format="chat", filters={}, seed=0, redacted=True
            )
            training_queries.add_export_items(
                session=session, export_id=export_id, items=[(chat, "test")]
            )
        plan = jobs.plan(rt, backends=["faq"], export_id=export_id, split="test")
        assert [len(i.turns) for i in plan.items] == [2]
        run_id = jobs.start(rt, plan)
        outcome = await jobs.execute(rt, run_id, plan)
        jobs.finish(rt, run_id, outcome.status)
        with rt.sessions() as session:
            rows = session.scalars(select(EvalResult).where(EvalResult.run_id == run_id)).all()
        first, second = sorted(rows, key=lambda r: r.item_key)
        assert first.item_key == f"chat:{chat}:0" and first.reference == better
        assert first.key_facts == 1.0 and 0.5 < first.similarity < 1.0
        assert second.reference.startswith("Click 'Forgot password'")
        assert second.similarity == pytest.approx(1.0, abs=1e-4)
    finally:
        rt.engine.dispose()
