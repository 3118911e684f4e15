"""The admin "Fine-tuning" page of a real ``afina serve``: admin-only, a tiny local job started
from the form in Chromium and watched to success, bad input, cancel.

The export is the fixed chat set of the export tests; training is cut to two steps of four short
examples at LoRA rank 4 (the server's AFINA_FINETUNE_* settings), so the model load dominates.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator

import pytest
import requests

from chatbot.db import finetune_store
from tests.data.golden_export import chats
from tests.e2e.conftest import (
    ADMIN_PASSWORD,
    ARTIFACTS,
    DESKTOP,
    PASSWORD,
    PHONE,
    Server,
    running_server,
)

pytestmark = pytest.mark.e2e
TINY = {
    "AFINA_FINETUNE_BATCH_SIZE": "4",
    "AFINA_FINETUNE_MAX_SEQ_TOKENS": "64",
    "AFINA_FINETUNE_LORA_RANK": "4",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``afina serve`` with tiny training settings and the fixed chats exported as export 1."""
    folder = tmp_path_factory.mktemp("ftweb")
    database = f"sqlite:///{folder / 'afina.db'}"
    with running_server(folder, database, env=TINY) as running:
        with running.sessions.begin() as session:  # type: ignore[attr-defined]
            chats.seed(session)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AFINA_")}
        env.update(AFINA_HOME=str(running.home), AFINA_DATABASE_URL=database)
        done = subprocess.run(
            [sys.executable, "-m", "chatbot.cli.main", "export", "--out", "exp",
             "--validation", "0.2", "--no-near-duplicates", "--by", "root"],
            capture_output=True, text=True, env=env, cwd=folder, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0 and "Export #1" in done.stderr + done.stdout, done.stderr
        yield running


def logged_in(server: Server, username: str, password: str) -> requests.Session:
    http = requests.Session()
    login = http.post(
        f"{server.chat}/login", data={"username": username, "password": password}, timeout=10
    )
    assert login.ok
    return http


def browser_page(browser, server: Server, viewport: dict[str, int]):
    """A Chromium page logged in as admin that reaches nothing but the server."""
    context = browser.new_context(viewport=viewport)
    context.route(
        "**/*",
        lambda route: (
            route.continue_() if route.request.url.startswith(server.url) else route.abort()
        ),
    )
    login = context.request.post(
        f"{server.chat}/login", form={"username": "admin", "password": ADMIN_PASSWORD}
    )
    assert login.ok, login.text()
    page = context.new_page()
    page.set_default_timeout(30_000)
    return context, page


def screenshots(browser, server: Server, path: str, name: str) -> None:
    """Desktop and phone-width screenshots of a page, to look at (test-artifacts/)."""
    ARTIFACTS.mkdir(exist_ok=True)
    for label, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        context, page = browser_page(browser, server, viewport)
        try:
            page.goto(f"{server.url}{path}")
            page.screenshot(path=str(ARTIFACTS / f"finetune-{name}-{label}.png"), full_page=True)
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= viewport["width"] + 1, f"{name} scrolls sideways at {label} width"
        finally:
            context.close()


def test_finetune_pages_are_for_admins_only(server: Server):
    page = f"{server.url}/admin/finetune"
    assert requests.get(page, timeout=30).status_code == 401
    agent = logged_in(server, "bob", PASSWORD)
    refused = agent.get(page, timeout=30)
    assert refused.status_code == 403 and "for administrators" in refused.text
    assert refused.headers["content-type"].startswith("text/html")
    assert agent.post(page, data={"export_id": "1"}, timeout=30).status_code == 403
    assert agent.get(f"{page}/1", timeout=30).status_code == 403
    assert agent.post(f"{page}/1/cancel", timeout=30).status_code == 403


def test_bad_input_shows_the_runners_error(server: Server):
    admin = logged_in(server, "admin", ADMIN_PASSWORD)
    page = f"{server.url}/admin/finetune"
    unknown = admin.post(page, data={"export_id": "99", "max_steps": "2"}, timeout=30)
    assert unknown.status_code == 400 and "no export 99" in unknown.text
    method = admin.post(page, data={"export_id": "1", "method": "qlora"}, timeout=30)
    assert method.status_code == 400 and "unknown method" in method.text
    foreign = admin.post(
        page, data={"export_id": "1"}, headers={"Origin": "https://evil.example"}, timeout=30
    )
    assert foreign.status_code == 403
    exported = server.home.parent / "exp"
    moved = exported.with_name("exp-moved")
    exported.rename(moved)
    try:
        missing = admin.post(page, data={"export_id": "1"}, timeout=30)
        assert missing.status_code == 400 and "is missing" in missing.text
    finally:
        moved.rename(exported)
    with server.sessions() as session:  # type: ignore[operator]
        assert finetune_store.list_jobs(session=session) == []  # nothing recorded


def test_admin_starts_a_tiny_job_from_the_form_and_watches_it_succeed(server: Server, browser):
    from playwright.sync_api import expect

    context, page = browser_page(browser, server, DESKTOP)
    try:
        page.goto(f"{server.url}/admin/finetune")
        form = page.locator("#start-1")
        assert "train.jsonl" in page.locator(".export").first.inner_text()
        form.locator("select[name=method]").select_option("lora")
        form.locator("input[name=max_steps]").fill("2")
        form.locator("input[name=epochs]").fill("1")
        form.locator("button[type=submit]").click()  # a same-origin form post
        page.wait_for_url(re.compile(r"/admin/finetune/\d+$"))
        job_id = int(page.url.rsplit("/", 1)[1])
        second = logged_in(server, "admin", ADMIN_PASSWORD).post(
            f"{server.url}/admin/finetune", data={"export_id": "1", "max_steps": "2"}, timeout=30
        )  # while the first one loads its model (~20 s): one job at a time
        assert second.status_code == 409 and "already training" in second.text
        expect(page.locator("#status")).to_have_text(re.compile("succeeded"), timeout=300_000)
        backend = page.locator("#backend").inner_text()
        assert re.fullmatch(r"ft-local-\d{8}-1", backend)
        svg = page.locator("svg.loss")
        assert svg.locator("polyline.train").count() == 1 and svg.locator("circle").count() >= 2
        text = page.locator("main").inner_text()
        assert "12 in train" in text and "train.jsonl" in text and "training on 12" in text
        assert page.locator("#cancel").count() == 0  # nothing left to cancel
        page.goto(f"{server.url}/admin/finetune")
        row = page.locator("tbody tr", has=page.locator(f"a[href='/admin/finetune/{job_id}']"))
        assert "succeeded" in row.inner_text() and backend in row.inner_text()
    finally:
        context.close()
    with server.sessions() as session:  # type: ignore[operator]
        job = finetune_store.get_job(session=session, job_id=job_id)
        assert job.status == "succeeded" and job.hyperparameters["lora_rank"] == 4
    screenshots(browser, server, "/admin/finetune", "list")
    screenshots(browser, server, f"/admin/finetune/{job_id}", "job")


def test_cancel_from_the_job_page(server: Server, browser):
    with server.sessions.begin() as session:  # type: ignore[attr-defined]
        queued = finetune_store.add_job(
            session=session, provider="local", base_model="SmolLM2-135M-Instruct",
            export_id=1, export_files={},
        )  # fmt: skip
        running = finetune_store.add_job(
            session=session, provider="local", base_model="SmolLM2-135M-Instruct",
            export_id=1, export_files={},
        )  # fmt: skip
        finetune_store.set_status(session=session, job=running, status="running")
        ids = queued.id, running.id
    context, page = browser_page(browser, server, PHONE)
    try:
        page.goto(f"{server.url}/admin/finetune/{ids[0]}")
        page.locator("#cancel").click()
        page.wait_for_url(f"{server.url}/admin/finetune/{ids[0]}")
        assert page.locator("#status").inner_text() == "cancelled"
        page.goto(f"{server.url}/admin/finetune/{ids[1]}")
        page.locator("#cancel").click()  # the runner stops after its current step
        page.wait_for_url(f"{server.url}/admin/finetune/{ids[1]}")
        assert page.locator("#status").inner_text() == "running (cancel requested)"
    finally:
        context.close()
    with server.sessions() as session:  # type: ignore[operator]
        assert finetune_store.get_job(session=session, job_id=ids[1]).cancel_requested
    admin = logged_in(server, "admin", ADMIN_PASSWORD)
    again = admin.post(f"{server.url}/admin/finetune/{ids[0]}/cancel", timeout=30)
    assert again.status_code == 400 and "already cancelled" in again.text
