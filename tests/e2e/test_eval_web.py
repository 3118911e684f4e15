"""The evaluation report in Chromium (plots rendered, volume control) and the admin-only
"Evaluations" page of a real ``afina serve``."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from chatbot.db import store
from chatbot.evaluation import jobs
from chatbot.evaluation.report import write_report
from chatbot.runtime import Runtime
from chatbot.settings import Settings
from tests.conftest import ROOT, SMALL_KB
from tests.e2e.conftest import ADMIN_PASSWORD, PASSWORD, STRICT, Server, running_server

pytestmark = pytest.mark.e2e
QUESTIONS = ROOT / "tests" / "data" / "eval_small_questions.jsonl"
PLOTS = ("scatter", "handovers", "latency", "tokens")


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory, small_index_dir: Path) -> Path:
    """A report of a real run: ``faq`` and a strict retrieval backend that always hands over,
    with a fine-tune pair added to exercise the break-even section."""
    folder = tmp_path_factory.mktemp("report")
    rt = Runtime.open(
        Settings(home=folder / "var", retrieval={"kb_path": str(SMALL_KB)}, eval={"seed": 1})
    )
    try:
        with rt.sessions.begin() as session:
            for name, config in (("faq", {}), (STRICT, {"min_score": 2.0})):
                config = {"index_dir": str(small_index_dir), **config}
                store.put_backend(session=session, name=name, kind="retrieval", config=config)
        plan = jobs.plan(rt, backends=["faq", STRICT], questions=[QUESTIONS])
        run_id = jobs.start(rt, plan)
        outcome = asyncio.run(jobs.execute(rt, run_id, plan))
        jobs.finish(rt, run_id, outcome.status)
        with rt.sessions() as session:
            data, rows = jobs.load_report(session, run_id)
    finally:
        rt.engine.dispose()
    data["breakeven"] = [
        {
            "finetuned": "ft-demo",
            "fewshot": "fewshot-demo",
            "training_usd": 6.0,
            "training_basis": "given with --training-cost",
            "prompt_tokens_saved": 1000.0,
            "usd_saved_per_answer": 0.00015,
            "price_basis": "both priced as gpt-4o-mini",
            "fewshot_usd_per_answer": 0.00024,
            "finetuned_usd_per_answer": 0.00009,
            "answers_to_break_even": 40_000.0,
            "monthly_volume_for_a_year": 40_000 / 12,
        }
    ]
    html, _, _ = write_report(data, rows, folder / "report.html")
    return html


@pytest.mark.parametrize("width", [1280, 390])
def test_report_plots_render_offline_at_desktop_and_phone_width(report: Path, browser, width: int):
    context = browser.new_context(viewport={"width": width, "height": 900})
    requested: list[str] = []
    context.route("**/*", lambda route: (requested.append(route.request.url), route.continue_()))
    try:
        page = context.new_page()
        page.goto(report.as_uri())
        assert [u for u in requested if not u.startswith("file:")] == []  # nothing fetched
        for name in (*PLOTS, "breakeven"):
            svg = page.locator(f"#plot-{name} svg" if name != "breakeven" else ".pair svg")
            assert svg.is_visible()
            box = svg.bounding_box()
            assert box is not None and 200 < box["width"] <= width and box["height"] > 80
            assert svg.locator("path").count() > 5  # drawn marks, not an empty frame
        assert page.locator("table.metrics tbody tr").count() == 2
        assert page.locator("#worst details").count() == 2
    finally:
        context.close()


def test_report_volume_control_recomputes_the_pay_off(report: Path, browser):
    page = browser.new_page()
    try:
        page.goto(report.as_uri())
        months = page.locator("#months-0")
        assert "pays off after 4.0 months" in months.inner_text()  # 10,000 a month by default
        page.fill("#volume", "80000")
        page.dispatch_event("#volume", "input")
        assert "pays off within the first month" in months.inner_text()
        assert "saves $12.00 a month ($144 a year)" in months.inner_text()
        page.fill("#volume", "1000")
        page.dispatch_event("#volume", "input")
        assert "pays off after 40.0 months" in months.inner_text()
    finally:
        page.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``afina serve`` whose Evaluations button asks the small question set."""
    folder = tmp_path_factory.mktemp("evalweb")
    (folder / ".env").write_text(f"AFINA_EVAL_QUESTIONS={QUESTIONS}\nAFINA_EVAL_SEED=1\n")
    with running_server(folder, f"sqlite:///{folder / 'afina.db'}") as running:
        yield running


def logged_in(server: Server, username: str, password: str) -> requests.Session:
    http = requests.Session()
    login = http.post(
        f"{server.chat}/login", data={"username": username, "password": password}, timeout=10
    )
    assert login.ok
    return http


def test_evaluations_page_is_for_admins_only(server: Server):
    page = f"{server.url}/admin/evaluations"
    anonymous = requests.get(page, timeout=30)
    assert anonymous.status_code == 401 and "log in" in anonymous.text
    agent = logged_in(server, "bob", PASSWORD)
    refused = agent.get(page, timeout=30)
    assert refused.status_code == 403 and "for administrators" in refused.text
    assert refused.headers["content-type"].startswith("text/html")
    posted = agent.post(page, data={"backends": "faq", "limit": "4"}, timeout=30)
    assert posted.status_code == 403
    assert agent.get(f"{page}/1", timeout=30).status_code == 403


def test_admin_runs_an_evaluation_and_opens_its_report(server: Server):
    admin = logged_in(server, "admin", ADMIN_PASSWORD)
    page = f"{server.url}/admin/evaluations"
    listing = admin.get(page, timeout=30)
    assert listing.status_code == 200 and "Run evaluation" in listing.text
    assert re.search(r"name=backends value='faq'", listing.text)
    started = admin.post(page, data={"backends": ["faq", STRICT], "limit": "4"}, timeout=60)
    assert started.status_code == 200 and started.url.endswith("/admin/evaluations")
    deadline = time.monotonic() + 120
    while ">succeeded<" not in admin.get(page, timeout=30).text:
        assert time.monotonic() < deadline, "the run did not finish in 120 s"
        time.sleep(1)
    assert "8 / 8" in admin.get(page, timeout=30).text  # 4 questions x 2 backends
    run_id = re.search(r"/admin/evaluations/(\d+)'>report", admin.get(page, timeout=30).text)
    report = admin.get(f"{page}/{run_id.group(1)}", timeout=60)
    assert report.status_code == 200 and report.text.count("<svg") >= 4
    bad = admin.post(page, data={"backends": "no-such-backend"}, timeout=30)
    assert bad.status_code == 400 and "registered:" in bad.text
